"""Email delivery: one ``Send`` row in, one email out — or a recorded reason why not.

``email_send`` claims the row (queued → sending; a row someone else claimed is left alone),
checks consent and suppression, renders the exact template version, signs the unsubscribe,
preference and click-tracking links (``campaigns.links``), adds the one-click unsubscribe
headers (RFC 8058) and hands the message to Django's email backend (SMTP by default; any
django-anymail provider by setting ``EMAIL_BACKEND``). The Message-ID is stored.

Errors: a template that does not render, a refused recipient or any other permanent SMTP
error marks the send failed with the reason and is never retried; a server that is down or
answers 4xx puts the row back in the queue with the reason and raises ``DeliveryDeferred``
for the dispatcher to retry with backoff. What happens to a message after it left (clicks,
the provider's tracking events) is ``campaigns.tracking``.
"""

from __future__ import annotations

import functools
import random
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.db.models import F
from django.utils import timezone

from experiments.assignment import bucket, global_holdout_bucket_limit
from learners.consent import consent_blockers
from learners.models import EmailSuppression, Learner, MessageCategory
from templates import engine
from templates.mail import email_build, envelope_address, message_bytes
from templates.messages import message_render
from templates.models import MessageTemplateVersion

from .links import click_token, links_tracked, unsubscribe_token, unsubscribe_url
from .models import Send, SendEvent, SendEventKind, SendStatus, status_now

# The signed links (campaigns.links) are importable from here too.
__all__ = [
    "MAX_ATTEMPTS",
    "DeliveryDeferred",
    "Outcome",
    "Prepared",
    "click_token",
    "email_prepare",
    "email_send",
    "message_hand",
    "message_refused",
    "retry_at",
    "retry_delay",
    "send_blockers",
    "send_create",
    "sent_fields",
    "server_down",
    "transient",
    "unsubscribe_token",
]


class DeliveryDeferred(Exception):
    """The email could not leave now but may later (the row is queued again)."""


def send_create(
    *,
    learner: Learner,
    version: MessageTemplateVersion,
    category: str | None = None,
    is_test: bool = False,
    to_email: str = "",
) -> Send:
    return Send.objects.create(
        learner=learner,
        template_version=version,
        channel=version.channel,
        category=category or version.category,
        is_test=is_test,
        to_email=to_email or learner.email,
    )


def _event(send: Send, kind: str, detail: str = "") -> None:
    SendEvent.objects.create(send=send, kind=kind, detail=detail[:1000])


def _finish(send: Send, status: str, reason: str, kind: str) -> Send:
    Send.objects.filter(pk=send.pk).update(status=status, status_reason=reason[:500])
    _event(send, kind, reason)
    send.refresh_from_db()
    return send


def server_down(exc: BaseException) -> bool:
    """The failure says the mail server is unreachable or unavailable (connection refused,
    reset or timed out; 421 "closing the channel", RFC 5321; a provider's 5xx or 429), not
    that it refused this one message: stop the chunk and open the circuit breaker."""
    if isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code == 421
    if isinstance(exc, smtplib.SMTPException):
        return False
    if isinstance(exc, OSError):  # refused, reset, unreachable, timed out
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status is not None and (status >= 500 or status == 429)


def transient(exc: BaseException) -> bool:
    """Worth another try later: the server down, or a 4xx answer for this message."""
    if server_down(exc):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return False


def message_refused(exc: BaseException) -> bool:
    """The server took the envelope and refused the message itself for good (5xx to DATA:
    "rejected as spam", "message content refused") — an answer about what the campaign
    sends, unlike a refused recipient (one address) or a server that is down."""
    return isinstance(exc, smtplib.SMTPDataError) and 500 <= exc.smtp_code < 600


@dataclass(frozen=True)
class Outcome:
    send: Send
    sent: bool


@dataclass(frozen=True)
class Prepared:
    """A send's email, rendered and built, not yet handed to the server."""

    send: Send
    message: Any
    message_id: str
    rendered: Any
    to: str
    # The SMTP envelope, as Django's SMTP backend would write it (checked while building).
    envelope_from: str = ""
    envelope_to: tuple[str, ...] = ()


