"""Delivery failures a marketer can see and recover from: retrying a campaign's failed emails,
resuming a campaign that paused itself, and what needs attention on the admin's home page.

The dispatcher (``campaigns.dispatch``) fails a send with its reason, pauses a campaign whose
sends keep failing for the same reason (``Campaign.paused_reason``) and opens the mail-server
circuit (``MailCircuit``) while the server is down. These functions only undo what a person
has fixed since: they never decide on their own that a message should leave again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from .errors import CampaignError
from .lifecycle import activation_problems
from .models import (
    Campaign,
    CampaignStatus,
    MailCircuit,
    Send,
    SendEvent,
    SendEventKind,
    SendStatus,
)
from .roles import is_creator_only

# The dispatcher's words for a send that may have reached the learner (``sends_recover``).
OUTCOME_UNKNOWN = "outcome unknown"


def retryable_failed(campaign: Campaign) -> QuerySet[Send]:
    """The campaign's failed emails that may be sent again: not those whose outcome is unknown
    (the server may have taken them), and not those that left and were then bounced,
    complained about or rejected by the provider (``sent_at`` set: they reached the provider,
    and their address is suppressed)."""
    return Send.objects.filter(
        campaign=campaign,
        channel="email",
        is_test=False,
        status=SendStatus.FAILED,
        sent_at__isnull=True,
    ).exclude(status_reason__istartswith=OUTCOME_UNKNOWN)


def sends_retry_failed(*, campaign: Campaign, now: datetime | None = None) -> int:
    """Move the campaign's retryable failed emails (``retryable_failed``) back to the queue,
    due ``now``, with their attempts, hand-off and lease cleared, each with a *retried*
    event naming the failure it is retried from. Returns how many moved.

    Idempotent (a second call finds nothing failed) and safe against a concurrent dispatcher:
    the rows are locked while they move, and only rows still failed move.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            retryable_failed(campaign)
            .select_for_update(of=("self",))
            .order_by("pk")
            .values_list("pk", "status_reason")
        )
        if not rows:
            return 0
        moved = Send.objects.filter(pk__in=[pk for pk, _ in rows], status=SendStatus.FAILED).update(
            status=SendStatus.QUEUED,
            status_reason="",
            scheduled_for=now,
            attempts=0,
            claimed_at=None,
            handoff_at=None,
            lease=None,
        )
        SendEvent.objects.bulk_create(
            [
                SendEvent(
                    send_id=pk,
                    kind=SendEventKind.RETRIED,
                    at=now,
                    detail=f"retried by hand after: {reason}"[:1000],
                )
                for pk, reason in rows
            ]
        )
    return moved


@transaction.atomic
def campaign_resume(*, campaign: Campaign) -> Campaign:
    """Set a paused campaign active again, clearing why and since when it paused and its
    failure streak. Refused (``CampaignError``) unless it is paused, or while anything keeps
    it from going active (``activation_problems``)."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if locked.status != CampaignStatus.PAUSED:
        raise CampaignError([f"only a paused campaign can be resumed, not {locked.status}"])
    problems = activation_problems(locked)
    if problems:
        raise CampaignError(problems)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.ACTIVE,
        paused_reason="",
        paused_at=None,
        failure_streak=0,
        failure_reason="",
        updated_at=timezone.now(),
    )
    campaign.refresh_from_db()
    return campaign


def paused_by_failures(*, user: Any = None) -> QuerySet[Campaign]:
    """Campaigns that paused themselves because their sends kept failing, most recent first;
    with ``user``, only those that user may see (a creator: their own courses')."""
    qs = Campaign.objects.filter(status=CampaignStatus.PAUSED).exclude(paused_reason="")
    if user is not None and is_creator_only(user):
        qs = qs.filter(course__creator=user)
    return qs.order_by("-paused_at", "name")


def circuit_open(*, now: datetime | None = None) -> MailCircuit | None:
    """The mail-server circuit while it is open, else None. Open from its first failure until
    a delivery closes it (``campaigns.circuit``): between two probes ``open_until`` is already
    past while the server is still unreachable, so it alone would make the home page flicker.
    Reads only: a home page never creates the row."""
    now = now or timezone.now()
    return MailCircuit.objects.filter(
        Q(opened_at__isnull=False) | Q(open_until__gt=now), pk=1
    ).first()


@dataclass(frozen=True)
class Attention:
    campaigns: list[Campaign]
    circuit: MailCircuit | None
    next_try: datetime | None = None  # when a dispatcher probes the server again

    def __bool__(self) -> bool:
        return bool(self.campaigns) or self.circuit is not None


def needs_attention(*, user: Any, now: datetime | None = None, limit: int = 20) -> Attention:
    """What the admin's home page shows first: campaigns paused by failures (at most
    ``limit``) and the mail-server circuit when open. Two queries."""
    if not (user.has_perm("campaigns.view_campaign") or user.has_perm("campaigns.change_campaign")):
        return Attention(campaigns=[], circuit=None)
    now = now or timezone.now()
    circuit = circuit_open(now=now)
    return Attention(
        campaigns=list(paused_by_failures(user=user)[:limit]),
        circuit=circuit,
        next_try=circuit.open_until
        if circuit is not None and circuit.open_until and circuit.open_until > now
        else None,
    )
