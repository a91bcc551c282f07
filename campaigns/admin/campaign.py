"""The campaign list and form: counts of sends by status beside each name (links to the
filtered send list), what keeps a campaign from going active, its approval and what changed
since, the trigger parameters' reference. Saving an approved campaign whose reviewed fields
changed sends it back to review. Its actions and extra pages are ``campaign_actions`` and
``campaign_pages``."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from ..approval import (
    NOT_APPROVED,
    approval_covers_everything,
    approval_drift,
    approval_entry,
    campaign_back_to_review,
)
from ..funnel import ACCOUNTED, SENT_ONWARDS, campaign_status_counts
from ..lifecycle import activation_problems
from ..models import Campaign, CampaignStatus, SendStatus
from ..roles import is_creator_only
from ..trigger_params import PARAMS
from .campaign_pages import CampaignPages, sends_url

# The Send list filtered to one campaign's sends in one column's statuses.
COUNT_STATUSES: dict[str, tuple[str, ...]] = {
    "sent": tuple(SENT_ONWARDS),
    "failed": (SendStatus.FAILED,),
    "queued": (SendStatus.QUEUED,),
    "sending": (SendStatus.SENDING,),
    "suppressed": (SendStatus.SUPPRESSED,),
}


def _count_link(obj: Campaign, column: str) -> str:
    n = getattr(obj, f"n_{column}", None)
    if n is None:  # not annotated (a new campaign)
        return "—"
    if not n:
        return "0"
    return format_html('<a href="{}">{}</a>', sends_url(obj.pk, COUNT_STATUSES[column]), n)


def _trigger_reference() -> str:
    lines = []
    for kind, spec in PARAMS.items():
        params = ", ".join(
            f"{name} (default {p.default!r}{'; ' + p.help if p.help else ''})"
            for name, p in spec.items()
        )
        lines.append(f"{kind}: {params or 'no parameters'}")
    return "\n".join(lines)


@admin.register(Campaign)
class CampaignAdmin(CampaignPages):
    """Moment + trigger + audience + offer + templates + guardrails + priority + experiment.
    Before activating, "Who would get it now" evaluates it without sending anything."""

    # The counts next to the name and status: on a laptop's width the columns after them
    # scroll out of sight.
    list_display = [
        "name",
        "state",
        "sent",
        "failed",
        "queued",
        "suppressed",
        "moment",
        "trigger",
        "priority",
        "offer",
        "preview",
    ]
    list_filter = ["status", "moment", "trigger", "category"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["offer", "segment", "course", "experiment"]
    raw_id_fields = ["email_template", "in_app_template"]
    readonly_fields = [
        "status",
        "sends_by_status",
        "approval",
        "changed_since_approval",
        "problems",
        "trigger_reference",
    ]
    fieldsets = [
        (None, {"fields": ["name", "description", "status", "sends_by_status", "problems"]}),
        (
            "When",
            {
                "fields": [
                    "moment",
                    "trigger",
                    "trigger_params",
                    "send_within_hours",
                    "trigger_reference",
                ]
            },
        ),
        ("Who", {"fields": ["segment", "course", "target_roles", "one_per_account"]}),
        (
            "What",
            {
                "fields": [
                    "purpose",
                    "offer",
                    "category",
                    "email_template",
                    "in_app_template",
                    "premium_upsell",
                    "experiment",
                ]
            },
        ),
        ("Guardrails", {"fields": ["priority", "reentry", "reentry_days", "guardrails"]}),
        (
            "Review",
            {"fields": ["requires_creator_approval", "approval", "changed_since_approval"]},
        ),
    ]
    actions = [
        "activate",
        "submit_for_review",
        "approve",
        "pause",
        "retry_failed",
        "resume",
        "archive",
    ]
    change_form_template = "campaigns/campaign_change_form.html"

    def get_queryset(self, request: HttpRequest):
        """A creator's campaigns only (their courses'); each with its sends counted by status
        in the same query (``n_sent``, ``n_failed`` …, ``funnel.campaign_status_counts``: one
        query for the whole page, not a query per row; tests/campaigns/test_failures.py)."""
        qs = super().get_queryset(request)
        if is_creator_only(request.user):
            qs = qs.filter(course__creator=request.user)
        counts = campaign_status_counts()
        return qs.select_related("moment", "offer").annotate(
            **{f"n_{name}": counts[name] for name in ACCOUNTED}
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        """Loaded once a request (``change_view`` reads it before the form does)."""
        cache = request.__dict__.setdefault("_campaign_objects", {})
        key = (object_id, from_field)
        if key not in cache:
            cache[key] = super().get_object(request, object_id, from_field)
        return cache[key]

    @admin.display(description="Status", ordering="status")
    def state(self, obj: Campaign) -> str:
        if obj.status == CampaignStatus.PAUSED and obj.paused_reason:
            return format_html(
                '<strong style="color: var(--error-fg, #ba2121); display: inline-block; '
                'min-width: 16em" title="{}">Paused: {}</strong>',
                obj.paused_reason,
                truncatechars(obj.paused_reason, 80),
            )
        return obj.get_status_display()

    @admin.display(description="Sent", ordering="n_sent")
    def sent(self, obj: Campaign) -> str:
        return _count_link(obj, "sent")

    @admin.display(description="Failed", ordering="n_failed")
    def failed(self, obj: Campaign) -> str:
        return _count_link(obj, "failed")

    @admin.display(description="Queued", ordering="n_queued")
    def queued(self, obj: Campaign) -> str:
        return _count_link(obj, "queued")

    @admin.display(description="Suppressed", ordering="n_suppressed")
    def suppressed(self, obj: Campaign) -> str:
        return _count_link(obj, "suppressed")

    @admin.display(description="Sends")
    def sends_by_status(self, obj: Campaign) -> str:
        if obj.pk is None or not hasattr(obj, "n_sent"):
            return "—"
        return format_html_join(
            " · ", "{}: {}", ((name, _count_link(obj, name)) for name in COUNT_STATUSES)
        )

    @admin.display(description="Who would get it now")
    def preview(self, obj: Campaign) -> str:
        url = reverse("admin:campaigns_campaign_preview", args=[obj.pk])
        return format_html('<a href="{}">Preview</a>', url)

    @admin.display(description="Before it can go active")
    def problems(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "—"
        found = activation_problems(obj)
        return "; ".join(found) if found else "Nothing: it can be activated."

    @admin.display(description="Approval")
    def approval(self, obj: Campaign) -> str:
        """What was approved (the versions sent), by whom and when; the last approval, once
        withdrawn, from the admin's history."""
        if obj.pk is None:
            return "—"
        who = obj.approved_by or "a deleted user"
        when = f"{localtime(obj.approved_at):%Y-%m-%d %H:%M}" if obj.approved_at else ""
        if not obj.approved_fingerprint:
            if obj.approved_at is not None:
                return f"Approved by {who} on {when}, before approvals named their versions."
            return "Not approved yet."
        versions = (
            f"email template {obj.approved_email_version or 'none'}; "
            f"in-app template {obj.approved_in_app_version or 'none'}"
        )
        if obj.approved_at is not None:
            if not approval_covers_everything(campaign=obj):
                return (
                    f"Approved by {who} on {when}: {versions} — before approvals covered the "
                    "moment, re-entry and premium-upsell setting; approve again to pin them."
                )
            return f"Approved by {who} on {when}: {versions}."
        entry = approval_entry(campaign=obj)
        last = f" by {entry.user} on {localtime(entry.action_time):%Y-%m-%d %H:%M}" if entry else ""
        return f"Withdrawn. Last approved{last}: {versions}."

    @admin.display(description="Changed since approval")
    def changed_since_approval(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "—"
        drift = approval_drift(campaign=obj)
        return "; ".join(drift) if drift else "Nothing."

    @admin.display(description="Trigger parameters")
    def trigger_reference(self, obj: Campaign) -> str:
        return format_html("<pre>{}</pre>", _trigger_reference())

    def save_model(self, request, obj: Campaign, form, change: bool) -> None:
        """Saved; an approved campaign whose reviewed fields changed goes back to review
        (``campaign_back_to_review``), logged and said with what changed."""
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change:
            return
        reasons = campaign_back_to_review(campaign=obj)
        if not reasons:
            return
        why = "; ".join(reasons)
        self.log_change(request, obj, f"Back to review: {why}")
        if reasons == [NOT_APPROVED]:
            text = f"{obj} requires its creator's approval and has none: it is back in review."
        else:
            who = f"{obj.course}'s creator" if obj.course else "a course's creator"
            text = (
                f"{obj} changed since it was approved ({why}): its approval is withdrawn and "
                f"it waits for {who} to approve it again."
            )
        self.message_user(request, text, messages.WARNING)

    change_list_template = "campaigns/campaign_change_list.html"
