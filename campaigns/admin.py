from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from expansion.singleton import SingletonAdmin

from .evaluate import campaigns_evaluate
from .funnel import (
    CHART_HEIGHT,
    DIMENSIONS,
    STAGES,
    dismiss_reasons,
    funnel,
    funnel_chart,
    incremental_revenue,
    suppressed_by_rule,
)
from .lifecycle import (
    CampaignError,
    activation_problems,
    campaign_activate,
    campaign_approve,
    campaign_pause,
    campaign_submit,
)
from .models import Campaign, CampaignStatus, GuardrailPolicy, JourneyMoment, Rule, Send, SendEvent
from .roles import is_creator_only
from .triggers import PARAMS


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

    list_display = [
        "name",
        "status",
        "moment",
        "trigger",
        "priority",
        "offer",
        "queued",
        "sent",
        "suppressed",
        "preview",
    ]
    list_filter = ["status", "moment", "trigger", "category"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["offer", "segment", "course", "experiment"]
    raw_id_fields = ["email_template", "in_app_template"]
    readonly_fields = ["status", "approved_by", "approved_at", "problems", "trigger_reference"]
    fieldsets = [
        (None, {"fields": ["name", "description", "status", "problems"]}),
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
        ("Who", {"fields": ["segment", "course"]}),
        (
            "What",
            {
                "fields": [
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
        ("Review", {"fields": ["requires_creator_approval", "approved_by", "approved_at"]}),
    ]
    actions = ["activate", "submit_for_review", "approve", "pause", "archive"]

    def get_queryset(self, request: HttpRequest):
        qs = super().get_queryset(request)
        if is_creator_only(request.user):
            qs = qs.filter(course__creator=request.user)
        return qs.select_related("moment", "offer").annotate(
            n_queued=Count("sends", filter=Q(sends__status="queued")),
            n_sent=Count(
                "sends",
                filter=~Q(sends__status__in=["queued", "suppressed", "failed", "sending"]),
            ),
            n_suppressed=Count("sends", filter=Q(sends__status="suppressed")),
        )

    @admin.display(ordering="n_queued")
    def queued(self, obj: Campaign) -> int:
        return obj.n_queued  # type: ignore[attr-defined]

    @admin.display(ordering="n_sent")
    def sent(self, obj: Campaign) -> int:
        return obj.n_sent  # type: ignore[attr-defined]

    @admin.display(ordering="n_suppressed")
    def suppressed(self, obj: Campaign) -> int:
        return obj.n_suppressed  # type: ignore[attr-defined]

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

    @admin.display(description="Trigger parameters")
    def trigger_reference(self, obj: Campaign) -> str:
        return format_html("<pre>{}</pre>", _trigger_reference())

    def save_model(self, request, obj: Campaign, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    change_list_template = "campaigns/campaign_change_list.html"

    def get_urls(self):
        return [
            path(
                "funnel/",
                self.admin_site.admin_view(self.funnel_view),
                name="campaigns_campaign_funnel",
            ),
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="campaigns_campaign_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_view_permission(request, campaign):
            from django.core.exceptions import PermissionDenied

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
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        by = request.GET.get("by", "campaign")
        if by not in DIMENSIONS:
            by = "campaign"
        rows = funnel(by=by)
        context = {
            **self.admin_site.each_context(request),
            "title": "Campaign funnel",
            "opts": self.model._meta,
            "by": by,
            "dimensions": [(key, label) for key, (_, label) in DIMENSIONS.items()],
            "rows": [{**row, "bars": funnel_chart(row)} for row in rows],
            "stages": STAGES,
            "chart_height": CHART_HEIGHT,
            "rules": suppressed_by_rule(),
            "dismissals": dismiss_reasons(),
            "incremental": incremental_revenue(window_days=GuardrailPolicy.load().attribution_days),
        }
        return TemplateResponse(request, "campaigns/funnel.html", context)

    def _each(self, request, queryset, step, done: str) -> None:
        """Run a lifecycle step on each campaign; each success goes into the admin's audit
        log (who, when, what), each refusal is shown with its reasons."""
        ok = 0
        for campaign in queryset:
            try:
                step(campaign)
                ok += 1
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
        def step(campaign: Campaign) -> None:
            creator = campaign.course.creator_id if campaign.course else None
            if not request.user.is_superuser and creator != request.user.pk:
                raise CampaignError(["only the creator of the campaign's course can approve it"])
            campaign_approve(campaign=campaign, user=request.user)

        self._each(request, queryset, step, "approved")

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


@admin.register(Send)
class SendAdmin(admin.ModelAdmin):
    """What left, to whom, and what became of it. Read-only: sends are records."""

    list_display = (
        "id",
        "learner",
        "campaign",
        "rule",
        "category",
        "template_version",
        "status",
        "status_reason",
        "created_at",
        "sent_at",
        "clicks",
        "is_test",
    )
    list_filter = ("status", "rule", "campaign", "category", "channel", "is_test")
    list_select_related = ("learner", "campaign", "template_version__template")
    search_fields = ("learner__external_id", "message_id", "provider_message_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("learner", "template_version", "campaign", "arm", "offer", "course")
    inlines = [SendEventInline]
    readonly_fields = [f.name for f in Send._meta.fields]

    def get_queryset(self, request: HttpRequest):
        qs = super().get_queryset(request)
        if is_creator_only(request.user):
            qs = qs.filter(
                Q(course__creator=request.user) | Q(campaign__course__creator=request.user)
            )
        return qs

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
