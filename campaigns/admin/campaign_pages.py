"""The campaign admin's pages beyond the list and form: the funnel, "who would get it now"
(a dry-run evaluation), and the change page's recovery buttons (retry failed sends, resume)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from learners.models import Learner

from ..approval import approval_drift, campaign_approve, campaign_send_back, sent_back_entry
from ..evaluate import segment_members
from ..failures import campaign_resume, retryable_failed
from ..funnel import (
    CHART_HEIGHT,
    DIMENSIONS,
    dismiss_reasons,
    funnel,
    funnel_chart,
    incremental_revenue,
    suppressed_by_rule,
)
from ..lifecycle import campaign_activate, campaign_pause, campaign_submit
from ..models import Campaign, CampaignStatus, GuardrailPolicy, SendStatus
from ..reach import campaign_message_preview, reach_estimate
from ..roles import is_creator_only, may_approve
from .campaign_actions import CampaignActions


def sends_url(campaign_id: int, statuses: tuple[str, ...] = ()) -> str:
    """The Send list filtered by campaign and (one or several) statuses."""
    query: dict[str, str | int] = {"campaign__id__exact": campaign_id}
    if len(statuses) == 1:
        query["status__exact"] = statuses[0]
    elif statuses:
        query["status__in"] = ",".join(statuses)
    return f"{reverse('admin:campaigns_send_changelist')}?{urlencode(query)}"


class CampaignPages(CampaignActions):
    """The extra pages of ``CampaignAdmin`` and its change page's context."""

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
            path(
                "<int:pk>/step/<str:step>/",
                self.admin_site.admin_view(require_POST(self.step_view)),
                name="campaigns_campaign_step",
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
                steps=self._steps(request, campaign),
                step_url=reverse("admin:campaigns_campaign_step", args=[campaign.pk, "x"])[:-2],
                reach_url=reverse("admin:campaigns_campaign_preview", args=[campaign.pk]),
                message=campaign_message_preview(campaign=campaign),
                audience_size=members.count()
                if (members := segment_members(campaign)) is not None
                else None,
                sent_back=sent_back_entry(campaign=campaign),
                is_reviewer=may_approve(request.user, campaign.course)
                and request.user.has_perm("campaigns.approve_campaign"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def _steps(self, request: HttpRequest, campaign: Campaign) -> list[tuple[str, str]]:
        """The lifecycle buttons this user may press on this campaign now."""
        status = campaign.status
        steps = []
        if self.has_change_permission(request, campaign):
            startable = (CampaignStatus.DRAFT, CampaignStatus.IN_REVIEW, CampaignStatus.PAUSED)
            if status in startable and not (
                status == CampaignStatus.PAUSED and campaign.paused_reason
            ):  # (paused by failures: Resume, after the cause is fixed)
                steps.append(("activate", "Activate"))
            if status == CampaignStatus.DRAFT and campaign.requires_creator_approval:
                steps.append(("submit", "Request review"))
            if status == CampaignStatus.ACTIVE:
                steps.append(("pause", "Pause"))
        if (
            status == CampaignStatus.IN_REVIEW
            and request.user.has_perm("campaigns.approve_campaign")
            and may_approve(request.user, campaign.course)
        ):
            steps.append(("approve", "Approve"))
        return steps

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

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The reach estimate ("who would get it now"): a dry run, nothing written; with
        ``?fragment=1`` only its figures (the change page loads them into its Review step)."""
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        reach = reach_estimate(campaign=campaign, sample=25)
        queued = next((row for row in reach.sample if not row["rule"]), None)
        message = campaign_message_preview(
            campaign=campaign,
            learner=Learner.objects.filter(pk=queued["learner_id"]).first() if queued else None,
            detail=queued["detail"] if queued else "",
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reach of “{campaign}” now",
            "opts": self.model._meta,
            "campaign": campaign,
            "reach": reach,
            "message": message,
        }
        if request.GET.get("fragment"):
            return TemplateResponse(request, "campaigns/reach_fragment.html", context)
        return TemplateResponse(request, "campaigns/preview.html", context)

    # step → (permission it needs, service call, what the message says)
    STEPS = {
        "activate": ("change", lambda c, u, p: campaign_activate(campaign=c), "activated"),
        "pause": ("change", lambda c, u, p: campaign_pause(campaign=c), "paused"),
        "submit": ("change", lambda c, u, p: campaign_submit(campaign=c), "sent for review"),
        "approve": ("approve", lambda c, u, p: campaign_approve(campaign=c, user=u), "approved"),
        "send_back": (
            "approve",
            lambda c, u, p: campaign_send_back(campaign=c, user=u, comment=p.get("comment", "")),
            "sent back to its marketer",
        ),
    }

    def step_view(self, request: HttpRequest, pk: int, step: str) -> HttpResponse:
        """A lifecycle step from the change page's buttons: the same service functions as the
        list's actions (they check who may, and log)."""
        if step not in self.STEPS:
            raise Http404("no such step")
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        needs, call, done = self.STEPS[step]
        allowed = (
            self.has_change_permission(request, campaign)
            if needs == "change"
            else request.user.has_perm("campaigns.approve_campaign")
        )
        if not allowed:
            raise PermissionDenied
        self._each(
            request,
            [campaign],
            lambda c: call(c, request.user, request.POST),
            done,
            log=needs == "change",
        )
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[pk]))

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
            "rows": [
                {**row, "bars": funnel_chart(row), "chart_height": CHART_HEIGHT} for row in rows
            ],
            "chart_height": CHART_HEIGHT,
            "rules": suppressed_by_rule(creator_id=mine),
            "dismissals": dismiss_reasons(creator_id=mine),
            "incremental": incremental_revenue(
                window_days=GuardrailPolicy.load().attribution_days, creator_id=mine
            ),
        }
        return TemplateResponse(request, "campaigns/funnel.html", context)
