"""What each field of a bulk item is held to: the validators (plain callables
``value -> cleaned`` that raise :class:`FieldError`, cheap on purpose: this is the ingestion hot
path) and the check every field passes before its own validator runs.

That check (:func:`text_storable`): no NUL and no lone surrogate at any depth, and containers
nested at most :data:`MAX_JSON_DEPTH` deep. Single-line text (names, titles, ...) carries no
control character; identifiers follow :func:`identifier`; timestamps carry a whole-minute
offset and are stored in UTC. Each validator carries the OpenAPI ``schema`` of what it accepts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from django.conf import settings

from expansion.core.timezones import available_time_zones


class FieldError(Exception):
    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


Validator = Callable[[Any], Any]

# Timestamps outside this range are refused as absurd (typos such as year 20225, epoch zero).
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
TIMESTAMP_RANGE = (
    f"timestamps must fall from {EARLIEST:%Y-%m-%d} up to (not including) {LATEST:%Y-%m-%d}, UTC"
)
FUTURE_TOLERANCE = timedelta(days=1)
MAX_JSON_BYTES = 16_384
# How deep containers may nest inside one item field (``{"a": {"b": 1}}`` is 2 deep). orjson
# parses up to 1,024 levels but encodes at most 255, and no platform's attributes need more
# than a handful; past this an item is refused by field instead of failing its whole batch.
MAX_JSON_DEPTH = 32

# C0 and C1 control characters and the Unicode line and paragraph separators: none belongs in
# single-line text, and a CR or LF in a name would break every email header it reaches.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _control_reason(value: str) -> str | None:
    found = CONTROL_CHARACTERS.search(value)
    if found is None:
        return None
    return f"must not contain control characters or line breaks (found U+{ord(found[0]):04X})"


def string(*, max_length: int = 255, blank: bool = False) -> Validator:
    """Single-line text: stripped, then refused if empty (unless ``blank``), longer than
    ``max_length`` or holding a control character (CR, LF, TAB, ...)."""

    def clean(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(f"must be a string, got {type_name(value)}")
        value = value.strip()
        if not value and not blank:
            raise FieldError("must not be empty")
        if len(value) > max_length:
            raise FieldError(f"must be at most {max_length} characters, got {len(value)}")
        reason = _control_reason(value)
        if reason is not None:
            raise FieldError(reason)
        return value

    # The same rules as a pattern (a generated client or fuzzer sends only what is kept):
    # no control character anywhere and, unless blank, one character that is not space.
    line = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
    text = r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]"
    clean.schema = {  # type: ignore[attr-defined]
        "type": "string",
        "maxLength": max_length,
        **({} if blank else {"minLength": 1}),
        "pattern": f"^{line}*$" if blank else f"^{line}*{text}{line}*$",
        "description": "Single-line text: no control characters or line breaks"
        + ("." if blank else "; not empty or only spaces."),
    }
    return clean


# An identifier is sent back in a detail URL (/api/v1/learners/<external_id>/), so it must be
# reachable there: no '/', no control character, no whitespace at either end (refused, not
# stripped: a stripped id would silently name another record), and not a dot segment.
_ID_CHAR = r"[^/\s\x00-\x1f\x7f-\x9f\u2028\u2029]"
_ID_INNER = r"[^/\x00-\x1f\x7f-\x9f\u2028\u2029]"
ID_PATTERN = f"^{_ID_CHAR}({_ID_INNER}*{_ID_CHAR})?$"
_ID_RE = re.compile(rf"{_ID_CHAR}(?:{_ID_INNER}*{_ID_CHAR})?\Z")
# 'bulk' names a route of its own (/learners/bulk/); '.' and '..' are rewritten by clients.
RESERVED_IDS = frozenset({"bulk", ".", ".."})
ID_RULES = (
    "An identifier: 1 to {max_length} characters, no '/', no control characters, no "
    "whitespace at either end, and not 'bulk', '.' or '..' (it is used in detail URLs)."
)


def identifier(*, max_length: int = 255) -> Validator:
    """The one check of every identifier field (external ids, skus, references to them).

    Returns the value unchanged. Refuses, naming the rule broken: a non-string, an empty
    value, more than ``max_length`` characters, '/', a control character, leading or
    trailing whitespace, '.' and '..'.
    """

    def clean(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(f"must be a string, got {type_name(value)}")
        if 0 < len(value) <= max_length and _ID_RE.match(value) and value not in RESERVED_IDS:
            return value
        if not value:
            raise FieldError("must not be empty")
        if len(value) > max_length:
            raise FieldError(f"must be at most {max_length} characters, got {len(value)}")
        reason = _control_reason(value)
        if reason is not None:
            raise FieldError(reason)
        if "/" in value:
            raise FieldError("must not contain '/' (identifiers are used in URLs)")
        if value != value.strip():
            raise FieldError("must not start or end with whitespace")
        if value == "bulk":
            raise FieldError("'bulk' is reserved: it names an API route")
        raise FieldError("must not be '.' or '..' (identifiers are used in URLs)")

    clean.schema = {  # type: ignore[attr-defined]
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": ID_PATTERN,
        "description": ID_RULES.format(max_length=max_length),
    }
    return clean


_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def web_url(value: Any) -> str:
    """An http(s) address, or empty."""
    if not isinstance(value, str) or len(value) > 500:
        raise FieldError("must be an http(s) URL of at most 500 characters")
    value = value.strip()
    if value and not value.lower().startswith(("http://", "https://")):
        raise FieldError("must be an http(s) URL")
    reason = _control_reason(value)
    if reason is not None:
        raise FieldError(reason)
    return value


web_url.schema = {  # type: ignore[attr-defined]
    "type": "string",
    "maxLength": 500,
    "pattern": r"^$|^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$",
    "description": "An http(s) URL, or empty.",
}


EMAIL_MAX_LENGTH = 254
_email_text = string(max_length=EMAIL_MAX_LENGTH, blank=True)


def email(value: Any) -> str:
    """An address, lower-cased; its length is checked once lower-cased, the form stored
    (``'İ'.lower()`` is two code points, so 242 of them grew past the column's 254)."""
    value = _email_text(value).lower()
    if len(value) > EMAIL_MAX_LENGTH:
        raise FieldError(
            f"must be at most {EMAIL_MAX_LENGTH} characters once lower-cased, got {len(value)}"
        )
    if value and not _EMAIL_RE.match(value):
        raise FieldError("is not a valid email address")
    return value


# The rule above as a pattern (not ``format: email``, which is stricter than the check and
# has no empty value): surrounding space is stripped, "" clears the address.
_EMAIL_PART = r"[^@\s\x00-\x1f\x7f-\x9f\u2028\u2029]+"
email.schema = {  # type: ignore[attr-defined]
    "type": "string",
    "maxLength": EMAIL_MAX_LENGTH,
    "pattern": rf"^\s*({_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART})?\s*$",
    "description": 'An email address, or "" for none.',
}

_MINUTE = timedelta(minutes=1)
_TOO_EARLY = f"is before {EARLIEST:%Y-%m-%d}: {TIMESTAMP_RANGE}"
_TOO_LATE = f"is on or after {LATEST:%Y-%m-%d}: {TIMESTAMP_RANGE}"


def aware_datetime(value: Any) -> datetime:
    """An ISO 8601 timestamp with a whole-minute zone offset, within [1990, 2200); returned
    in UTC (Python reads offsets up to ±23:59, PostgreSQL only to ±15:59, so nothing
    reaches the database with its own offset)."""
    if not isinstance(value, str):
        raise FieldError(f"must be an ISO 8601 string, got {type_name(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(f"is not an ISO 8601 timestamp: {value[:40]!r}") from None
    offset = parsed.utcoffset()
    if offset is None:
        raise FieldError("must include a time zone offset, e.g. 2026-05-01T09:30:00+02:00 or Z")
    if offset % _MINUTE:
        raise FieldError(
            "has a time zone offset with seconds; offsets must be whole minutes, e.g. +05:30"
        )
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        # Shifted to UTC, 0001-01-01T00:00+05:00 falls before year 1, 9999-12-31T23:00-05:00
        # after year 9999.
        raise FieldError(_TOO_EARLY if parsed.year < 2000 else _TOO_LATE) from None
    if parsed < EARLIEST:
        raise FieldError(_TOO_EARLY)
    if parsed >= LATEST:
        raise FieldError(_TOO_LATE)
    return parsed


def past_datetime(value: Any) -> datetime:
    """Like :func:`aware_datetime`, for things that happened: at most a day in the future."""
    parsed = aware_datetime(value)
    if parsed > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise FieldError("is more than a day in the future")
    return parsed


aware_datetime.schema = {"type": "string", "format": "date-time"}  # type: ignore[attr-defined]
past_datetime.schema = aware_datetime.schema  # type: ignore[attr-defined]


def optional(validator: Validator) -> Validator:
    def clean(value: Any) -> Any:
        return None if value is None else validator(value)

    schema = getattr(validator, "schema", {})
    if "anyOf" in schema:
        # OpenAPI 3.0's nullable applies beside a type: say it in every branch.
        schema = {**schema, "anyOf": [{**branch, "nullable": True} for branch in schema["anyOf"]]}
    else:
        schema = {**schema, "nullable": True}
    clean.schema = schema  # type: ignore[attr-defined]
    return clean


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"must be true or false, got {type_name(value)}")
    return value


boolean.schema = {"type": "boolean"}  # type: ignore[attr-defined]


def integer(*, minimum: int = 0, maximum: int = 2**53) -> Validator:
    def clean(value: Any) -> int:
        if isinstance(value, float) and value.is_integer() and not minimum <= value <= maximum:
            # JSON integers past 64 bits (2**64) reach us as floats: say what is wrong.
            bound = f"max {maximum}" if value > maximum else f"min {minimum}"
            raise FieldError(f"is out of range ({bound}), got {value:.6g}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"must be an integer, got {type_name(value)}")
        if not minimum <= value <= maximum:
            raise FieldError(f"must be between {minimum} and {maximum}, got {value}")
        return value

    clean.schema = {"type": "integer", "minimum": minimum, "maximum": maximum}  # type: ignore[attr-defined]
    return clean


def number(*, minimum: float = -1e12, maximum: float = 1e12) -> Validator:
    def clean(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError(f"must be a number, got {type_name(value)}")
        value = float(value)
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise FieldError(f"must be between {minimum:g} and {maximum:g}, got {value:g}")
        return value

    clean.schema = {"type": "number", "minimum": minimum, "maximum": maximum}  # type: ignore[attr-defined]
    return clean


_DECIMAL_TEXT_RE = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


def money(*, maximum: Decimal = Decimal("9999999999.99")) -> Validator:
    """A non-negative amount with at most 2 decimal places, as a JSON number or a decimal
    string ("49.00"; not "4.9e1", " 49", "+49" or "-0", which ``Decimal`` would read)."""

    def clean(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise FieldError(f"must be a number or a decimal string, got {type_name(value)}")
        if isinstance(value, str):
            text = _DECIMAL_TEXT_RE.fullmatch(value)
            if text is None:
                raise FieldError(f'must be a decimal such as "49.00", got {value[:40]!r}')
            if len(text[2] or "") > 2:
                raise FieldError("must have at most 2 decimal places")
            if len(text[1].lstrip("0")) > len(str(int(maximum))):
                raise FieldError(f"must be between 0 and {maximum}")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise FieldError(f"is not a number: {str(value)[:40]!r}") from None
        if not amount.is_finite() or amount < 0 or amount > maximum:
            raise FieldError(f"must be between 0 and {maximum}")
        if amount != amount.quantize(Decimal("0.01")):
            raise FieldError("must have at most 2 decimal places")
        return amount.quantize(Decimal("0.01"))

    clean.schema = {  # type: ignore[attr-defined]
        "anyOf": [
            {
                "type": "string",
                "format": "decimal",
                "pattern": r"^[0-9]+(\.[0-9]{1,2})?$",
                "example": "49.00",
            },
            {"type": "number", "minimum": 0, "maximum": float(maximum), "multipleOf": 0.01},
        ],
        "description": 'An amount: a decimal string such as "49.00" (exact) or a JSON number.',
    }
    return clean


def choice(values: Iterable[str]) -> Validator:
    allowed = frozenset(values)
    listing = ", ".join(sorted(allowed))

    def clean(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise FieldError(f"must be one of {listing}; got {str(value)[:40]!r}")
        return value

    clean.schema = {"type": "string", "enum": sorted(allowed)}  # type: ignore[attr-defined]
    return clean


def json_object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise FieldError(f"must be a JSON object, got {type_name(value)}")
    if len(orjson.dumps(value)) > MAX_JSON_BYTES:
        raise FieldError(f"must be at most {MAX_JSON_BYTES} bytes of JSON")
    return value


json_object.schema = {"type": "object", "additionalProperties": True}  # type: ignore[attr-defined]


def time_zone(value: Any) -> str:
    value = string(max_length=64)(value)
    if value not in available_time_zones():
        raise FieldError(f"{value[:64]!r} is not an IANA time zone such as 'Europe/London'")
    return value


time_zone.schema = {"type": "string", "example": "Europe/London"}  # type: ignore[attr-defined]


def currency(value: Any) -> str:
    """The deployment's one currency (``EXPANSION_CURRENCY``), as ISO 4217 writes it
    ("USD"); the schema says so (``enum``), so a generated client offers only it."""
    value = string(max_length=3)(value)
    if value != settings.EXPANSION_CURRENCY:
        raise FieldError(
            f"must be {settings.EXPANSION_CURRENCY}: this deployment uses one currency "
            "(EXPANSION_CURRENCY), in capitals"
        )
    return value


# Read once at start-up, as the setting is.
currency.schema = {  # type: ignore[attr-defined]
    "type": "string",
    "enum": [settings.EXPANSION_CURRENCY],
}


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _text_check(value: str) -> None:
    if "\x00" in value:
        raise FieldError("must not contain NUL (\\u0000) characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError("must be valid Unicode (no lone surrogate)") from None


def text_storable(value: Any) -> None:
    """Refuse a field value no database column can hold, wherever in it the problem sits.

    PostgreSQL text and JSON cannot contain NUL (U+0000), and a lone surrogate (U+D800–DFFF,
    which JSON's ``\\ud800`` escapes can produce) is not encodable as UTF-8. Either was a
    server error (schemathesis). Containers nested deeper than :data:`MAX_JSON_DEPTH` are
    refused too: orjson cannot re-encode past 255 levels. Walked iteratively, so no depth
    the parser accepts (1,024) reaches Python's recursion limit.
    """
    _walk(value, MAX_JSON_DEPTH)


def item_storable(item: dict) -> bool:
    """Whether :func:`text_storable` passes every field of ``item`` (and its field names):
    one walk for the whole item, the hot path's fast answer; on ``False``, check each field
    to name it. ~1.5 µs for a typical event."""
    try:
        _walk(item, MAX_JSON_DEPTH + 1)
    except FieldError:
        return False
    return True


def _walk(value: Any, limit: int) -> None:
    if type(value) is str:
        if "\x00" in value or not value.isascii():
            _text_check(value)
        return
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[dict | list, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise FieldError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
        if type(node) is dict:
            for key in node:
                if "\x00" in key or not key.isascii():
                    _text_check(key)
            children: Iterable[Any] = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is str:
                if "\x00" in child or not child.isascii():
                    _text_check(child)
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))
