"""Signed links in campaign emails: one-click unsubscribe (and preferences) and click tracking.

No timestamp in the signatures: a link is valid as long as the send exists (unsubscribe links
must keep working for months), and the same send always gets the same link.
"""

from __future__ import annotations

import functools
import html
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import get_script_prefix, get_urlconf, reverse

UNSUBSCRIBE_SALT = "expansion.campaigns.unsubscribe"
CLICK_SALT = "expansion.campaigns.click"


def _signer(salt: str) -> signing.Signer:
    # No timestamp: a link is valid as long as the send exists (unsubscribe links must keep
    # working for months), and the same send always gets the same link.
    return signing.Signer(salt=salt)


def unsubscribe_token(send_id: int) -> str:
    return _signer(UNSUBSCRIBE_SALT).sign_object(send_id)


def unsubscribe_token_read(token: str) -> int | None:
    """The send a token was signed for; None if forged or damaged."""
    try:
        value = _signer(UNSUBSCRIBE_SALT).unsign_object(token)
    except signing.BadSignature:
        return None
    return value if isinstance(value, int) else None


def click_token(send_id: int, url: str) -> str:
    return _signer(CLICK_SALT).sign_object([send_id, url], compress=True)


def click_token_read(token: str) -> tuple[int, str] | None:
    try:
        value = _signer(CLICK_SALT).unsign_object(token)
    except signing.BadSignature:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
    ):
        return None
    return value[0], value[1]


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


@functools.lru_cache(maxsize=16)
def _around_token(name: str, urlconf: str, prefix: str) -> tuple[str, str]:
    """The path of ``name`` before and after its token. ``reverse`` takes ~0.7 ms a call
    (bench/delivery.py), several per email; a signed token is URL-safe (base64url and ":"),
    so it stands in the path exactly as ``reverse`` would write it. ``prefix``: the script
    prefix ``reverse`` prepends (part of the key only)."""
    marker = "TOKEN"
    before, after = reverse(name, urlconf=urlconf, args=[marker]).split(marker)
    return before, after


def _token_path(name: str, token: str) -> str:
    before, after = _around_token(name, get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())
    return f"{before}{token}{after}"


def unsubscribe_url(send_id: int) -> str:
    return _absolute(_token_path("unsubscribe", unsubscribe_token(send_id)))


def click_url(send_id: int, url: str) -> str:
    return _absolute(_token_path("click", click_token(send_id, url)))


_HREF = re.compile(r'(<a\b[^>]*?\bhref=")([^"]+)(")', re.I)


def _trackable(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def links_tracked(*, html_body: str, text_body: str, send_id: int, skip: set[str]) -> tuple:
    """Every http(s) link of the HTML (and the same URLs in the text) through a signed click
    redirect, except ``skip`` (the unsubscribe and preference links)."""
    seen: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        url = html.unescape(match.group(2))
        if url in skip or not _trackable(url):
            return match.group(0)
        tracked = seen.setdefault(url, click_url(send_id, url))
        return f"{match.group(1)}{html.escape(tracked)}{match.group(3)}"

    html_body = _HREF.sub(swap, html_body)
    for url, tracked in sorted(seen.items(), key=lambda item: -len(item[0])):
        text_body = re.sub(rf"(?<![\w/]){re.escape(url)}(?![\w/?#&=.-])", tracked, text_body)
    return html_body, text_body
