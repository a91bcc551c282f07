"""The outcomes of a dispatch chunk not yet written (``campaigns.dispatch``)."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from .delivery import Prepared, sent_fields
from .models import Send, SendEvent, SendEventKind, SendStatus, status_now

# One UPDATE for every delivered message of a chunk. Conditioned on our Message-ID, not on
# the status: a message the server took is recorded as sent even if recovery meanwhile
# called its outcome unknown; a row requeued and claimed by another worker (another
# Message-ID) is not touched. 200 rows take ~3 ms, against ~0.6 ms each one by one.
_SENT = """
UPDATE {send} AS s SET status = %s, status_reason = '', sent_at = v.sent_at,
  subject = v.subject, locale = v.locale, to_email = v.to_email,
  provider_message_id = v.provider_message_id, lease = NULL
FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
            %s::text[]) AS v(id, message_id, sent_at, subject, locale, to_email,
                             provider_message_id)
WHERE s.id = v.id AND s.message_id = v.message_id
"""


class Ledger:
    """Outcomes not yet written.

    The messages the server took are written for the chunk at once (``flush``, at the end
    of the chunk or with the next other outcome): until then the hand-over mark of the next
    message is their record — a worker marks a message only after it knows the previous
    one's outcome, and writes any outcome but *sent* in that same commit — so recovery
    counts a dead worker's handed-over messages before its last as sent
    (``campaigns.leases.sends_recover``) and at most one handed-over message is ever without
    its outcome. Failures, stops and deferrals are written before the next message is
    marked (``pending``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Prepared, datetime]] = []
        # (send id, status, rule, reason, event kind, handed-over Message-ID or "")
        self.closed: list[tuple[int, str, str, str, str, str]] = []
        # (send id, not before, reason, handed-over Message-ID or "")
        self.deferred: list[tuple[int, datetime, str, str]] = []

    @property
    def pending(self) -> bool:
        """Outcomes other than *sent* wait to be written (before the next hand-over)."""
        return bool(self.closed or self.deferred)

    def flush(self) -> None:
        if self.sent:
            fields = [sent_fields(prepared, at) for prepared, at in self.sent]
            with connection.cursor() as cursor:
                cursor.execute(
                    _SENT.format(send=Send._meta.db_table),
                    [
                        SendStatus.SENT,
                        [prepared.send.pk for prepared, _ in self.sent],
                        [row["message_id"] for row in fields],
                        [row["sent_at"] for row in fields],
                        [row["subject"] for row in fields],
                        [row["locale"] for row in fields],
                        [row["to_email"] for row in fields],
                        [row["provider_message_id"] for row in fields],
                    ],
                )
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
                else rows.filter(status_now(SendStatus.SENDING), handoff_at=None)
            )
            rows.update(status=status, rule=rule, status_reason=reason[:500], lease=None)
        if self.closed:
            SendEvent.objects.bulk_create(
                [
                    SendEvent(send_id=row[0], kind=row[4], detail=row[3][:1000])
                    for row in self.closed
                ]
            )
        for pk, not_before, reason, message_id in self.deferred:
            rows = Send.objects.filter(pk=pk)
            rows = (
                rows.filter(message_id=message_id)
                if message_id
                else rows.filter(status_now(SendStatus.SENDING), handoff_at=None)
            )
            rows.update(
                status=SendStatus.QUEUED,
                status_reason=f"deferred: {reason}"[:500],
                handoff_at=None,
                lease=None,
                scheduled_for=not_before,
            )
        if self.deferred:
            SendEvent.objects.bulk_create(
                [
                    SendEvent(send_id=pk, kind=SendEventKind.DEFERRED, detail=reason[:1000])
                    for pk, _, reason, _ in self.deferred
                ]
            )
        self.sent, self.closed, self.deferred = [], [], []
