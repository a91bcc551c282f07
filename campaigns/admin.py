from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import truncatechars
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from expansion.core.singleton import SingletonAdmin

from .evaluate import campaigns_evaluate
from .failures import OUTCOME_UNKNOWN, campaign_resume, retryable_failed, sends_retry_failed
from .funnel import (
    ACCOUNTED,
    CHART_HEIGHT,
    DIMENSIONS,
    SENT_ONWARDS,
    campaign_status_counts,
    dismiss_reasons,
    funnel,
    funnel_chart,
    incremental_revenue,
    suppressed_by_rule,
)
from .lifecycle import (
    NOT_APPROVED,
    CampaignError,
    activation_problems,
    approval_drift,
    approval_entry,
    campaign_activate,
    campaign_approve,
    campaign_back_to_review,
    campaign_pause,
    campaign_submit,
)
from .models import (
    Campaign,
    CampaignStatus,
    GuardrailPolicy,
    JourneyMoment,
    Rule,
    Send,
    SendEvent,
    SendStatus,
)
from .roles import creator_sends, is_creator_only
from .triggers import PARAMS

# The home page opens with what needs a person: campaigns paused by failures, the mail server
# when unreachable (campaigns/templatetags/campaigns_attention.py).
admin.site.index_template = "campaigns/admin_index.html"


