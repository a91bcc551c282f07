"""The send list: what left, to whom, and what became of it (read-only, with its events)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.utils.html import format_html

from expansion.core.admin_lists import (
    BigTableAdmin,
    LatestRowsInline,
    admin_inline_add,
    fixed_values_filter,
)
from learners.models import Learner
from templates.channels import Channel

from ..models import Send, SendEvent
from ..roles import creator_sends, is_creator_only


class SendEventInline(admin.TabularInline):
    model = SendEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class SendCampaignFilter(admin.RelatedFieldListFilter):
    """The send list's campaign filter: every campaign for a marketer; for a course creator only
    the campaigns of the sends they see (``creator_sends``), never another creator's."""

    def field_choices(self, field, request, model_admin):
        if not is_creator_only(request.user):
            return super().field_choices(field, request, model_admin)
        seen = Send.objects.filter(creator_sends(request.user)).values("campaign_id")
        return field.get_choices(
            include_blank=False,
            limit_choices_to=Q(pk__in=seen),
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


@admin.register(Send)
class SendAdmin(BigTableAdmin):
    """What left, to whom, and what became of it. Read-only: sends are records."""

    list_display = (
        "id",
        "learner",
        "campaign",
        "status",
        "why",
        "rule",
        "category",
        "template_version",
        "created_at",
        "sent_at",
        "clicks",
        "is_test",
    )
    list_filter = (
        "status",
        "rule",
        ("campaign", SendCampaignFilter),
        "category",
        # The channels, without a DISTINCT over every send.
        ("channel", fixed_values_filter(Channel.values)),
        "is_test",
    )
    list_select_related = ("learner", "campaign", "template_version__template")
    # A learner's external id, a Message-ID or a provider's id, whole (indexed_search).
    search_fields = ("=learner__external_id", "=message_id", "=provider_message_id")
    search_by = {
        "exact": ("message_id", "provider_message_id"),
        "related": {"learner": (Learner, "external_id")},
    }
    date_hierarchy = "created_at"
    raw_id_fields = ("learner", "template_version", "campaign", "arm", "offer", "course")
    inlines = [SendEventInline]
    readonly_fields = [f.name for f in Send._meta.fields]
    # What became of it first, its reason in full; any field not named here goes under "Other".
    FIELDSETS = [
        (
            "Outcome",
            [
                "status",
                "status_reason",
                "attempts",
                "rule",
                "scheduled_for",
                "claimed_at",
                "handoff_at",
                "lease",
            ],
        ),
        (
            "Who and why",
            [
                "learner",
                "campaign",
                "course",
                "offer",
                "arm",
                "trigger",
                "moment",
                "occurrence_key",
                "reason",
                "priority",
            ],
        ),
        (
            "Message",
            [
                "channel",
                "category",
                "template_version",
                "locale",
                "to_email",
                "subject",
                "is_test",
                "message_id",
                "provider_message_id",
            ],
        ),
        (
            "Tracking",
            [
                "created_at",
                "sent_at",
                "delivered_at",
                "opened_at",
                "clicked_at",
                "clicks",
                "seen_at",
                "dismissed_at",
                "dismiss_reason",
                "converted_order",
                "converted_at",
                "revenue",
            ],
        ),
    ]

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fields = [f.name for f in Send._meta.fields if f.name != "id"]
        named = [(title, [f for f in names if f in fields]) for title, names in self.FIELDSETS]
        placed = {f for _, names in named for f in names}
        rest = [f for f in fields if f not in placed]
        if rest:
            named.append(("Other", rest))
        return [(title, {"fields": names}) for title, names in named]

    @admin.display(description="Status reason", ordering="status_reason")
    def why(self, obj: Send) -> str:
        """The reason, cut to fit the list; the whole of it on hover and on the send's page."""
        if not obj.status_reason:
            return ""
        short = truncatechars(obj.status_reason, 60)
        if short == obj.status_reason:
            return obj.status_reason
        # At least a few words a line: squeezed by the other columns, it stood a word a line.
        return format_html(
            '<span title="{}" style="display: inline-block; min-width: 18em">{}</span>',
            obj.status_reason,
            short,
        )

    def get_queryset(self, request: HttpRequest):
        qs = super().get_queryset(request)
        if is_creator_only(request.user):
            qs = qs.filter(creator_sends(request.user))
        return qs

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class LearnerSendInline(LatestRowsInline):
    """On the learner's page: their 20 latest sends, with status and why."""

    model = Send
    fields = ("created_at", "campaign", "channel", "subject", "status", "status_reason", "reason")
    latest_order = "-created_at"
    related = ("campaign",)
    verbose_name_plural = "Sends (the 20 latest, with status and reason)"


admin_inline_add(Learner, LearnerSendInline)
