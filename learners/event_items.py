"""One event of a batch, validated in plain Python (no serializer objects): the checks the
ingestion runs on each item before resolving its references (``learners.ingest``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from expansion.core.api.batch import (
    CONTROL_CHARACTERS,
    EARLIEST,
    LATEST,
    MAX_JSON_BYTES,
    FieldError,
    aware_datetime,
    identifier,
    item_storable,
    text_storable,
    type_name,
)

from .models import CUSTOM_KIND_PREFIX, EventKind

KNOWN_KINDS = frozenset(EventKind.values)
# \Z, not $: "$" also matches before a trailing newline.
CUSTOM_KIND_RE = re.compile(r"custom\.[a-z0-9][a-z0-9_.-]{0,55}\Z")
EVENT_FIELDS = frozenset(
    {"idempotency_key", "learner", "kind", "occurred_at", "value", "course", "module", "properties"}
)
REQUIRED_FIELDS = ("idempotency_key", "learner", "kind", "occurred_at")
MAX_VALUE = 1e12
_reference = identifier()


@dataclass(slots=True)
class EventRow:
    index: int
    key: str
    learner: str
    kind: str
    occurred_at: datetime
    value: float | None
    course: str | None
    module: str | None
    properties: bytes  # already-encoded JSON object
    props: dict  # the same, decoded: compared with a stored event whose key it reuses


def _kind_specific_problem(kind: str, value: float | None, props: dict) -> tuple[str, str] | None:
    """(field, reason) when a known kind lacks what it needs, else None."""
    if kind == "assessment_submitted":
        if value is None:
            return "value", "is required for assessment_submitted (the score, 0–100)"
        if not 0 <= value <= 100:
            return "value", f"must be a score between 0 and 100, got {value:g}"
    elif kind == "usage_reported":
        if not isinstance(props.get("metric"), str) or not props["metric"]:
            return "properties.metric", "is required for usage_reported (a string)"
        for name in ("used", "limit"):
            amount = props.get(name)
            if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                return f"properties.{name}", "is required for usage_reported (a number ≥ 0)"
        if props["limit"] == 0:
            return "properties.limit", "must be greater than 0"
    elif kind in ("community_question", "community_post"):
        if not isinstance(props.get("text"), str):
            return "properties.text", f"is required for {kind} (a string)"
    return None


def event_validate(index: int, item: Any, errors: list, now_limit: datetime) -> EventRow | None:
    """Item ``index`` of a batch as an ``EventRow``; ``None`` once its problems are appended
    to ``errors`` (``{index, field, reason}`` each). ``now_limit``: the latest time allowed.

    A valid item takes the fast path (``_valid_row``: the same rules, asked only whether they
    all hold; 10 µs an event of bench/ingest.py instead of 15); anything it doubts goes
    through ``_item_problems``, which names every problem, so the errors are exactly what
    they were."""
    try:
        row = _valid_row(index, item, now_limit)
    except FieldError:
        row = None
    if row is not None:
        return row
    return _item_problems(index, item, errors, now_limit)


_REQUIRED = frozenset(REQUIRED_FIELDS)


def _valid_row(index: int, item: Any, now_limit: datetime) -> EventRow | None:
    """The row of an item that passes every rule of ``_item_problems``; ``None`` (or a
    ``FieldError``) whenever it may not: never a row that path would refuse."""
    if type(item) is not dict:
        return None
    names = item.keys()
    if not (names <= EVENT_FIELDS and names >= _REQUIRED):
        return None
    # What item_storable checks, field by field (the names are known, so storable): a plain
    # ASCII string without NUL needs no walk, anything else gets the full check.
    for name in names:
        field = item[name]
        if type(field) is str:
            if "\x00" in field or not field.isascii():
                text_storable(field)
        elif type(field) is dict or type(field) is list:
            text_storable(field)
    key = item["idempotency_key"]
    if type(key) is not str or not 0 < len(key) <= 200 or CONTROL_CHARACTERS.search(key):
        return None
    learner = _reference(item["learner"])
    kind = item["kind"]
    if type(kind) is not str or (kind not in KNOWN_KINDS and not CUSTOM_KIND_RE.match(kind)):
        return None
    when = item["occurred_at"]
    if type(when) is not str:
        return None
    try:
        occurred_at = datetime.fromisoformat(when)
    except ValueError:
        return None
    # Sent in UTC, as most platforms do, the instant needs no shift: the rest of
    # aware_datetime (the offset's seconds, the shift to UTC) costs 3.5 µs an event.
    if occurred_at.tzinfo is not UTC:
        occurred_at = aware_datetime(when)
    elif not EARLIEST <= occurred_at < LATEST:
        return None
    if occurred_at > now_limit:
        return None
    value = item.get("value")
    if value is not None:
        if type(value) is not float and type(value) is not int:  # bool is neither
            return None
        if not math.isfinite(value) or abs(value) > MAX_VALUE:
            return None
        value = float(value)
    course = item.get("course")
    if course is not None:
        _reference(course)
    module = item.get("module")
    if module is not None:
        if course is None:
            return None
        _reference(module)
    props = item.get("properties")
    props_json = b"{}"
    if props is None:
        props = {}
    elif type(props) is not dict:
        return None
    elif props:
        props_json = orjson.dumps(props)
        if len(props_json) > MAX_JSON_BYTES:
            return None
    if _kind_specific_problem(kind, value, props) is not None:
        return None
    return EventRow(
        index, key, learner, kind, occurred_at, value, course, module, props_json, props
    )


def _item_problems(index: int, item: Any, errors: list, now_limit: datetime) -> EventRow | None:
    """``event_validate`` naming every problem of the item (the path of refused items)."""
    if not isinstance(item, dict):
        errors.append(
            {
                "index": index,
                "field": None,
                "reason": f"must be a JSON object, got {type_name(item)}",
            }
        )
        return None
    failed = False

    def fail(name: str | None, reason: str) -> None:
        nonlocal failed
        failed = True
        errors.append({"index": index, "field": name, "reason": reason})

    if not EVENT_FIELDS.issuperset(item):
        for name in item:
            if name not in EVENT_FIELDS:
                fail(name, "is not a known field")
    for name in REQUIRED_FIELDS:
        if name not in item:
            fail(name, "is required")
    if not item_storable(item):
        for name, value in item.items():
            try:
                text_storable(value)
            except FieldError as error:
                fail(name, error.reason)
    if failed:
        return None

    key = item["idempotency_key"]
    if not isinstance(key, str) or not 0 < len(key) <= 200:
        fail("idempotency_key", "must be a string of 1 to 200 characters")
    elif CONTROL_CHARACTERS.search(key):
        fail("idempotency_key", "must not contain control characters or line breaks")
    learner = item["learner"]
    try:
        _reference(learner)
    except FieldError as error:
        fail("learner", f"must be a learner's external_id: {error.reason}")
    kind = item["kind"]
    if not isinstance(kind, str) or (kind not in KNOWN_KINDS and not CUSTOM_KIND_RE.match(kind)):
        fail(
            "kind", f"must be a known kind or '{CUSTOM_KIND_PREFIX}<name>'; got {str(kind)[:64]!r}"
        )

    occurred_at = None
    try:
        # In UTC from here on: PostgreSQL refuses offsets past ±15:59 that Python reads.
        occurred_at = aware_datetime(item["occurred_at"])
    except FieldError as error:
        fail("occurred_at", error.reason)
    else:
        if occurred_at > now_limit:
            fail("occurred_at", "is more than a day in the future")

    value = item.get("value")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("value", f"must be a number or null, got {type_name(value)}")
            value = None
        elif not math.isfinite(value) or abs(value) > MAX_VALUE:
            fail("value", f"must be a finite number within ±{MAX_VALUE:g}")
            value = None
        else:
            value = float(value)

    course = item.get("course")
    if course is not None:
        try:
            _reference(course)
        except FieldError as error:
            fail("course", f"must be a course's external_id or null: {error.reason}")
    module = item.get("module")
    if module is not None:
        try:
            _reference(module)
        except FieldError as error:
            fail("module", f"must be a module's external_id or null: {error.reason}")
        else:
            if course is None:
                fail("module", "needs course: module ids are unique within a course")

    props = item.get("properties")
    props_json = b"{}"
    if props is None:
        props = {}
    elif not isinstance(props, dict):
        fail("properties", f"must be a JSON object, got {type_name(props)}")
        props = {}
    elif props:
        props_json = orjson.dumps(props)
        if len(props_json) > MAX_JSON_BYTES:
            fail("properties", f"must be at most {MAX_JSON_BYTES} bytes of JSON")
    if failed:
        return None
    problem = _kind_specific_problem(kind, value, props)
    if problem is not None:
        fail(*problem)
        return None
    assert occurred_at is not None
    return EventRow(
        index, key, learner, kind, occurred_at, value, course, module, props_json, props
    )
