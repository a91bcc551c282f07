"""Dispatch leases: a claim on a chunk of sends that lives only while its worker does.

A dispatcher claims its chunk under a ``DispatchLease`` that expires ``DISPATCH_LEASE_SECONDS``
after its last renewal. Its heartbeat (a thread) renews the lease while the chunk is being
sent, however slow the mail server, and the dispatcher renews it again — and checks it — in
the transaction that marks each message as handed over: a worker that lost its lease (it
was frozen, or cut off from the database, longer than the lease) stops before sending
anything else. Recovery (``sends_recover``, every 30 s from beat and before every dispatch)
takes only the sends of expired leases, deleting the lease in the same transaction, so a
renewal and a recovery cannot both win: each is a conditional write of the one lease row.

Recovery requeues a dead worker's sends that were never handed over, records as sent the
ones it handed over before its last (it marks a message only once it knows the previous
one's outcome), and fails — with the reason — the at most one it was handing over when it
died (its outcome is unknown; retrying it could deliver it twice).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import DispatchLease, Send, SendEvent, SendEventKind, SendStatus

log = logging.getLogger(__name__)

UNKNOWN = (
    "outcome unknown: the worker was lost while handing it to the mail server; "
    "not retried, so that it cannot arrive twice"
)


def lease_length() -> timedelta:
    return timedelta(seconds=settings.DISPATCH_LEASE_SECONDS)


def heartbeat_interval() -> timedelta:
    """How often a worker's heartbeat renews its lease: a quarter of the lease, so three
    renewals in a row can be missed (a slow database) before the lease expires."""
    return lease_length() / 4


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def lease_create(*, now: datetime) -> uuid.UUID:
    """A new lease (inside the claim's transaction)."""
    lease = uuid.uuid4()
    DispatchLease.objects.create(
        id=lease, worker=worker_name(), claimed_at=now, expires_at=now + lease_length()
    )
    return lease


def lease_renew(*, lease: uuid.UUID, now: datetime) -> bool:
    """Extend the lease if it is still ours and alive; False if it expired or was taken."""
    return bool(
        DispatchLease.objects.filter(pk=lease, expires_at__gt=now).update(
            expires_at=now + lease_length()
        )
    )


def lease_end(*, lease: uuid.UUID) -> None:
    DispatchLease.objects.filter(pk=lease).delete()


class Heartbeat:
    """Renews a lease every ``heartbeat_interval`` (a quarter of its length) from its own
    thread (and connection) until stopped; ``lost`` is set once a renewal finds the lease
    gone."""

    def __init__(self, *, lease: uuid.UUID, clock) -> None:
        self.lease = lease
        self.clock = clock
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispatch-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        interval = heartbeat_interval().total_seconds()
        try:
            while not self._stop.wait(interval):
                try:
                    if not lease_renew(lease=self.lease, now=self.clock()):
                        self.lost.set()
                        return
                except Exception:  # noqa: BLE001 - the dispatcher's own renewal decides
                    log.warning("dispatch heartbeat could not renew its lease", exc_info=True)
                    close_old_connections()
        finally:
            connection.close()


def sends_recover(*, now: datetime | None = None) -> dict[str, int]:
    """The sends of dead dispatchers (their lease expired): the ones never handed over go back
    to the queue; of the ones handed over, the last per dead worker — the one it was handing
    over — is failed with the reason (its outcome is unknown), and the ones before it are
    recorded as sent (a worker hands a message over only once it knows the previous one's
    outcome, and writes any outcome but *sent* with that mark: ``campaigns.ledger``). Returns
    the counts. Idempotent; safe beside live dispatchers."""
    now = now or timezone.now()
    with transaction.atomic():
        # SKIP LOCKED: a lease being renewed at this moment is alive.
        expired = list(
            DispatchLease.objects.select_for_update(skip_locked=True)
            .filter(expires_at__lte=now)
            .values_list("pk", flat=True)
        )
        # Rows claimed before leases existed carry none: their claim time is their lease.
        stale = Send.objects.filter(status=SendStatus.SENDING).filter(
            Q(lease__in=expired) | Q(lease__isnull=True, claimed_at__lte=now - lease_length())
        )
        requeued = stale.filter(handoff_at=None).update(status=SendStatus.QUEUED, lease=None)
        # A dispatcher hands its chunk over in id order (campaigns.dispatch): a lease's last
        # handed-over row is its highest id. A row without a lease says nothing of its order.
        handed = list(
            stale.exclude(handoff_at=None).values_list("pk", "lease", "handoff_at").order_by("pk")
        )
        last = {lease: pk for pk, lease, _ in handed if lease is not None}
        unknown = [pk for pk, lease, _ in handed if lease is None or last[lease] == pk]
        left = [(pk, at) for pk, lease, at in handed if lease is not None and last[lease] != pk]
        Send.objects.filter(pk__in=unknown).update(
            status=SendStatus.FAILED, status_reason=UNKNOWN, lease=None
        )
        Send.objects.filter(pk__in=[pk for pk, _ in left]).update(
            status=SendStatus.SENT,
            status_reason="",
            sent_at=F("handoff_at"),
            provider_message_id=F("message_id"),
            lease=None,
        )
        SendEvent.objects.bulk_create(
            [SendEvent(send_id=pk, kind=SendEventKind.FAILED, detail=UNKNOWN) for pk in unknown]
            + [SendEvent(send_id=pk, kind=SendEventKind.SENT, at=at or now) for pk, at in left]
        )
        DispatchLease.objects.filter(pk__in=expired).delete()
    if requeued or unknown or left:
        log.warning(
            "recovered %d sends of %d expired dispatch leases (%d recorded sent, %d of unknown "
            "outcome)",
            requeued + len(unknown) + len(left),
            len(expired),
            len(left),
            len(unknown),
        )
    return {
        "requeued": requeued,
        "unknown": len(unknown),
        "sent": len(left),
        "leases": len(expired),
    }
