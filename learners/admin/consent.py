"""Admin for consent: a learner's opt-outs and consent log (inlines on the learner page),
and suppressed addresses."""

from django.contrib import admin

from ..models import CategoryOptOut, ConsentChange, EmailSuppression


class CategoryOptOutInline(admin.TabularInline):
    model = CategoryOptOut
    extra = 0
    fields = ["category", "created_at"]
    readonly_fields = ["created_at"]
    verbose_name_plural = "Opted out of these categories"


class ConsentChangeInline(admin.TabularInline):
    """The consent log, read-only: how and when each choice was made."""

    model = ConsentChange
    extra = 0
    can_delete = False
    fields = ["changed_at", "category", "subscribed", "source", "send_id"]
    readonly_fields = ["changed_at", "category", "subscribed", "source", "send_id"]
    max_num = 0
    verbose_name_plural = "Consent changes"


@admin.register(EmailSuppression)
class EmailSuppressionAdmin(admin.ModelAdmin):
    """Addresses nothing is sent to. Provider webhooks add bounces and complaints; deleting a
    row lets mail go to the address again."""

    list_display = ["email", "reason", "detail", "created_at"]
    list_filter = ["reason"]
    search_fields = ["email"]
    date_hierarchy = "created_at"
