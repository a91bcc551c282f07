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
from ..models import Campaign, CampaignStatus, GuardrailPolicy, SendStatus
from ..roles import is_creator_only
from ..trigger_params import PARAMS
from .campaign_form import CampaignForm, guardrail_fieldset_fields, trigger_fieldset_fields
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


def trigger_sentence(campaign: Campaign) -> str:
    """The trigger's parameters in words, defaults included ("min score 85 (default 80)")."""
    spec = PARAMS.get(campaign.trigger, {})
    if not spec:
        return "None: this trigger takes no parameters."
    params = campaign.trigger_params or {}
    parts = []
    for name, param in spec.items():
        value = params.get(name, param.default)
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        parts.append(f"{name.replace('_', ' ')} {shown}" + ("" if name in params else " (default)"))
    return "; ".join(parts) + "."


def guardrails_sentence(campaign: Campaign) -> str:
    """The campaign's guardrail overrides against the policy ("min lps 60 (policy 40)")."""
    overrides = campaign.guardrails or {}
    if not overrides:
        return "None: the guardrail policy applies as it is."
    policy = GuardrailPolicy.load()
    return (
        "; ".join(
            f"{name.replace('_', ' ')} {value} (policy {getattr(policy, name)})"
            for name, value in sorted(overrides.items())
        )
        + "."
    )


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
    form = CampaignForm
    readonly_fields = [
        "status",
        "sends_by_status",
        "approval",
        "changed_since_approval",
        "problems",
        "trigger_summary",
        "guardrails_summary",
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None):
        """The campaign as a flow, step by step; who may only look (a reviewing creator)
        reads the trigger's parameters and the guardrail overrides as sentences."""
        editable = self.has_change_permission(request, obj) or (
            obj is None and self.has_add_permission(request)
        )
        trigger = (
            ["trigger", *trigger_fieldset_fields(), "send_within_hours"]
            if editable
            else ["trigger", "trigger_summary", "send_within_hours"]
        )
        guardrails = (
            ["priority", "reentry", "reentry_days", *guardrail_fieldset_fields()]
            if editable
            else ["priority", "reentry", "reentry_days", "guardrails_summary"]
        )
        return [
            (None, {"fields": ["name", "description", "status", "sends_by_status", "problems"]}),
            ("1 · Moment", {"fields": ["moment"]}),
            ("2 · Trigger", {"fields": trigger, "classes": ["campaign-trigger"]}),
            (
                "3 · Audience",
                {"fields": ["segment", "course", "target_roles", "one_per_account"]},
            ),
            ("4 · Offer", {"fields": ["purpose", "offer", "category", "premium_upsell"]}),
            ("5 · Message", {"fields": ["email_template", "in_app_template"]}),
            (
                "6 · Guardrails",
                {
                    "fields": guardrails,
                    "description": "Empty fields keep the guardrail policy's value "
                    "(shown in each); a value here overrides it for this campaign only.",
                },
            ),
            ("7 · Experiment", {"fields": ["experiment"]}),
            (
                "8 · Review",
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
    def trigger_summary(self, obj: Campaign) -> str:
        return trigger_sentence(obj)

    @admin.display(description="Guardrail overrides")
    def guardrails_summary(self, obj: Campaign) -> str:
        return guardrails_sentence(obj)

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
