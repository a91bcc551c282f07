"""The outcomes of a dispatch chunk not yet written (``campaigns.dispatch``)."""

from __future__ import annotations

from datetime import datetime

from .delivery import Prepared, sent_fields
from .models import Send, SendEvent, SendEventKind, SendStatus


class Ledger:
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
