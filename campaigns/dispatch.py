"""Dispatch: queued campaign emails leave in chunks, each at most once, none lost.

The promise, and how it is kept:

* **Claimed under a lease.** A chunk is claimed in one statement (``queued → sending``,
  ``FOR UPDATE SKIP LOCKED``: concurrent dispatchers take disjoint rows) under a
  ``DispatchLease`` its heartbeat renews while the chunk is being sent (``campaigns.leases``).
  Recovery takes only expired leases, so a slow chunk is never sent twice.
* **Marked one message at a time.** Just before a message leaves, one transaction renews and
  checks the lease, records the previous message's outcome and marks this one as handed over
  (with its Message-ID, counting the attempt). A worker killed at any point leaves at most
  one message of unknown outcome — the one it was handing over — which recovery fails with
  that reason instead of sending it again; a worker that lost its lease stops before sending.
* **Checked at the moment it leaves** (``campaigns.guardrails``, ``campaigns.quiet_hours``):
  quiet hours in the learner's zone (it waits for their end), consent and suppression, the
  guardrails that change overnight and the frequency caps; a stop is stored with its rule.
* **One failure fails alone.** A send whose context, template or message cannot be built is
  failed at once with its reason; the rest of the chunk goes on. A campaign whose sends fail
  ``pause_after_failures`` times in a row for the same reason pauses itself and says why.
* **An outage costs nothing.** Attempts count deliveries tried, not claims. A server that
  cannot be reached opens the circuit breaker (``campaigns.circuit``) before anything is
  claimed; a message refused for now (4xx) waits with exponential backoff and jitter, and
  never into quiet hours.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Case, F, PositiveSmallIntegerField, Q, Value, When
from django.utils import timezone

from expansion.commerce.models import CommerceSettings
from templates.context import ContextRequest, contexts_build
from templates.engine import RenderError

from .circuit import circuit_close, circuit_pass, circuit_trip
from .delivery import (
    MAX_ATTEMPTS,
    Prepared,
    email_prepare,
    retry_at,
    sent_fields,
    server_down,
    transient,
)
from .guardrails import SendTimeChecks
from .leases import Heartbeat, lease_create, lease_end, lease_renew, sends_recover
from .models import (
    Campaign,
    CampaignStatus,
    GuardrailPolicy,
    Send,
    SendEvent,
    SendEventKind,
    SendStatus,
)
from .quiet_hours import next_allowed, quiet_until

log = logging.getLogger(__name__)

CHUNK = 200
# A learner whose new data waits for its scoring pass is looked at again this much later.
WAIT_FOR_SCORES = timedelta(seconds=60)

__all__ = ["CHUNK", "Dispatched", "dispatch_chunk", "due_count", "sends_claim", "sends_recover"]


@dataclass
class Dispatched:
    """What one chunk did. ``released``: claimed and put back untouched (the server went
    away, the lease was lost, or the campaign paused); ``circuit_open``: nothing was claimed
    because the mail server is known to be down."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    deferred: int = 0
    released: int = 0
    circuit_open: bool = False
    lease_lost: bool = False
    paused: list[int] = field(default_factory=list)


def _active_campaigns_sql() -> str:
    return f"SELECT id FROM {Campaign._meta.db_table} WHERE status = '{CampaignStatus.ACTIVE}'"


def sends_claim(
    *, limit: int = CHUNK, now: datetime | None = None, lease: uuid.UUID | None = None
) -> list[int]:
    """Claim up to ``limit`` due emails of active campaigns (queued → sending) under
    ``lease`` (a new one if None, committed with the claim; ended at once if nothing was
    claimed); returns their ids, in order.
    Attempts are not counted here: a claim is not a delivery tried."""
    now = now or timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    lock = " FOR UPDATE OF campaigns_send SKIP LOCKED" if connection.vendor == "postgresql" else ""
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
    with transaction.atomic():
        lease = lease or lease_create(now=now)
        with connection.cursor() as cursor:
            cursor.execute(
                # The pick is materialised once: as a plain IN (subquery … LIMIT) PostgreSQL
                # may run it again per row and claim more than the limit. A paused campaign's
                # sends wait for it to resume.
                f"""
                WITH picked AS MATERIALIZED (
                  SELECT id FROM campaigns_send
                  WHERE status = 'queued' AND channel = 'email' AND campaign_id IS NOT NULL
                    AND (scheduled_for IS NULL OR scheduled_for <= %s)
                    AND campaign_id IN ({_active_campaigns_sql()})
                  ORDER BY scheduled_for, id LIMIT %s{lock}
                )
                UPDATE campaigns_send
                SET status = 'sending', claimed_at = %s, handoff_at = NULL, lease = %s
                WHERE id {picked}
                RETURNING id
                """,
                [stamp, limit, stamp, lease if connection.vendor == "postgresql" else lease.hex],
            )
            ids = sorted(row[0] for row in cursor.fetchall())
        if not ids:
            lease_end(lease=lease)  # nothing claimed: no lease to keep alive
        return ids


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


