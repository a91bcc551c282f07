"""The in-app channel: the offer card a learner's platform shows, and what the learner did.

In-app sends are decided like emails (``campaigns.evaluate``: same guardrails, an in-app daily
cap, no quiet hours). The platform asks for the card of a moment; the highest-priority live
one is rendered with the same context as an email and returned with its reason, its expiry
(the offer's validity, default 48 hours — seed 000's countdown) and its tracking endpoints.

Serving a card is read-only (a GET, a read-scope key, a widget token: nothing changes, however
often it is fetched). The card becomes *sent* when the platform reports it shown — the
impression POST, which records it sent and seen at once — or when the learner clicks, accepts
or dismisses it before any impression arrived. What "sent" feeds keeps its meaning: the
funnel's sent stage counts cards that reached a learner, attribution credits seen and clicked
ones; the in-app cap counts a card from the moment it is decided (queued onwards,
``campaigns.caps.COUNTED``), and experiments count learners from assignment (intention to
treat), so neither depends on serving. A dismissal carries a reason code and is stored as an
``offer_declined`` event, so the decline guardrail keeps further offers away for its window and
the scoring flag sees it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from learners.dirty import learners_mark_dirty, scoring_kick_on_commit
from learners.models import Event, EventKind, Learner
from templates.engine import RenderError
from templates.messages import message_render

from .contexts import send_context
from .links import click_url
from .models import DismissReason, Send, SendEvent, SendEventKind, SendStatus, status_now
from .reasons import learner_reason

DEFAULT_VALID_HOURS = 48
LIVE = [SendStatus.QUEUED, SendStatus.SENT, SendStatus.OPENED]
FEEDBACK_KINDS = ("impression", "click", "accept", "dismiss")

logger = logging.getLogger(__name__)


class OfferFeedbackError(ValueError):
    """Bad feedback; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _expires(send: Send) -> datetime:
    hours = getattr(send.offer, "valid_hours", None) or DEFAULT_VALID_HOURS
    return send.created_at + timedelta(hours=hours)


@dataclass(frozen=True)
class Card:
    send: Send
    title: str
    body_html: str
    body_text: str
    cta_url: str
    reason: str
    expires_at: datetime


def offer_card(*, learner: Learner, moment: str = "", now: datetime | None = None) -> Card | None:
    """The learner's live in-app offer for ``moment`` (any moment if empty), rendered.

    Read-only: writes nothing (the card is marked sent by ``offer_feedback``). A card whose
    offer is inactive, or whose template cannot render, is skipped for the next live one
    (the latter logged by its send's id).
    """
    now = now or timezone.now()
    candidates = (
        Send.objects.filter(
            learner=learner,
            channel="in_app",
            status__in=LIVE,
            campaign__isnull=False,
            is_test=False,
        )
        .filter(Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now))
        .select_related("offer", "offer__product", "course", "learner", "learner__score")
        .select_related("template_version", "moment")
        .order_by("-priority", "-created_at", "-id")
    )
    if moment:
        candidates = candidates.filter(moment__slug=moment)
    for send in candidates[:20]:
        expires_at = _expires(send)
        if expires_at <= now:
            continue
        if send.offer is not None and not send.offer.is_active:
            # Switched off since it was decided: never shown (the next evaluation stores the
            # rule on it, ``campaigns.arms.queued_inactive_offers_stop``; a read writes
            # nothing).
            continue
        try:
            rendered = message_render(
                version=send.template_version, context=send_context(send, now), locale=send.locale
            )
        except Exception as exc:  # noqa: BLE001 - one card that cannot render fails alone
            # Not marked failed: a read changes nothing (a passing fault would fail the card
            # for good). The class only: a message may quote the learner's data.
            kind = "template" if isinstance(exc, RenderError) else type(exc).__name__
            logger.warning("in-app card of send %s cannot render (%s)", send.pk, kind)
            continue  # the next live card, if any
        target = send.offer.cta_url if send.offer is not None else ""
        return Card(
            send=send,
            title=rendered.subject,
            body_html=rendered.html,
            body_text=rendered.text,
            cta_url=click_url(send.pk, target) if target else "",
            reason=learner_reason(
                send.reason, at=send.created_at, now=now, zone=send.learner.time_zone
            ),
            expires_at=expires_at,
        )
    return None


