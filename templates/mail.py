"""Building the email that leaves: multipart text + HTML, the preheader, one-click
unsubscribe headers (RFC 8058) and a Message-ID the caller stores."""

from __future__ import annotations

import re
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.html import escape

from .messages import Rendered

_BODY = re.compile(r"<body\b[^>]*>", re.I)


def with_preheader(html: str, preheader: str) -> str:
    """The preheader as the first, hidden text of the body (what inboxes show after the
    subject)."""
    if not preheader:
        return html
    hidden = (
        '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all" aria-hidden="true">'
        f"{escape(preheader)}</div>"
    )
    match = _BODY.search(html)
    if match is None:
        return hidden + html
    return html[: match.end()] + hidden + html[match.end() :]


def email_build(
    *,
    rendered: Rendered,
    to: str,
    unsubscribe_url: str,
    message_id: str | None = None,
    test: bool = False,
) -> EmailMultiAlternatives:
    headers = {"Message-ID": message_id or make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN)}
    if unsubscribe_url:
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    subject = f"[TEST] {rendered.subject}" if test else rendered.subject
    message = EmailMultiAlternatives(
        subject=subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=headers,
    )
    message.attach_alternative(with_preheader(rendered.html, rendered.preheader), "text/html")
    return message
