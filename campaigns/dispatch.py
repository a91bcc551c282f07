"""Dispatch: queued campaign emails leave in chunks, each send exactly once or not at all.

A chunk is claimed in one statement (``queued → sending``, ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so concurrent workers take disjoint rows), then its emails go out over one SMTP
connection, each recorded as it leaves (``campaigns.delivery.email_send``). A send whose server
is down goes back to the queue with a backoff (``scheduled_for``); the rest of the chunk is
released untouched. A worker that dies mid-chunk leaves rows in *sending*; ``sends_recover``
returns those it never handed to the mail server to the queue, and fails — with the reason —
the at most one it was handing over when it died, because nobody can know whether the server
took it: a send is never delivered twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.mail import get_connection
from django.db import connection, transaction
from django.utils import timezone

from expansion.pricing import offer_terms
from templates.context import message_context, offer_context

from .delivery import DeliveryDeferred, email_send
from .models import Send, SendEvent, SendEventKind, SendStatus

CHUNK = 200
LEASE = timedelta(minutes=10)


@dataclass
class Dispatched:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    deferred: int = 0
    released: int = 0


def sends_claim(*, limit: int = CHUNK, now: datetime | None = None) -> list[int]:
    """Claim up to ``limit`` due campaign emails (queued → sending); returns their ids."""
    now = now or timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            # The pick is materialised once: as a plain IN (subquery … LIMIT) PostgreSQL may
            # run it again per row and claim more than the limit.
            f"""
            WITH picked AS MATERIALIZED (
              SELECT id FROM campaigns_send
              WHERE status = 'queued' AND channel = 'email' AND campaign_id IS NOT NULL
                AND (scheduled_for IS NULL OR scheduled_for <= %s)
              ORDER BY scheduled_for, id LIMIT %s{lock}
            )
            UPDATE campaigns_send
            SET status = 'sending', attempts = attempts + 1, claimed_at = %s, handoff_at = NULL
            WHERE id IN (SELECT id FROM picked) AND status = 'queued'
            RETURNING id
            """,
            [stamp, limit, stamp],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _context(send: Send, now: datetime) -> dict[str, Any]:
    learner = send.learner
    score = getattr(learner, "score", None)
    offer = None
    if send.offer is not None:
        offer = offer_context(
            offer=send.offer, terms=offer_terms(offer=send.offer, learner_id=learner.pk, now=now)
        )
    course = {"title": send.course.title} if send.course is not None else None
    return message_context(
        learner=learner, score=score, course=course, offer=offer, reason=send.reason
    )


def _release(ids: list[int]) -> int:
    """Claimed but not attempted (the server is down): back to the queue as they were."""
    return Send.objects.filter(pk__in=ids, status=SendStatus.SENDING, handoff_at=None).update(
        status=SendStatus.QUEUED
    )


def dispatch_chunk(*, limit: int = CHUNK, now: datetime | None = None) -> Dispatched:
    """Claim and deliver one chunk of due campaign emails over one SMTP connection."""
    now = now or timezone.now()
    done = Dispatched()
    ids = sends_claim(limit=limit, now=now)
    done.claimed = len(ids)
    if not ids:
        return done
    sends = (
        Send.objects.filter(pk__in=ids)
        .select_related(
            "learner", "learner__score", "offer", "offer__product", "course", "template_version"
        )
        .order_by("id")
    )
    mail = get_connection()
    try:
        mail.open()
    except Exception:  # noqa: BLE001 - the server is down: release the whole chunk
        done.released = _release(ids)
        return done
    pending = list(ids)
    try:
        for send in sends:
            pending.remove(send.pk)
            try:
                outcome = email_send(
                    send=send, context=_context(send, now), connection=mail, claimed=True
                )
            except DeliveryDeferred:
                done.deferred += 1
                # The server answered "not now": the rest of the chunk would too.
                done.released = _release(pending)
                break
            status = outcome.send.status
            if status == SendStatus.SENT:
                done.sent += 1
            elif status == SendStatus.SUPPRESSED:
                done.suppressed += 1
            else:
                done.failed += 1
    finally:
        mail.close()
    return done


def sends_recover(*, now: datetime | None = None, lease: timedelta = LEASE) -> dict[str, int]:
    """Rows left in *sending* by a dead worker (claimed longer ago than ``lease``)."""
    now = now or timezone.now()
    stale = Send.objects.filter(status=SendStatus.SENDING, claimed_at__lt=now - lease)
    requeued = stale.filter(handoff_at=None).update(status=SendStatus.QUEUED)
    unknown = list(stale.exclude(handoff_at=None).values_list("pk", flat=True))
    reason = (
        "outcome unknown: the worker was lost while handing it to the mail server; "
        "not retried, so that it cannot arrive twice"
    )
    Send.objects.filter(pk__in=unknown, status=SendStatus.SENDING).update(
        status=SendStatus.FAILED, status_reason=reason
    )
    SendEvent.objects.bulk_create(
        [SendEvent(send_id=pk, kind=SendEventKind.FAILED, detail=reason) for pk in unknown]
    )
    return {"requeued": requeued, "unknown": len(unknown)}


def due_count(*, now: datetime | None = None) -> int:
    from django.db.models import Q

    now = now or timezone.now()
    return Send.objects.filter(
        Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now),
        status=SendStatus.QUEUED,
        channel="email",
        campaign__isnull=False,
    ).count()