def _shown(send: Send, now: datetime) -> None:
    """A queued card the platform reports on was shown: it is sent now (once)."""
    if Send.objects.filter(status_now(SendStatus.QUEUED), pk=send.pk).update(
        status=SendStatus.SENT, sent_at=now
    ):
        SendEvent.objects.create(send=send, kind=SendEventKind.SERVED, at=now)


def offer_feedback(*, send: Send, kind: str, reason: str = "", now: datetime | None = None) -> Send:
    """Record an impression, click, accept or dismissal of an in-app offer (idempotent for
    impressions and dismissals; clicks count each time).

    The first report on a card still queued marks it sent (``sent_at``, a ``served`` event)
    before its own effect: an impression records it sent and seen. Bad feedback (an unknown
    kind, a dismissal without a valid reason) changes nothing."""
    now = now or timezone.now()
    if send.channel != "in_app":
        raise OfferFeedbackError("send", "is not an in-app offer")
    if kind not in FEEDBACK_KINDS:
        raise OfferFeedbackError("kind", "must be impression, click, accept or dismiss")
    if kind == "dismiss" and reason not in DismissReason.values:
        raise OfferFeedbackError("reason", f"must be one of {', '.join(DismissReason.values)}")
    rows = Send.objects.filter(pk=send.pk)
    open_statuses = [SendStatus.QUEUED, SendStatus.SENT]
    with transaction.atomic():
        _shown(send, now)
        if kind == "impression":
            if rows.filter(seen_at__isnull=True).update(seen_at=now):
                rows.filter(status__in=open_statuses).update(status=SendStatus.OPENED)
                SendEvent.objects.create(send=send, kind=SendEventKind.SEEN, at=now)
        elif kind in ("click", "accept"):
            rows.update(clicks=F("clicks") + 1)
            rows.filter(clicked_at__isnull=True).update(clicked_at=now)
            rows.filter(status__in=[*open_statuses, SendStatus.OPENED]).update(
                status=SendStatus.CLICKED
            )
            SendEvent.objects.create(
                send=send,
                kind=SendEventKind.ACCEPTED if kind == "accept" else SendEventKind.CLICKED,
                at=now,
            )
        else:  # dismiss
            if rows.filter(dismissed_at__isnull=True).update(
                dismissed_at=now, dismiss_reason=reason, status=SendStatus.DISMISSED
            ):
                SendEvent.objects.create(send=send, kind=SendEventKind.DISMISSED, detail=reason)
                # A dismissal is a declined offer: the guardrail and the score's flag see it.
                Event.objects.create(
                    learner_id=send.learner_id,
                    kind=EventKind.OFFER_DECLINED,
                    occurred_at=now,
                    properties={"reason": reason, "send": send.pk},
                    idempotency_key=f"expansion:dismiss:{send.pk}",
                )
                learners_mark_dirty([send.learner_id])
                scoring_kick_on_commit()
    send.refresh_from_db()
    return send


def card_payload(card: Card, *, base: str) -> dict[str, Any]:
    send = card.send
    feedback = f"{base}/api/v1/sends/{send.pk}"
    return {
        "send": send.pk,
        "campaign": send.campaign.name if send.campaign else "",
        "moment": send.moment.slug if send.moment else "",
        "title": card.title,
        "body_html": card.body_html,
        "body_text": card.body_text,
        "cta_url": card.cta_url,
        "reason": card.reason,
        "expires_at": card.expires_at,
        "offer": {
            "name": send.offer.name,
            "product": send.offer.product.name,
        }
        if send.offer
        else None,
        "tracking": {kind: f"{feedback}/{kind}/" for kind in FEEDBACK_KINDS},
    }
