"""Dispatch: queued campaign emails leave in chunks, each at most once, none lost.

The promise, and how it is kept:

* **Claimed under a lease.** A chunk is claimed in one statement (``campaigns.claim``:
  ``queued → sending``, ``FOR UPDATE SKIP LOCKED``: concurrent dispatchers take disjoint rows)
  under a ``DispatchLease`` its heartbeat renews while the chunk is being sent
  (``campaigns.leases``). Recovery takes only expired leases, so a slow chunk is never sent
  twice.
* **Marked one message at a time.** Just before a message leaves, one statement (one
  commit) renews and checks the lease and marks it as handed over (with its Message-ID,
  counting the attempt); an outcome other than *sent* of the previous message commits with
  that mark, and the messages the server took are written for the chunk at once
  (``campaigns.ledger``): the next mark is their record meanwhile. A worker killed at any
  point leaves at most one message of unknown outcome — the last it handed over — which
  recovery fails with that reason instead of sending it again (its earlier ones it records
  as sent); a worker that lost its lease stops before sending.
* **Checked at the moment it leaves** (``campaigns.guardrails``, ``campaigns.quiet_hours``):
  quiet hours in the learner's zone (it waits for their end), consent and suppression, the
  guardrails that change overnight and the frequency caps; a stop is stored with its rule.
* **One failure fails alone.** A send whose context, template or message cannot be built is
  failed at once with its reason; the rest of the chunk goes on. A campaign whose sends fail
  ``pause_after_failures`` times in a row for the same reason — a build failure, or the
  server refusing the message itself (5xx to DATA) — pauses itself and says why.
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

import psycopg
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Case, F, PositiveSmallIntegerField, Value, When
from django.utils import timezone

from expansion.commerce.models import CommerceSettings
from templates.engine import RenderError

from .circuit import circuit_close, circuit_pass, circuit_trip
from .claim import CHUNK, due_count, sends_claim
from .contexts import send_context, send_contexts, send_contexts_each
from .delivery import (
    MAX_ATTEMPTS,
    Prepared,
    email_prepare,
    message_hand,
    message_refused,
    retry_at,
    server_down,
    transient,
)
from .guardrails import SendTimeChecks
from .leases import Heartbeat, lease_create, lease_end, lease_length, sends_recover
from .ledger import Ledger
from .models import (
    Campaign,
    CampaignStatus,
    DispatchLease,
    GuardrailPolicy,
    Send,
    SendEventKind,
    SendStatus,
)
from .quiet_hours import next_allowed, quiet_until

log = logging.getLogger(__name__)

# A learner whose new data waits for its scoring pass is looked at again this much later.
WAIT_FOR_SCORES = timedelta(seconds=60)

# sends_claim, due_count (campaigns.claim), send_context(s) (campaigns.contexts) and
# sends_recover (campaigns.leases) are importable from here too.
__all__ = [
    "CHUNK",
    "Dispatched",
    "dispatch_chunk",
    "due_count",
    "send_context",
    "send_contexts",
    "sends_claim",
    "sends_recover",
]


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


# Failures that say something about the campaign, not about one recipient or the server:
# its sends' context, template or message could not be built, or the server refused the
# message itself for good (``message_refused``: 5xx to DATA). These make up a streak that
# pauses it; a refused recipient, a server that is down (the circuit breaker's matter) or a
# retry given up are not.
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
    # The learner rows are joined; the rows a chunk's sends share (a few campaigns, offers,
    # courses and template versions) are read once each: joined, every send carried its own
    # copy of the template's bodies (~23 ms of a 200-send chunk's read, bench/delivery.py).
    sends = list(
        Send.objects.filter(pk__in=ids)
        .select_related("learner", "learner__score")
        .prefetch_related("offer__product", "course", "template_version", "campaign__moment")
        .order_by("id")
    )
    policy = GuardrailPolicy.load()
    now = clock()
    checks = SendTimeChecks(sends=sends, policy=policy, now=now)
    contexts = send_contexts_each(sends, now, CommerceSettings.load())
    ledger = Ledger()
    failures: list[tuple[Send, str]] = []
    delivered: set[int] = set()
    paused: set[int] = set()

    def fail(send: Send, reason: str, message_id: str = "", *, refused: bool = False) -> None:
        ledger.closed.append(
            (send.pk, SendStatus.FAILED, "", reason, SendEventKind.FAILED, message_id)
        )
        done.failed += 1
        # The reason's kind only: the rest may name the recipient (no personal data in logs).
        log.warning(
            "send %s of campaign %s failed (%s)", send.pk, send.campaign_id, reason.split(":")[0]
        )
        if refused or _campaign_fault(reason):
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


# Renew and check the lease and mark the message as handed over: one statement, one commit
# (the common case, nothing else pending). Both updates run whatever the other finds; the
# mark is conditioned on the renewal, so a lost lease marks nothing.
#
# The row is found by its primary key: written as ``status = 'sending'``, the condition let
# the planner prefer send_sending_idx (its statistics, taken while the rows were queued,
# promise one row either way), which holds every row being sent — each mark read the whole
# index: 0.86 ms of a 1,000-email chunk's marks at the end (480 buffers), 0.7 ms of
# PostgreSQL's CPU an email on average (bench/delivery.py).
_HAND_OVER = """
WITH renewed AS (
  UPDATE {lease} SET expires_at = %(expires)s WHERE id = %(lease)s AND expires_at > %(now)s
  RETURNING id
), marked AS (
  UPDATE {send} SET handoff_at = %(now)s, message_id = %(message_id)s,
    attempts = attempts + 1, subject = %(subject)s, locale = %(locale)s, to_email = %(to)s
  WHERE id = %(send_id)s AND lease = %(lease)s AND coalesce(status, '') = 'sending'
    AND EXISTS (SELECT 1 FROM renewed)
  RETURNING id
)
SELECT (SELECT COUNT(*) FROM renewed), (SELECT COUNT(*) FROM marked)
"""


def _mark(sql: str, params: dict) -> tuple[int, int]:
    """Run the mark as a server-side prepared statement (psycopg prepares it on the
    connection's first use and reuses it after). Django's cursors bind parameters on the
    client, so PostgreSQL parsed and planned the statement again for every message: 0.11 ms
    of its 0.23 ms (pg_stat_statements with ``track_planning``, bench/delivery.py)."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        row = cursor.fetchone()
    assert row is not None
    return row[0], row[1]


def _hand_over(prepared: Prepared, lease, ledger: Ledger, clock, done: Dispatched) -> str:
    """Renew and check the lease, write the outcomes other than *sent* that are pending, mark
    this message as handed over (with what it carries: subject, locale, address) — one
    commit. "lost": the lease was lost (nothing marked; stop before sending); "gone": the
    row is no longer ours to send (changed meanwhile, e.g. in the admin; not sent); "ok"."""
    send = prepared.send
    now = clock()
    params = {
        "lease": lease,
        "now": now,
        "expires": now + lease_length(),
        "send_id": send.pk,
        "message_id": prepared.message_id,
        "subject": prepared.rendered.subject[:500],
        "locale": prepared.rendered.locale,
        "to": prepared.to,
    }
    sql = _HAND_OVER.format(lease=DispatchLease._meta.db_table, send=Send._meta.db_table)
    if ledger.pending:
        with transaction.atomic():  # the outcomes commit with the mark
            renewed, marked = _mark(sql, params)
            if renewed:  # otherwise nothing is marked: they are written at the chunk's end
                ledger.flush()
    else:
        # In autocommit: one round trip. A lost lease writes nothing (the mark is
        # conditioned on the renewal).
        renewed, marked = _mark(sql, params)
    if not renewed:
        done.lease_lost = True
        return "lost"
    if not marked:
        return "gone"
    send.attempts += 1
    return "ok"


def _send_one(prepared, mail, ledger: Ledger, done, clock, policy, fail) -> str:
    send = prepared.send
    try:
        message_hand(connection=mail, prepared=prepared)
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
        fail(send, reason, prepared.message_id, refused=message_refused(exc))
        return "failed"
    ledger.sent.append((prepared, clock()))
    done.sent += 1
    return "sent"
