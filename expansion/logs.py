"""Log records without secrets or personal data.

Django logs the path of every 4xx and 5xx request (``django.request``: "Not Found: /m/u/…/")
and runserver logs every request line (``django.server``). Those paths can carry signed tokens
(the unsubscribe and click links that mail scanners fetch, widget tokens in a query string)
and emails used as ids (``/api/v1/learners/grace.hopper@example.org/``). ``RedactSecrets``,
attached to every handler in settings, rewrites each record's message before it is written:

- the token segment of ``/m/u/<token>/`` and ``/m/c/<token>/`` becomes ``[token]``;
- the value of any ``token``, ``key``, ``secret``, ``password``, ``signature`` or ``email``
  query parameter becomes ``[redacted]``;
- anything shaped like an email address (also percent-encoded, ``%40``) becomes ``[email]``;
- a ``Bearer``/``Api-Key`` credential or an ``exp_…`` API key becomes ``[key]``.

Django also attaches the traceback of the ``PermissionDenied`` (or ``Http404``) behind every
4xx it logs; a refused request is not a fault, so 4xx records keep their one line only.
"""

from __future__ import annotations

import logging
import re

LINK_TOKEN = re.compile(r"(/m/[uc]/)[^/\s?\"']+")
QUERY_SECRET = re.compile(
    r"([?&](?:[a-z_]*token|key|secret|password|signature|email)=)[^&\s\"']*", re.IGNORECASE
)
EMAIL = re.compile(r"[^\s/?&=\"'<>:;,()\[\]]+(?:@|%40)[a-z0-9.\-]+\.[a-z]{2,}", re.IGNORECASE)
API_KEY = re.compile(r"(?:\b(?:bearer|api-key)\s+\S+|\bexp_[a-z0-9]+_[\w\-]+)", re.IGNORECASE)


def redact(text: str) -> str:
    text = LINK_TOKEN.sub(r"\1[token]", text)
    text = QUERY_SECRET.sub(r"\1[redacted]", text)
    text = API_KEY.sub("[key]", text)
    return EMAIL.sub("[email]", text)


class RedactSecrets(logging.Filter):
    """Rewrites the record's message (its arguments merged in) with ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "django.request" and getattr(record, "status_code", 500) < 500:
            record.exc_info, record.exc_text = None, None
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is written as it is, never dropped
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