def send_blockers(sends: list[Send]) -> dict[int, str]:
    """Why each of these sends may not go now — consent and suppression (the address it goes
    to), the global holdout for marketing — in a few queries for any number of sends. A test
    send only needs an address that is not suppressed."""
    real = [send for send in sends if not send.is_test]
    found = consent_blockers([(send.learner, send.category, send.to_email) for send in real])
    reasons = {send.pk: reason for send, reason in zip(real, found, strict=True)}
    tests = [send for send in sends if send.is_test]
    if tests:
        addresses = {
            send.pk: (send.to_email or send.learner.email).strip().lower() for send in tests
        }
        suppressed = set(
            EmailSuppression.objects.filter(email__in=set(addresses.values())).values_list(
                "email", flat=True
            )
        )
        for pk, address in addresses.items():
            if not address:
                reasons[pk] = "no email address"
            elif address in suppressed:
                reasons[pk] = "address suppressed (bounce or complaint)"
    salt, limit = global_holdout_bucket_limit()
    for send in real:
        if (
            not reasons[send.pk]
            and send.category != MessageCategory.TRANSACTIONAL
            and bucket(salt, send.learner_id) < limit
        ):
            # The last line of the global holdout: campaigns leave these learners out already.
            reasons[send.pk] = "in the global holdout (no marketing)"
    return {pk: reason for pk, reason in reasons.items() if reason}


def email_prepare(*, send: Send, context: dict[str, Any], to: str = "") -> Prepared:
    """Render the recorded template version, sign the unsubscribe and click links, build the
    message. No database writes; raises ``engine.RenderError`` for a template that fails and
    ``ValueError`` for an address the message cannot be sent to."""
    to = to or send.to_email or send.learner.email
    marketing = send.category != MessageCategory.TRANSACTIONAL
    links = {"unsubscribe_url": "", "preferences_url": ""}
    if marketing or send.is_test:
        links["unsubscribe_url"] = links["preferences_url"] = unsubscribe_url(send.pk)
    rendered = message_render(
        version=send.template_version, context={**context, **links}, locale=send.locale
    )
    html_body, text_body = links_tracked(
        html_body=rendered.html,
        text_body=rendered.text,
        send_id=send.pk,
        skip={url for url in links.values() if url},
    )
    rendered = type(rendered)(
        subject=rendered.subject,
        preheader=rendered.preheader,
        html=html_body,
        text=text_body,
        locale=rendered.locale,
    )
    message_id = make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN)
    message = email_build(
        rendered=rendered,
        to=to,
        unsubscribe_url=links["unsubscribe_url"],
        message_id=message_id,
        test=send.is_test,
    )
    # The envelope as the SMTP backend will write it, checked now: an address that cannot be
    # sent (a newline in it, a stray second address) fails this send while it is built, not
    # after it was marked as handed over and counted as an attempt.
    encoding = message.encoding or settings.DEFAULT_CHARSET
    envelope_from = _sender(message.from_email, encoding)
    envelope_to = tuple(envelope_address(address, encoding) for address in message.recipients())
    return Prepared(
        send=send,
        message=message,
        message_id=message_id,
        rendered=rendered,
        to=to,
        envelope_from=envelope_from,
        envelope_to=envelope_to,
    )


# The sender is the same for every message: checked once (0.25 ms a call).
_sender = functools.lru_cache(maxsize=64)(sanitize_address)


def message_hand(*, connection: Any, prepared: Prepared) -> None:
    """Hand one prepared message to an open mail connection; raises what the server answered.

    Over Django's own SMTP backend the message goes straight to its open ``smtplib``
    session — the envelope checked at preparation, the bytes the backend would write
    (``templates.mail.message_bytes``) — which saves ~1 ms of CPU an email
    (bench/delivery.py); any other backend (django-anymail's, the file backend in tests) gets
    ``send_messages``, as before.
    """
    session = getattr(connection, "connection", None)
    if type(connection) is SMTPBackend and session is not None and prepared.envelope_to:
        session.sendmail(
            prepared.envelope_from, list(prepared.envelope_to), message_bytes(prepared.message)
        )
    else:
        connection.send_messages([prepared.message])


