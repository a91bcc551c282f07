"""JSON in and out through orjson. Kept apart from the views module: DRF imports these
classes while it is still defining APIView.

A request body is UTF-8 JSON, uncompressed, with each key at most once per object: anything
else is refused with a reason saying what is accepted, never read differently from what the
client meant (orjson alone keeps the last of two equal keys and reads gzip or UTF-16 bytes as
"invalid UTF-8").
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from django.conf import settings
from rest_framework import exceptions, parsers, renderers, status

ACCEPTED = "send the body as uncompressed UTF-8 JSON"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class BodyError(exceptions.ParseError):
    """A body refused as a whole, naming where: the item index and field when it is inside
    ``items[i]``, else the JSON path as the field (``api_common.exception_handler``)."""

    def __init__(self, reason: str, *, index: int | None = None, field: str | None = None):
        super().__init__(reason)
        self.error = {"index": index, "field": field, "reason": reason}


class _DuplicateKeys(dict):
    """An object the exact check found a repeated key in (``duplicate``)."""

    duplicate: str = ""


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _DuplicateKeys(obj)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.duplicate = key
            break
        seen.add(key)
    return marked


def _duplicate_suspected(body: bytes, data: Any) -> bool:
    """True when ``body`` may hold an object with a repeated key; never False when it does.

    Every ':' in a JSON text is a key separator or sits in a string. orjson writes one ':' per
    key it kept plus those in its strings, so the body has more ':' than the re-encoded value
    exactly when a key was dropped as a repeat, net of colons the body escaped as ``\\u003a``
    (looked for only when there is a backslash at all). All C: see the timings in the
    report of issue 18 (+0.6 ms on a 1,000-event batch of 150 KB, about +1x orjson.loads
    on a 20 MB body). The exact check (stdlib json) runs only when this says maybe.
    """
    written = orjson.dumps(data)  # JSONEncodeError past 254 levels: the caller checks exactly
    surplus = body.count(b":") - written.count(b":")  # keys dropped minus escaped colons
    if surplus > 0:
        return True
    # No escaped colon (a backslash is found by memchr; the substring search is 10x slower):
    # the surplus is exactly the number of keys dropped, 0.
    if b"\\" not in body or b"\\u003" not in body:
        return False
    return surplus + body.count(b"\\u003a") + body.count(b"\\u003A") > 0


def _first_duplicate(body: bytes) -> BodyError | None:
    """The first repeated key in ``body`` (exact, slow), as the error naming where it is."""
    try:
        tree = json.loads(body, object_pairs_hook=_pairs_hook)
    except RecursionError:  # deeper than the standard library nests: the item checks refuse it
        return None
    except ValueError:  # orjson read it; nothing to add
        return None
    stack: list[tuple[Any, list[str | int]]] = [(tree, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _DuplicateKeys):
            return _duplicate_error(path + [node.duplicate])
        if isinstance(node, dict):
            stack.extend((value, path + [key]) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((value, path + [i]) for i, value in reversed(list(enumerate(node))))
    return None


def _duplicate_error(path: list[str | int]) -> BodyError:
    index = None
    if len(path) > 2 and path[0] == "items" and isinstance(path[1], int):
        index, path = path[1], path[2:]
    field = ""
    for part in path:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else part)
    return BodyError(
        f"the key {str(path[-1])[:64]!r} appears more than once in one object; send each key once",
        index=index,
        field=field[:200],
    )


def _utf8_text(body: bytes) -> bool:
    """Could ``body`` be UTF-8 text? (A NUL byte is UTF-16 or binary: JSON never has one.)"""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in body


def _charset(media_type: str | None) -> str:
    for param in (media_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return ""


class FastJSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        request = (parser_context or {}).get("request")
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "") if request is not None else ""
        if encoding.strip().lower() not in ("", "identity"):
            raise exceptions.UnsupportedMediaType(
                media_type,
                detail=f"Content-Encoding {encoding[:40]!r} is not supported: {ACCEPTED}.",
            )
        charset = _charset(media_type)
        if charset not in ("", "utf-8", "utf8"):
            raise exceptions.UnsupportedMediaType(
                media_type, detail=f"charset {charset[:40]!r} is not supported: {ACCEPTED}."
            )
        limit = settings.API_MAX_BODY_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(
                f"The request body exceeds {limit:,} bytes (API_MAX_BODY_BYTES); "
                "send smaller batches."
            )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            if not _utf8_text(body):
                raise exceptions.ParseError(
                    f"The body is not UTF-8 (compressed, or UTF-16?): {ACCEPTED}."
                ) from None
            raise exceptions.ParseError(f"Malformed JSON: {error}") from None
        try:
            suspected = _duplicate_suspected(body, data)
        except orjson.JSONEncodeError:
            # Deeper than orjson writes (254 levels): the bulk checks refuse that item alone
            # (expansion.core.api.batch.MAX_JSON_DEPTH), so only the exact duplicate check runs
            # here — as far as the standard library can nest.
            suspected = True
        if suspected and (duplicate := _first_duplicate(body)) is not None:
            raise duplicate
        return data


class FastJSONRenderer(renderers.BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        try:
            return orjson.dumps(data, default=str)
        except TypeError:
            # An integer past 64 bits (orjson's limit): PostgreSQL's jsonb keeps a number as
            # written, so a float such as 1.2e29 sent in attributes reads back as the integer
            # 120000000000000000000000000000 and the whole list was a 500. The standard
            # library writes any integer; only such a page pays for it.
            return json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":")).encode()
