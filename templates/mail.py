"""Building the email that leaves: multipart text + HTML, the preheader, one-click
unsubscribe headers (RFC 8058) and a Message-ID the caller stores."""

from __future__ import annotations

import functools
import re
import secrets
from email._policybase import Compat32
from email.generator import BytesGenerator
from email.utils import formatdate, make_msgid
from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import (
    RFC5322_EMAIL_LINE_LENGTH_LIMIT,
    forbid_multi_line_headers,
    sanitize_address,
)
from django.utils.html import escape

from .messages import Rendered

_BODY = re.compile(r"<body\b[^>]*>", re.I)
# The line ends email.generator rewrites to the policy's (its NLCRE).
NLCRE = re.compile(r"\r\n|\r|\n")


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
            # A short line of printable ASCII words is written as it is (compat32 folds
            # nothing in it): the headers unique to each message (To, Date, Message-ID) are.
            limit = self.max_line_length
            if (limit is None or len(name) + 2 + len(value) <= limit) and _UNFOLDED.fullmatch(
                value
            ):
                return f"{name}: {value}{self.linesep}".encode("ascii")
            return _folded(name, value, self.cte_type, self.linesep, self.max_line_length)
        return super().fold_binary(name, value)


_UNFOLDED = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")


@functools.lru_cache(maxsize=4096)
def _folded(
    name: str, value: str, cte_type: str, linesep: str, max_line_length: int | None
) -> bytes:
    policy = Compat32(cte_type=cte_type, linesep=linesep, max_line_length=max_line_length)
    return policy.fold_binary(name, value)


_WIRE = _MemoFolding(linesep="\r\n")


def message_bytes(
    message: EmailMultiAlternatives, *, boundary: str | None = None, date: str | None = None
) -> bytes:
    """The message as Django's SMTP backend puts it on the wire (``message().as_bytes`` with
    CRLF line ends), byte for byte.

    The campaigns' messages (text + one HTML alternative, no attachments, UTF-8, no line
    longer than RFC 5322 allows) are written directly, header by header through the same
    sanitising and folding Django applies, without building the MIME tree (~0.5 ms of CPU an
    email, bench/delivery.py); anything else goes through Django's MIME objects with the
    headers' folding memoised. ``boundary`` and ``date``: fixed values (tests compare both
    ways byte for byte); by default a random boundary and the current date."""
    fast = _direct_bytes(message, boundary, date)
    if fast is not None:
        return fast
    mime = message.message()
    if boundary is not None and mime.is_multipart():
        mime.set_boundary(boundary)
    if date is not None:
        mime.replace_header("Date", date)
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_WIRE).flatten(mime)
    return out.getvalue()


_SKIPPED_HEADERS = {"from", "to", "cc", "reply-to"}


def _body(text: str) -> tuple[bytes, str] | None:
    """A part's bytes and transfer encoding as Django writes a UTF-8 text part that needs
    no quoted-printable (None when a line is too long for 7/8bit)."""
    if any(
        len(line.encode(errors="surrogateescape")) > RFC5322_EMAIL_LINE_LENGTH_LIMIT
        for line in text.splitlines()
    ):
        return None
    data = NLCRE.sub("\r\n", text).encode("utf-8", errors="surrogateescape")
    return data, ("7bit" if data.isascii() else "8bit")


def _direct_bytes(message: Any, boundary: str | None, date: str | None) -> bytes | None:
    alternatives = getattr(message, "alternatives", None)
    if (
        type(message) is not EmailMultiAlternatives
        or not alternatives
        or len(alternatives) != 1
        or message.attachments
        or message.cc
        or message.reply_to
        or not message.body
        or message.content_subtype != "plain"
        or message.alternative_subtype != "alternative"
        or (message.encoding or settings.DEFAULT_CHARSET).lower() != "utf-8"
    ):
        return None
    content, mimetype = alternatives[0]
    if mimetype != "text/html" or not isinstance(content, str) or not isinstance(message.body, str):
        return None
    text = _body(message.body)
    html = _body(content)
    if text is None or html is None:
        return None
    if boundary is None:
        boundary = "==" + secrets.token_hex(12) + "=="
        while boundary.encode() in text[0] or boundary.encode() in html[0]:
            boundary = "==" + secrets.token_hex(12) + "=="  # pragma: no cover - 2**-96
    extra = message.extra_headers
    headers: list[tuple[str, Any]] = [
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        ("MIME-Version", "1.0"),
        ("Subject", message.subject),
        ("From", extra.get("From", message.from_email)),
    ]
    if "To" in extra:
        headers.append(("To", extra["To"]))
    elif message.to:
        headers.append(("To", ", ".join(str(v) for v in message.to)))
    names = {key.lower() for key in extra}
    if "date" not in names:
        headers.append(("Date", date or formatdate(localtime=settings.EMAIL_USE_LOCALTIME)))
    if "message-id" not in names:
        return None  # Django would make one up; the product always sets its own
    headers += [(k, v) for k, v in extra.items() if k.lower() not in _SKIPPED_HEADERS]
    out = [
        _WIRE.fold_binary(name, forbid_multi_line_headers(name, value, "utf-8")[1])
        for name, value in headers
    ]
    dash = b"--" + boundary.encode()
    for subtype, (data, cte) in (("plain", text), ("html", html)):
        out += [
            dash,
            b"\r\n",
            _folded("Content-Type", f'text/{subtype}; charset="utf-8"', "8bit", "\r\n", 78),
            b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: ",
            cte.encode(),
            b"\r\n\r\n",
            data,
            b"\r\n",
        ]
    out[len(headers)] = b"\r\n" + dash  # the blank line after the headers, then the first
    out += [dash, b"--\r\n"]
    return b"".join(out)


# A bare ASCII address (dot-atom local part, a dotted host name): what sanitize_address gives
# back unchanged. Anything else (a display name, quoting, non-ASCII) goes through it.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)


def envelope_address(address: str, encoding: str) -> str:
    """The address as Django's SMTP backend puts it in the envelope (``sanitize_address``;
    raises ``ValueError`` for one it cannot send to), without parsing a plain one (~0.1 ms)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return sanitize_address(address, encoding)