def _contexts_each(
    sends: list[Send], now: datetime, policy: CommerceSettings
) -> dict[int, dict[str, Any] | str]:
    """Every send's context, or the reason it cannot be built: the chunk at once, and one by
    one only if that fails, so that one learner's bad data fails that send alone."""
    try:
        return dict(zip([s.pk for s in sends], send_contexts(sends, now, policy), strict=True))
    except Exception:  # noqa: BLE001 - find the one(s) that fail
        out: dict[int, dict[str, Any] | str] = {}
        for send in sends:
            try:
                out[send.pk] = send_context(send, now, policy)
            except Exception as exc:  # noqa: BLE001 - recorded on the send
                out[send.pk] = f"context: {type(exc).__name__}: {exc}"
        return out


class _Ledger:
    """Outcomes not yet written. Each is written in the transaction that marks the next
    message as handed over (or at the end of the chunk), so a chunk costs one commit per
    email, and at most one handed-over message is ever without its outcome."""

    def __init__(self) -> None:
        self.sent: list[tuple[Prepared, datetime]] = []
        # (send id, status, rule, reason, event kind, handed-over Message-ID or "")
        self.closed: list[tuple[int, str, str, str, str, str]] = []
        # (send id, not before, reason, handed-over Message-ID or "")
        self.deferred: list[tuple[int, datetime, str, str]] = []

    def flush(self) -> None:
        for prepared, at in self.sent:
            fields = sent_fields(prepared, at)
            # Conditioned on our Message-ID, not on the status: a message the server took is
            # recorded as sent even if recovery meanwhile called its outcome unknown; a row
            # requeued and claimed by another worker (another Message-ID) is not touched.
            Send.objects.filter(pk=prepared.send.pk, message_id=prepared.message_id).update(
                **fields, lease=None
            )
        if self.sent:
            SendEvent.objects.bulk_create(
                [
                    SendEvent(send_id=p.send.pk, kind=SendEventKind.SENT, at=at)
                    for p, at in self.sent
                ]
            )
        for pk, status, rule, reason, _kind, message_id in self.closed:
            rows = Send.objects.filter(pk=pk)
            rows = (
                rows.filter(message_id=message_id)
                if message_id
                else rows.filter(status=SendStatus.SENDING, handoff_at=None)
            )
            rows.update(status=status, rule=rule, status_reason=reason[:500], lease=None)
        SendEvent.objects.bulk_create(
            [SendEvent(send_id=row[0], kind=row[4], detail=row[3][:1000]) for row in self.closed]
        )
        for pk, not_before, reason, message_id in self.deferred:
            rows = Send.objects.filter(pk=pk)
            rows = (
                rows.filter(message_id=message_id)
                if message_id
                else rows.filter(status=SendStatus.SENDING, handoff_at=None)
            )
            rows.update(
                status=SendStatus.QUEUED,
                status_reason=f"deferred: {reason}"[:500],
                handoff_at=None,
                lease=None,
                scheduled_for=not_before,
            )
        SendEvent.objects.bulk_create(
            [
                SendEvent(send_id=pk, kind=SendEventKind.DEFERRED, detail=reason[:1000])
                for pk, _, reason, _ in self.deferred
            ]
        )
        self.sent, self.closed, self.deferred = [], [], []


def _streaks(
    *, failures: list[tuple[Send, str]], delivered: set[int], policy: GuardrailPolicy, now: datetime
) -> list[int]:
    """Carry each campaign's failure streak forward; pause those that reached the limit.
    Returns the campaigns paused now."""
    if delivered:
        Campaign.objects.filter(pk__in=delivered, failure_streak__gt=0).update(
            failure_streak=0, failure_reason=""
        )
    paused: list[int] = []
    for send, reason in failures:
        key = reason[:500]
        campaign_id = send.campaign_id
        assert campaign_id is not None  # the dispatcher claims campaign sends only
        Campaign.objects.filter(pk=campaign_id).update(
            failure_streak=Case(
                When(failure_reason=key, then=F("failure_streak") + 1), default=Value(1)
            ),
            failure_reason=key,
        )
        limit = policy.pause_after_failures
        if limit and Campaign.objects.filter(
            pk=campaign_id, failure_streak__gte=limit, status=CampaignStatus.ACTIVE
        ).update(
            status=CampaignStatus.PAUSED,
            paused_at=now,
            paused_reason=f"paused after {limit} sends in a row failed: {key}"[:500],
        ):
            log.warning("campaign %s paused: its sends keep failing", campaign_id)
            paused.append(campaign_id)
    return paused