@admin.register(JourneyMoment)
class JourneyMomentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "offers_allowed", "position", "description"]
    list_editable = ["offers_allowed", "position"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(GuardrailPolicy)
class GuardrailPolicyAdmin(SingletonAdmin):
    fieldsets = [
        (
            "Frequency caps (marketing email; the learner's own time zone)",
            {"fields": ["email_cap", "cap_window_days", "email_cap_day", "email_cap_week"]},
        ),
        ("In-app", {"fields": ["in_app_cap_day"]}),
        (
            "Quiet hours (learner's local time; sends wait, never drop)",
            {"fields": ["quiet_start", "quiet_end"]},
        ),
        (
            "Suppression",
            {
                "fields": [
                    "min_lps",
                    "suppress_at_risk",
                    "suppress_open_ticket",
                    "suppress_payment_failed",
                    "suppress_refund",
                    "declined_days",
                    "bought_days",
                    "onboarding_days",
                ]
            },
        ),
        ("Priority", {"fields": ["multi_trigger_boost"]}),
    ]


# The Send list filtered to one campaign's sends in one column's statuses.
COUNT_STATUSES: dict[str, tuple[str, ...]] = {
    "sent": tuple(SENT_ONWARDS),
    "failed": (SendStatus.FAILED,),
    "queued": (SendStatus.QUEUED,),
    "sending": (SendStatus.SENDING,),
    "suppressed": (SendStatus.SUPPRESSED,),
}


def sends_url(campaign_id: int, statuses: tuple[str, ...] = ()) -> str:
    """The Send list filtered by campaign and (one or several) statuses."""
    query: dict[str, str | int] = {"campaign__id__exact": campaign_id}
    if len(statuses) == 1:
        query["status__exact"] = statuses[0]
    elif statuses:
        query["status__in"] = ",".join(statuses)
    return f"{reverse('admin:campaigns_send_changelist')}?{urlencode(query)}"


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
class CampaignAdmin(admin.ModelAdmin):
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

    def get_urls(self):
        return [
            path(
                "funnel/",
                self.admin_site.admin_view(self.funnel_view),
                name="campaigns_campaign_funnel",
            ),
            path(
                "<int:pk>/retry-failed/",
                self.admin_site.admin_view(require_POST(self.retry_failed_view)),
                name="campaigns_campaign_retry_failed",
            ),
            path(
                "<int:pk>/resume/",
                self.admin_site.admin_view(require_POST(self.resume_view)),
                name="campaigns_campaign_resume",
            ),
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="campaigns_campaign_preview",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if campaign is not None:
            failed = getattr(campaign, "n_failed", 0)
            retryable = retryable_failed(campaign).count() if failed else 0
            extra.update(
                can_recover=self.has_change_permission(request, campaign),
                paused_by_failures=campaign.status == CampaignStatus.PAUSED
                and bool(campaign.paused_reason),
                is_paused=campaign.status == CampaignStatus.PAUSED,
                n_failed=failed,
                n_retryable=retryable,
                n_not_retried=failed - retryable,
                failed_url=sends_url(campaign.pk, (SendStatus.FAILED,)),
                retry_url=reverse("admin:campaigns_campaign_retry_failed", args=[campaign.pk]),
                resume_url=reverse("admin:campaigns_campaign_resume", args=[campaign.pk]),
                approval_drift=approval_drift(campaign=campaign)
                if campaign.requires_creator_approval
                else [],
            )
        return super().change_view(request, object_id, form_url, extra)

    def _recoverable(self, request: HttpRequest, pk: int) -> Campaign:
        """The campaign, if this user may see it (a creator: their own courses') and change it;
        else 404 / 403 — nothing is touched."""
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def retry_failed_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = self._recoverable(request, pk)
        self._retry(request, [campaign])
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[pk]))

    def resume_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = self._recoverable(request, pk)
        self._each(request, [campaign], lambda c: campaign_resume(campaign=c), "resumed")
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[pk]))

    def _retry(self, request: HttpRequest, campaigns) -> None:
        total = 0
        for campaign in campaigns:
            moved = sends_retry_failed(campaign=campaign)
            total += moved
            if moved:
                self.log_change(request, campaign, f"Retried {moved} failed send(s)")
        unknown = (
            Send.objects.filter(
                campaign__in=[c.pk for c in campaigns],
                status=SendStatus.FAILED,
                status_reason__istartswith=OUTCOME_UNKNOWN,
            ).count()
            if campaigns
            else 0
        )
        level = messages.SUCCESS if total else messages.WARNING
        text = f"{total} failed send(s) queued again."
        if unknown:
            text += (
                f" {unknown} of unknown outcome left as they are: the mail server may have "
                "taken them, and a message never leaves twice."
            )
        self.message_user(request, text, level)

    @admin.action(description="Retry failed sends", permissions=["change"])
    def retry_failed(self, request, queryset) -> None:
        self._retry(request, list(queryset))

    @admin.action(description="Resume (paused campaigns)", permissions=["change"])
    def resume(self, request, queryset) -> None:
        self._each(request, queryset, lambda c: campaign_resume(campaign=c), "resumed")

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        result = campaigns_evaluate(campaigns=[campaign], dry_run=True, sample=25)
        labels = dict(Rule.choices)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Who would get “{campaign}” now",
            "opts": self.model._meta,
            "campaign": campaign,
            "result": result,
            "stopped": [(labels.get(rule, rule), n) for rule, n in result.stopped.most_common()],
            "problems": activation_problems(campaign),
        }
        return TemplateResponse(request, "campaigns/preview.html", context)

    def funnel_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        by = request.GET.get("by", "campaign")
        if by not in DIMENSIONS:
            by = "campaign"
        # A creator sees the funnel of their own courses' campaigns only.
        mine = request.user.pk if is_creator_only(request.user) else None
        rows = funnel(by=by, creator_id=mine)
        context = {
            **self.admin_site.each_context(request),
            "title": "Campaign funnel",
            "opts": self.model._meta,
            "by": by,
            "dimensions": [(key, label) for key, (_, label) in DIMENSIONS.items()],
            "rows": [{**row, "bars": funnel_chart(row)} for row in rows],
            "chart_height": CHART_HEIGHT,
            "rules": suppressed_by_rule(creator_id=mine),
            "dismissals": dismiss_reasons(creator_id=mine),
            "incremental": incremental_revenue(
                window_days=GuardrailPolicy.load().attribution_days, creator_id=mine
            ),
        }
        return TemplateResponse(request, "campaigns/funnel.html", context)

    def _each(self, request, queryset, step, done: str, log: bool = True) -> None:
        """Run a lifecycle step on each campaign; each success goes into the admin's audit
        log (who, when, what; unless the step logs itself), each refusal is shown with its
        reasons."""
        ok = 0
        for campaign in queryset:
            try:
                step(campaign)
                ok += 1
                if log:
                    self.log_change(request, campaign, done.capitalize())
            except CampaignError as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.ERROR)
        if ok:
            self.message_user(request, f"{ok} campaign(s) {done}.", messages.SUCCESS)

    @admin.action(description="Activate", permissions=["change"])
    def activate(self, request, queryset) -> None:
        self._each(request, queryset, lambda c: campaign_activate(campaign=c), "activated")

    @admin.action(description="Send for review", permissions=["change"])
    def submit_for_review(self, request, queryset) -> None:
        self._each(request, queryset, lambda c: campaign_submit(campaign=c), "sent for review")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("campaigns.approve_campaign")

    @admin.action(description="Approve (course creator)", permissions=["approve"])
    def approve(self, request, queryset) -> None:
        """Pins the template versions in force and what was reviewed; ``campaign_approve``
        checks who may, and logs the approval with what was reviewed."""
        self._each(
            request,
            queryset,
            lambda c: campaign_approve(campaign=c, user=request.user),
            "approved",
            log=False,
        )

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request, queryset) -> None:
        self._each(request, queryset, lambda c: campaign_pause(campaign=c), "paused")

    @admin.action(description="Archive", permissions=["change"])
    def archive(self, request, queryset) -> None:
        for campaign in queryset:
            self.log_change(request, campaign, "Archived")
        n = queryset.update(status=CampaignStatus.ARCHIVED)
        self.message_user(request, f"{n} campaign(s) archived.", messages.SUCCESS)


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
class SendAdmin(admin.ModelAdmin):
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
        "channel",
        "is_test",
    )
    list_select_related = ("learner", "campaign", "template_version__template")
    search_fields = ("learner__external_id", "message_id", "provider_message_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
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
