"""Building the email that leaves: multipart text + HTML, the preheader, one-click
unsubscribe headers (RFC 8058) and a Message-ID the caller stores."""

from __future__ import annotations

import functools
import re
from email._policybase import Compat32
from email.generator import BytesGenerator
from email.utils import make_msgid
from io import BytesIO
from typing import Any

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


class _MemoFolding(Compat32):
    """compat32 — the policy of Django's MIME classes — with the folding of each header
    memoised: most of a message's headers (its parts' Content-Type, MIME-Version,
    Content-Transfer-Encoding, From, List-Unsubscribe-Post) are the same in every message,
    and folding was most of serialising one (~1 ms of 1.9, bench/delivery.py). Folding is a
    function of the name, the value and the policy alone, so the bytes are the same."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if isinstance(value, str):
            return _folded(name, value, self.cte_type, self.linesep, self.max_line_length)
        return super().fold_binary(name, value)


@functools.lru_cache(maxsize=4096)
def _folded(
    name: str, value: str, cte_type: str, linesep: str, max_line_length: int | None
) -> bytes:
    policy = Compat32(cte_type=cte_type, linesep=linesep, max_line_length=max_line_length)
    return policy.fold_binary(name, value)


_WIRE = _MemoFolding(linesep="\r\n")


def message_bytes(message: EmailMultiAlternatives) -> bytes:
    """The message as Django's SMTP backend puts it on the wire (``message().as_bytes`` with
    CRLF line ends), byte for byte, with the headers' folding memoised."""
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_WIRE).flatten(message.message())
    return out.getvalue()