def sent_fields(prepared: Prepared, now: Any) -> dict[str, Any]:
    """What a send records once the server took its email."""
    status = getattr(prepared.message, "anymail_status", None)
    provider_id = getattr(status, "message_id", None) or prepared.message_id
    return {
        "status": SendStatus.SENT,
        "status_reason": "",
        "sent_at": now,
        "subject": prepared.rendered.subject[:500],
        "locale": prepared.rendered.locale,
        "to_email": prepared.to,
        "message_id": prepared.message_id,
        "provider_message_id": str(provider_id)[:255],
    }


# Transient failures are retried after 1, 2, 4 … minutes (at most 6 hours), MAX_ATTEMPTS times.
MAX_ATTEMPTS = 8


def retry_delay(attempts: int) -> timedelta:
    """The base wait after ``attempts`` tried deliveries: 1, 2, 4 … minutes, at most 6 h."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 360))


def retry_at(attempts: int, now: Any) -> Any:
    """When to try again: the base wait plus up to 25 % jitter, so that sends refused
    together do not all come back in the same second."""
    return now + retry_delay(attempts) * (1 + random.uniform(0, 0.25))


def email_send(
    *, send: Send, context: dict[str, Any], connection: Any = None, claimed: bool = False
) -> Outcome:
    """Deliver one queued email send (see the module docstring).

    ``claimed``: the dispatcher has already moved this row to *sending* (in its batch claim).
    """
    if claimed:
        ours = Send.objects.filter(status_now(SendStatus.SENDING), pk=send.pk).exists()
    else:
        ours = bool(
            Send.objects.filter(status_now(SendStatus.QUEUED), pk=send.pk).update(
                status=SendStatus.SENDING,
                attempts=F("attempts") + 1,
                claimed_at=timezone.now(),
            )
        )
    send.refresh_from_db()
    if not ours:
        return Outcome(send=send, sent=False)
    to = send.to_email or send.learner.email
    blocker = send_blockers([send]).get(send.pk, "")
    if blocker:
        return Outcome(_finish(send, SendStatus.SUPPRESSED, blocker, SendEventKind.FAILED), False)
    try:
        prepared = email_prepare(send=send, context=context, to=to)
    except engine.RenderError as exc:
        return Outcome(
            _finish(send, SendStatus.FAILED, f"template: {exc}", SendEventKind.FAILED), False
        )
    except ValueError as exc:  # an address the message cannot be sent to
        reason = f"message: {type(exc).__name__}: {exc}"
        return Outcome(_finish(send, SendStatus.FAILED, reason, SendEventKind.FAILED), False)
    message, message_id = prepared.message, prepared.message_id
    message.connection = connection or get_connection()
    # Committed before the hand-off: if this process dies from here on, nobody can know whether
    # the server took the message, so recovery fails the row instead of sending it twice.
    Send.objects.filter(pk=send.pk).update(handoff_at=timezone.now(), message_id=message_id)
    try:
        message.send()
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is lost
        reason = f"{type(exc).__name__}: {exc}"
        if transient(exc) and send.attempts < MAX_ATTEMPTS:
            Send.objects.filter(pk=send.pk).update(
                handoff_at=None, scheduled_for=timezone.now() + retry_delay(send.attempts)
            )
            _finish(send, SendStatus.QUEUED, f"deferred: {reason}", SendEventKind.DEFERRED)
            raise DeliveryDeferred(reason) from exc
        if transient(exc):
            reason = f"gave up after {send.attempts} attempts: {reason}"
        return Outcome(_finish(send, SendStatus.FAILED, reason, SendEventKind.FAILED), False)
    Send.objects.filter(pk=send.pk).update(**sent_fields(prepared, timezone.now()))
    _event(send, SendEventKind.SENT)
    send.refresh_from_db()
    return Outcome(send=send, sent=True)
