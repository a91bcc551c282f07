from __future__ import annotations

from django.contrib import admin

from .models import Send, SendEvent


class SendEventInline(admin.TabularInline):
    model = SendEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Send)
class SendAdmin(admin.ModelAdmin):
    """What left, to whom, and what became of it. Read-only: sends are records."""

    list_display = (
        "id",
        "learner",
        "category",
        "template_version",
        "status",
        "status_reason",
        "created_at",
        "sent_at",
        "clicks",
        "is_test",
    )
    list_filter = ("status", "category", "channel", "is_test")
    list_select_related = ("learner", "template_version__template")
    search_fields = ("learner__external_id", "message_id", "provider_message_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("learner", "template_version")
    inlines = [SendEventInline]
    readonly_fields = [f.name for f in Send._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
