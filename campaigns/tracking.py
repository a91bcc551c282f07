"""What happened to a message after it left: clicks on tracked links, and the email
provider's tracking events (delivered, opened, clicked, bounced, complained, rejected,
unsubscribed) through django-anymail.

A send moves forward only (a late "delivered" does not undo "clicked"); a bounce, complaint or
rejection suppresses the address for good.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.utils import timezone

from learners.models import EmailSuppression

from .models import Send, SendEvent, SendEventKind, SendStatus, status_now


def send_clicked(*, send_id: int, url: str) -> bool:
    """Record a click on a tracked link; False if there is no such send."""
    now = timezone.now()
    updated = Send.objects.filter(pk=send_id).update(clicks=F("clicks") + 1)
    if not updated:
        return False
    Send.objects.filter(pk=send_id, clicked_at__isnull=True).update(clicked_at=now)
    # An in-app card clicked before its impression came in was shown: sent now (serving it
    # changed nothing, campaigns.inapp).
    if Send.objects.filter(status_now(SendStatus.QUEUED), pk=send_id, channel="in_app").update(
        status=SendStatus.SENT, sent_at=now
    ):
        SendEvent.objects.create(send_id=send_id, kind=SendEventKind.SERVED, at=now)
    Send.objects.filter(
        pk=send_id, status__in=[SendStatus.SENT, SendStatus.DELIVERED, SendStatus.OPENED]
    ).update(status=SendStatus.CLICKED)
    SendEvent.objects.create(send_id=send_id, kind=SendEventKind.CLICKED, detail=url[:1000])
    return True


ANYMAIL_SUPPRESS = {"bounced": "bounce", "complained": "complaint", "rejected": "rejected"}
ANYMAIL_KIND = {
    "delivered": SendEventKind.DELIVERED,
    "opened": SendEventKind.OPENED,
    "clicked": SendEventKind.CLICKED,
    "bounced": SendEventKind.BOUNCED,
    "complained": SendEventKind.COMPLAINED,
    "rejected": SendEventKind.FAILED,
    "unsubscribed": SendEventKind.UNSUBSCRIBED,
}


def tracking_record(
    *, event_type: str, message_id: str, recipient: str, detail: str = "", at=None
) -> Send | None:
    """One provider tracking event (django-anymail's normalised form).

    Bounces, complaints and rejections suppress the address for good — even if no send of
    ours matches the id. Delivered / opened / clicked move the matching send forward (never
    back: a late "delivered" does not undo "clicked").
    """
    at = at or timezone.now()
    if event_type in ANYMAIL_SUPPRESS and recipient:
        EmailSuppression.objects.get_or_create(
            email=recipient.strip().lower(),
            defaults={"reason": ANYMAIL_SUPPRESS[event_type], "detail": detail[:500]},
        )
    send = Send.objects.filter(provider_message_id=message_id).first() if message_id else None
    if send is None or event_type not in ANYMAIL_KIND:
        return send
    SendEvent.objects.create(send=send, kind=ANYMAIL_KIND[event_type], at=at, detail=detail[:1000])
    progress = [SendStatus.SENT, SendStatus.DELIVERED, SendStatus.OPENED, SendStatus.CLICKED]
    rows = Send.objects.filter(pk=send.pk)
    if event_type == "delivered":
        rows.filter(delivered_at__isnull=True).update(delivered_at=at)
        rows.filter(status=SendStatus.SENT).update(status=SendStatus.DELIVERED)
    elif event_type == "opened":
        rows.filter(opened_at__isnull=True).update(opened_at=at)
        rows.filter(status__in=progress[:2]).update(status=SendStatus.OPENED)
    elif event_type == "clicked":
        rows.filter(clicked_at__isnull=True).update(clicked_at=at)
        rows.filter(status__in=progress[:3]).update(status=SendStatus.CLICKED)
    elif event_type in ANYMAIL_SUPPRESS:
        rows.filter(status__in=progress).update(
            status=SendStatus.FAILED, status_reason=f"{event_type}: {detail}"[:500]
        )
    send.refresh_from_db()
    return send


def on_anymail_tracking(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    """django-anymail's ``tracking`` signal → ``tracking_record`` (connected in apps.py)."""
    why = "; ".join(
        str(part) for part in (event.reject_reason, event.description, event.mta_response) if part
    )
    tracking_record(
        event_type=event.event_type,
        message_id=str(event.message_id or ""),
        recipient=event.recipient or "",
        detail=f"{esp_name}: {why}",
        at=event.timestamp,
    )
