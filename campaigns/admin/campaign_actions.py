"""The campaign list's actions: the lifecycle steps (activate, send for review, approve,
pause, archive) and the recovery ones (retry failed sends, resume), each calling its service
function and logged in the admin's history."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from ..approval import campaign_approve
from ..errors import CampaignError
from ..failures import OUTCOME_UNKNOWN, campaign_resume, sends_retry_failed
from ..lifecycle import campaign_activate, campaign_pause, campaign_submit
from ..models import CampaignStatus, Send, SendStatus


class CampaignActions(admin.ModelAdmin):
    """The actions of ``CampaignAdmin`` (listed there in ``actions``)."""

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