# Failures that say something about the campaign (its template, its message), not about one
# recipient: these make up a streak that pauses it.
def _campaign_fault(reason: str) -> bool:
    return reason.startswith(("template:", "context:", "message:"))


def dispatch_chunk(
    *, limit: int = CHUNK, now: datetime | None = None, on_handoff: Callable | None = None
) -> Dispatched:
    """Claim and deliver one chunk of due campaign emails over one SMTP connection (see the
    module docstring for what is guaranteed). ``now``: the clock to act at (tests); it runs
    on from there. ``on_handoff``: called with each send just before its message leaves
    (fault tests)."""
    offset = (now - timezone.now()) if now is not None else timedelta(0)

    def clock() -> datetime:
        return timezone.now() + offset

    done = Dispatched()
    if not circuit_pass(now=clock()):
        done.circuit_open = True
        return done
    started = clock()
    with transaction.atomic():  # the lease commits with its claim, or not at all
        lease = lease_create(now=started)
        ids = sends_claim(limit=limit, now=started, lease=lease)
    done.claimed = len(ids)
    if not ids:
        return done  # nothing due: no connection to the mail server (and no empty mail file)
    mail = get_connection()
    try:
        mail.open()
    except Exception as exc:  # noqa: BLE001 - the server is down: the chunk goes back as it was
        with transaction.atomic():
            done.released = _release(lease)
        until = circuit_trip(error=f"{type(exc).__name__}: {exc}", now=clock())
        log.warning(
            "mail server unreachable (%s); %d sends back in the queue, dispatch paused until %s",
            type(exc).__name__,
            done.released,
            until,
        )
        done.circuit_open = True
        return done
    try:
        circuit_close()
        with Heartbeat(lease=lease, clock=clock) as heartbeat:
            _deliver(ids, lease, mail, done, clock, heartbeat, on_handoff)
    finally:
        mail.close()
    return done


def _release(lease: uuid.UUID) -> int:
    """The lease's sends still *sending* go back to the queue as they were; the lease ends.

    Called by the live worker that holds the lease, after it has written every outcome it
    knows. A row still marked as handed over then was never given to the mail server: a
    message that left has its outcome in the ledger (``_send_one`` records it before
    anything else can fail), so the mark is one whose commit failed on the client's side and
    succeeded on the server's (the connection cut at COMMIT). Left as it was, with its lease
    gone, no recovery would ever find it (a fault test found one such row in 300).
    """
    released = Send.objects.filter(lease=lease, status=SendStatus.SENDING).update(
        status=SendStatus.QUEUED,
        lease=None,
        attempts=Case(
            When(handoff_at__isnull=False, then=F("attempts") - 1),
            default=F("attempts"),
            output_field=PositiveSmallIntegerField(),
        ),
        handoff_at=None,
    )
    lease_end(lease=lease)
    return released


