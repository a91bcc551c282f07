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

from expansion.models import CommerceSettings
from templates import engine
from templates.context import ContextRequest, contexts_build

from .delivery import (
    MAX_ATTEMPTS,
    Prepared,
    _transient,
    email_prepare,
    retry_delay,
    send_blockers,
    sent_fields,
)
from .models import Send, SendEvent, SendEventKind, SendStatus

CHUNK = 200
# Emails handed to the server per commit (see dispatch_chunk).
HANDOFF_BATCH = 20
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
    # The picked ids as one array (PostgreSQL), matched by primary key alone: as
    # ``IN (SELECT …) AND status = 'queued'`` the planner, with the statistics of before an
    # evaluation queued 100,000 sends, looped over every queued row for each picked one (5 s a
    # claim, bench/dispatch.py). The status need not be checked again: the pick locked those
    # rows (FOR UPDATE re-reads a row changed meanwhile and keeps it only if still queued).
    picked = (
        "= ANY(ARRAY(SELECT id FROM picked))"
        if connection.vendor == "postgresql"
        else "IN (SELECT id FROM picked) AND status = 'queued'"
    )
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
            WHERE id {picked}
            RETURNING id
            """,
            [stamp, limit, stamp],
        )
        return sorted(row[0] for row in cursor.fetchall())


def send_contexts(
    sends: list[Send], now: datetime, policy: CommerceSettings | None = None
) -> list[dict[str, Any]]:
    """The personalisation context of each campaign send (its learner, score, course, offer
    terms, usage, value receipt and reason) — the one builder previews and test sends use
    too (``templates.context.contexts_build``)."""
    return contexts_build(
        requests=[
            ContextRequest(
                learner=send.learner, course_id=send.course_id, offer=send.offer, reason=send.reason
            )
            for send in sends
        ],
        now=now,
        policy=policy,
    )


def send_context(
    send: Send, now: datetime, policy: CommerceSettings | None = None
) -> dict[str, Any]:
    """One send's context (``send_contexts`` for one)."""
    return send_contexts([send], now, policy)[0]


def _release(ids: list[int]) -> int:
    """Claimed but not attempted (the server is down): back to the queue as they were."""
    return Send.objects.filter(pk__in=ids, status=SendStatus.SENDING, handoff_at=None).update(
        status=SendStatus.QUEUED
    )


class _Ledger:
    """What a chunk has done and not yet written: written together with the next hand-off
    marks, so a chunk costs about one commit per ``HANDOFF_BATCH`` emails, not two per email."""

    def __init__(self, done: Dispatched) -> None:
        self.done = done
        self.sent: list[tuple[Prepared, datetime]] = []
        self.closed: list[tuple[int, str, str, str]] = []  # (id, status, reason, event kind)
        self.deferred: list[tuple[Send, str]] = []

    def flush(self) -> None:
        if self.sent:
            rows = []
            for prepared, at in self.sent:
                row = prepared.send
                for name, value in sent_fields(prepared, at).items():
                    setattr(row, name, value)
                rows.append(row)
            Send.objects.bulk_update(
                rows,
                [
                    "status",
                    "status_reason",
                    "sent_at",
                    "subject",
                    "locale",
                    "to_email",
                    "message_id",
                    "provider_message_id",
                ],
            )
            SendEvent.objects.bulk_create(
                [
                    SendEvent(send=row, kind=SendEventKind.SENT, at=at)
                    for row, (_, at) in zip(rows, self.sent, strict=True)
                ]
            )
        for pk, status, reason, _kind in self.closed:
            Send.objects.filter(pk=pk).update(status=status, status_reason=reason[:500])
        SendEvent.objects.bulk_create(
            [
                SendEvent(send_id=pk, kind=kind, detail=reason[:1000])
                for pk, _, reason, kind in self.closed
            ]
        )
        now = timezone.now()
        for send, reason in self.deferred:
            Send.objects.filter(pk=send.pk).update(
                status=SendStatus.QUEUED,
                status_reason=f"deferred: {reason}"[:500],
                handoff_at=None,
                scheduled_for=now + retry_delay(send.attempts),
            )
            SendEvent.objects.create(send=send, kind=SendEventKind.DEFERRED, detail=reason[:1000])
        self.sent, self.closed, self.deferred = [], [], []


def dispatch_chunk(*, limit: int = CHUNK, now: datetime | None = None) -> Dispatched:
    """Claim and deliver one chunk of due campaign emails over one SMTP connection.

    Emails go in hand-off batches: one transaction records the previous batch's results and
    marks the next batch as handed over (with their Message-IDs), then those emails are sent.
    A worker killed mid-batch leaves at most ``HANDOFF_BATCH`` rows whose fate is unknown
    (``sends_recover`` fails them with that reason; none is sent twice).
    """
    now = now or timezone.now()
    done = Dispatched()
    ids = sends_claim(limit=limit, now=now)
    done.claimed = len(ids)
    if not ids:
        return done
    sends = list(
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
    blocked = send_blockers(sends)
    policy = CommerceSettings.load()
    ledger = _Ledger(done)
    untouched = [send.pk for send in sends]
    stop = False
    try:
        for start in range(0, len(sends), HANDOFF_BATCH):
            batch = sends[start : start + HANDOFF_BATCH]
            prepared: list[Prepared] = []
            for send in batch:
                untouched.remove(send.pk)
                if send.pk in blocked:
                    reason = blocked[send.pk]
                    ledger.closed.append(
                        (send.pk, SendStatus.SUPPRESSED, reason, SendEventKind.FAILED)
                    )
                    done.suppressed += 1
                    continue
                try:
                    prepared.append(
                        email_prepare(send=send, context=send_context(send, now, policy))
                    )
                except engine.RenderError as exc:
                    ledger.closed.append(
                        (send.pk, SendStatus.FAILED, f"template: {exc}", SendEventKind.FAILED)
                    )
                    done.failed += 1
            stamp = timezone.now()
            for item in prepared:
                item.send.handoff_at = stamp
                item.send.message_id = item.message_id
            with transaction.atomic():
                ledger.flush()
                Send.objects.bulk_update([p.send for p in prepared], ["handoff_at", "message_id"])
            for index, item in enumerate(prepared):
                try:
                    mail.send_messages([item.message])
                except Exception as exc:  # noqa: BLE001 - every failure is recorded
                    reason = f"{type(exc).__name__}: {exc}"
                    if _transient(exc) and item.send.attempts < MAX_ATTEMPTS:
                        ledger.deferred.append((item.send, reason))
                        done.deferred += 1
                        # "Not now" from the server: the rest of this batch was marked but
                        # not handed over, and goes back as it was.
                        untouched += [p.send.pk for p in prepared[index + 1 :]]
                        stop = True
                        break
                    if _transient(exc):
                        reason = f"gave up after {item.send.attempts} attempts: {reason}"
                    ledger.closed.append(
                        (item.send.pk, SendStatus.FAILED, reason, SendEventKind.FAILED)
                    )
                    done.failed += 1
                    continue
                ledger.sent.append((item, timezone.now()))
                done.sent += 1
            if stop:
                break
    finally:
        mail.close()
        with transaction.atomic():
            ledger.flush()
            if untouched:
                Send.objects.filter(pk__in=untouched, status=SendStatus.SENDING).update(
                    status=SendStatus.QUEUED, handoff_at=None
                )
        done.released = len(untouched)
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