def _deliver(ids, lease, mail, done: Dispatched, clock, heartbeat, on_handoff) -> None:
    sends = list(
        Send.objects.filter(pk__in=ids)
        .select_related(
            "learner",
            "learner__score",
            "offer",
            "offer__product",
            "course",
            "template_version",
            "campaign",
            "campaign__moment",
        )
        .order_by("id")
    )
    policy = GuardrailPolicy.load()
    now = clock()
    checks = SendTimeChecks(sends=sends, policy=policy, now=now)
    contexts = _contexts_each(sends, now, CommerceSettings.load())
    ledger = _Ledger()
    failures: list[tuple[Send, str]] = []
    delivered: set[int] = set()
    paused: set[int] = set()

    def fail(send: Send, reason: str, message_id: str = "") -> None:
        ledger.closed.append(
            (send.pk, SendStatus.FAILED, "", reason, SendEventKind.FAILED, message_id)
        )
        done.failed += 1
        # The reason's kind only: the rest may name the recipient (no personal data in logs).
        log.warning(
            "send %s of campaign %s failed (%s)", send.pk, send.campaign_id, reason.split(":")[0]
        )
        if _campaign_fault(reason):
            failures.append((send, reason))

    try:
        for send in sends:
            if heartbeat.lost.is_set():
                done.lease_lost = True
                break
            if send.campaign_id in paused:
                continue  # released below, as it was
            at = clock()
            waits = quiet_until(send.learner.time_zone, at, policy.quiet_start, policy.quiet_end)
            if waits is not None:
                ledger.deferred.append((send.pk, waits, "quiet hours in the learner's zone", ""))
                done.deferred += 1
                continue
            stop = checks.unreachable(send)
            if stop is None and checks.waiting(send):
                ledger.deferred.append(
                    (send.pk, at + WAIT_FOR_SCORES, "waiting for the learner's new data", "")
                )
                done.deferred += 1
                continue
            stop = stop or checks.stop(send, at)
            if stop is not None:
                rule, reason = stop
                ledger.closed.append(
                    (
                        send.pk,
                        SendStatus.SUPPRESSED,
                        rule,
                        f"at sending: {reason}",
                        SendEventKind.FAILED,
                        "",
                    )
                )
                done.suppressed += 1
                continue
            context = contexts[send.pk]
            if isinstance(context, str):
                fail(send, context)
            else:
                try:
                    prepared = email_prepare(send=send, context=context)
                except Exception as exc:  # noqa: BLE001 - one send fails alone
                    kind = "template" if isinstance(exc, RenderError) else "message"
                    text = str(exc) if kind == "template" else f"{type(exc).__name__}: {exc}"
                    fail(send, f"{kind}: {text}")
                else:
                    handed = _hand_over(prepared, lease, ledger, clock, done)
                    if handed == "lost":
                        break
                    if handed == "gone":
                        continue
                    checks.left(send, clock())
                    if on_handoff is not None:
                        on_handoff(send)
                    outcome = _send_one(prepared, mail, ledger, done, clock, policy, fail)
                    if outcome == "sent" and send.campaign_id is not None:
                        delivered.add(send.campaign_id)
                    elif outcome == "server_down":
                        break
            if failures:
                with transaction.atomic():
                    ledger.flush()
                    newly = _streaks(
                        failures=failures, delivered=delivered, policy=policy, now=clock()
                    )
                failures.clear()
                delivered.clear()
                paused.update(newly)
                done.paused += newly
    finally:
        with transaction.atomic():
            ledger.flush()
            _streaks(failures=failures, delivered=delivered, policy=policy, now=clock())
            done.released = _release(lease)


def _hand_over(prepared: Prepared, lease, ledger: _Ledger, clock, done: Dispatched) -> str:
    """Renew and check the lease, write what is pending, mark this message as handed over —
    one commit. "lost": the lease was lost (nothing marked; stop before sending); "gone": the
    row is no longer ours to send (changed meanwhile, e.g. in the admin; not sent); "ok"."""
    send = prepared.send
    with transaction.atomic():
        if not lease_renew(lease=lease, now=clock()):
            done.lease_lost = True
            return "lost"
        ledger.flush()
        marked = Send.objects.filter(pk=send.pk, lease=lease, status=SendStatus.SENDING).update(
            handoff_at=clock(), message_id=prepared.message_id, attempts=F("attempts") + 1
        )
    if not marked:
        return "gone"
    send.attempts += 1
    return "ok"


def _send_one(prepared, mail, ledger: _Ledger, done, clock, policy, fail) -> str:
    send = prepared.send
    try:
        mail.send_messages([prepared.message])
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is lost
        reason = f"{type(exc).__name__}: {exc}"
        if transient(exc) and send.attempts < MAX_ATTEMPTS:
            at = clock()
            not_before = next_allowed(
                send.learner.time_zone,
                retry_at(send.attempts, at),
                policy.quiet_start,
                policy.quiet_end,
            )
            ledger.deferred.append((send.pk, not_before, reason, prepared.message_id))
            done.deferred += 1
            if server_down(exc):
                circuit_trip(error=reason, now=at)
                return "server_down"
            return "deferred"
        if transient(exc):
            reason = f"gave up after {send.attempts} attempts: {reason}"
        fail(send, reason, prepared.message_id)
        return "failed"
    ledger.sent.append((prepared, clock()))
    done.sent += 1
    return "sent"


def due_count(*, now: datetime | None = None) -> int:
    """Campaign emails due now (what a dispatch fan-out sizes itself by)."""
    now = now or timezone.now()
    return Send.objects.filter(
        Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now),
        status=SendStatus.QUEUED,
        channel="email",
        campaign__status=CampaignStatus.ACTIVE,
    ).count()
