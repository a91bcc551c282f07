"""Event ingestion: the hot path of the sync API.

A batch of up to 1,000 events is validated item by item in plain Python (no serializer
objects), its learners, courses and modules are resolved in one query each, and the valid rows
go to the database in one ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING RETURNING``.
Keys the insert did not return are duplicates: a replayed batch adds nothing and says so;
a key reused with different content is refused as a conflict, naming the key.
On PostgreSQL the rows travel as arrays through ``unnest`` (one statement, 8 parameters);
measured by bench/ingest.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction

from expansion.core.api.batch import (
    CONTROL_CHARACTERS,
    FUTURE_TOLERANCE,
    MAX_JSON_BYTES,
    BatchError,
    FieldError,
    aware_datetime,
    identifier,
    item_storable,
    text_storable,
    type_name,
)

from .dirty import events_stored_notify, learners_mark_dirty, scoring_kick
from .models import CUSTOM_KIND_PREFIX, Course, DirtyLearner, Event, EventKind, Learner, Module

KNOWN_KINDS = frozenset(EventKind.values)
# \Z, not $: "$" also matches before a trailing newline.
CUSTOM_KIND_RE = re.compile(r"custom\.[a-z0-9][a-z0-9_.-]{0,55}\Z")
EVENT_FIELDS = frozenset(
    {"idempotency_key", "learner", "kind", "occurred_at", "value", "course", "module", "properties"}
)
REQUIRED_FIELDS = ("idempotency_key", "learner", "kind", "occurred_at")
MAX_VALUE = 1e12
_reference = identifier()


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "errors": self.errors}


@dataclass(slots=True)
class _Row:
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


def _check_kind_specific(kind: str, value: float | None, props: dict) -> tuple[str, str] | None:
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


def _validate(index: int, item: Any, errors: list, now_limit: datetime) -> _Row | None:
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
    problem = _check_kind_specific(kind, value, props)
    if problem is not None:
        fail(*problem)
        return None
    assert occurred_at is not None
    return _Row(index, key, learner, kind, occurred_at, value, course, module, props_json, props)


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0 as in JSON, but true is not 1 (Python says it is).
    Depth is bounded by MAX_JSON_DEPTH, so the recursion is too."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same_json(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same_json, a, b))
    if isinstance(b, dict | list):
        return False
    return a == b


def _conflict(index: int, key: str, where: str) -> dict[str, Any]:
    return {
        "index": index,
        "field": "idempotency_key",
        "reason": f"idempotency key {key!r} was already used with different content ({where})",
    }


# A valid event with its learner, course and module ids resolved.
_Kept = tuple[_Row, int, int | None, int | None]


def events_ingest(*, items: list[Any]) -> IngestResult:
    """Store the valid events of a batch; report duplicates, conflicts and per-item errors.

    Guarantees: idempotent by ``idempotency_key``: a key already stored, or repeated inside
    the batch, with the same content (the same instant in any offset, JSON-equal properties)
    is reported as a duplicate and not written again; with different content it is refused
    (``field: idempotency_key``, naming the key) and nothing is overwritten. The valid events
    are stored even when others in the batch are refused; all-or-nothing for the valid rows.
    """
    if not isinstance(items, list):
        raise BatchError(f"must be an array, got {type_name(items)}")
    result = IngestResult()
    errors = result.errors
    now_limit = datetime.now(UTC) + FUTURE_TOLERANCE
    rows: list[_Row] = []
    for index, item in enumerate(items):
        row = _validate(index, item, errors, now_limit)
        if row is not None:
            rows.append(row)
    if not rows:
        return result

    learners = learner_ids({r.learner for r in rows})
    course_names = {r.course for r in rows if r.course is not None}
    courses = (
        dict(Course.objects.filter(external_id__in=course_names).values_list("external_id", "id"))
        if course_names
        else {}
    )
    modules: dict[tuple[int, str], int] = {}
    if any(r.module is not None for r in rows) and courses:
        modules = {
            (course_id, ext): pk
            for pk, course_id, ext in Module.objects.filter(
                course_id__in=courses.values()
            ).values_list("id", "course_id", "external_id")
        }

    # The first resolved item of each key is the one inserted; later ones are repeats.
    kept: list[_Kept] = []
    first: dict[str, _Kept] = {}
    repeats: list[_Kept] = []
    for row in rows:
        learner_id = learners.get(row.learner)
        if learner_id is None:
            errors.append(
                {
                    "index": row.index,
                    "field": "learner",
                    "reason": f"unknown learner {row.learner[:64]!r}",
                }
            )
            continue
        course_id = module_id = None
        if row.course is not None:
            course_id = courses.get(row.course)
            if course_id is None:
                errors.append(
                    {
                        "index": row.index,
                        "field": "course",
                        "reason": f"unknown course {row.course[:64]!r}",
                    }
                )
                continue
            if row.module is not None:
                module_id = modules.get((course_id, row.module))
                if module_id is None:
                    errors.append(
                        {
                            "index": row.index,
                            "field": "module",
                            "reason": f"unknown module {row.module[:64]!r} "
                            f"in course {row.course[:64]!r}",
                        }
                    )
                    continue
        entry = (row, learner_id, course_id, module_id)
        if row.key in first:
            repeats.append(entry)
        else:
            first[row.key] = entry
            kept.append(entry)
    if not kept:
        errors.sort(key=lambda e: e["index"])
        return result

    try:
        with transaction.atomic():
            inserted, differing = _insert(kept)
    except IntegrityError:
        # A learner, course or module was deleted since it was resolved (possibly through
        # this process's learner cache): forget the cache and resolve once more.
        _LEARNER_IDS.clear()
        return events_ingest(items=items)
    if inserted:
        transaction.on_commit(scoring_kick)
        transaction.on_commit(events_stored_notify)
    not_new = [entry for entry in kept if entry[0].key not in inserted]
    result.accepted = len(kept) - len(not_new)
    # What a repeated key stored before is fetched only where the insert did not already
    # compare it (SQLite; a key repeated inside the batch): replays stay one statement.
    compare = [entry for entry in not_new if differing is None] + [
        entry for entry in repeats if entry[0].key not in inserted
    ]
    stored = _stored_events({entry[0].key for entry in compare}) if compare else {}
    for entry in sorted(not_new + repeats, key=lambda e: e[0].index):
        row = entry[0]
        if differing is not None and first[row.key] is entry:
            if row.key in differing:
                errors.append(_conflict(row.index, row.key, "by an event already stored"))
            else:  # the same content, or stored by a concurrent batch this one cannot see
                result.duplicates.append({"index": row.index, "idempotency_key": row.key})
            continue
        before = stored.get(row.key)
        if before is None and row.key not in inserted:
            # Stored by a concurrent batch this statement could not see yet: a duplicate.
            result.duplicates.append({"index": row.index, "idempotency_key": row.key})
        elif _same_event(entry, before if before is not None else _content(first[row.key])):
            result.duplicates.append({"index": row.index, "idempotency_key": row.key})
        elif before is not None:
            errors.append(_conflict(row.index, row.key, "by an event already stored"))
        else:
            where = f"by item {first[row.key][0].index} of this batch"
            errors.append(_conflict(row.index, row.key, where))
    errors.sort(key=lambda e: e["index"])
    return result


def _content(entry: _Kept) -> tuple:
    """An event as ``_stored_events`` returns it."""
    row, learner_id, course_id, module_id = entry
    return (learner_id, row.kind, row.occurred_at, row.value, course_id, module_id, row.props)


def _same_event(entry: _Kept, stored: tuple) -> bool:
    content = _content(entry)
    return content[:6] == stored[:6] and _same_json(content[6], stored[6])


def _stored_events(keys: set[str]) -> dict[str, tuple]:
    """``{key: (learner_id, kind, occurred_at, value, course_id, module_id, properties)}`` of
    the stored events holding ``keys``: one query, only when a batch repeats keys."""
    rows = Event.objects.filter(idempotency_key__in=keys).values_list(
        "idempotency_key",
        "learner_id",
        "kind",
        "occurred_at",
        "value",
        "course_id",
        "module_id",
        "properties",
    )
    return {key: tuple(rest) for key, *rest in rows}


_TABLE = Event._meta.db_table
# The batch travels as one JSON document that PostgreSQL unpacks with json_to_recordset:
# one parameter, encoded by orjson in ~0.3 ms per 1,000 events (psycopg's array dumpers took
# ~3.5 ms), and properties arrive as jsonb without a second encoding.
#
# The last part returns the keys already stored with other content (a conflict, not a
# duplicate): every part of the statement reads the snapshot taken before the insert, so the
# join sees only events stored before, and jsonb compares properties as JSON (key order and
# 1 vs 1.0 aside, true is not 1). Measured: a replayed batch of 1,000 costs no more than
# before (~20 ms), where fetching the stored rows to compare in Python added ~35 ms.
_PG_INSERT = f"""
WITH r AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%s::json)
         AS r(l bigint, k text, t timestamptz, v float8, c bigint, m bigint, p jsonb, i text)
), inserted AS (
    INSERT INTO {_TABLE}
        (learner_id, kind, occurred_at, value, course_id, module_id, properties, idempotency_key)
    SELECT r.l, r.k, r.t, r.v, r.c, r.m, coalesce(r.p, '{{}}'::jsonb), r.i FROM r
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING learner_id, idempotency_key
), dirty AS (
    -- In the same statement, so no stored event can miss its rescoring.
    INSERT INTO {DirtyLearner._meta.db_table} (learner_id, marked_at)
    SELECT DISTINCT learner_id, now() FROM inserted
)
SELECT idempotency_key, false FROM inserted
UNION ALL
SELECT r.i, true FROM r JOIN {_TABLE} e ON e.idempotency_key = r.i
WHERE (e.learner_id, e.kind, e.occurred_at, e.value, e.course_id, e.module_id, e.properties)
      IS DISTINCT FROM (r.l, r.k, r.t, r.v, r.c, r.m, coalesce(r.p, '{{}}'::jsonb))
"""
_SQLITE_COLUMNS = (
    "(learner_id, kind, occurred_at, value, course_id, module_id, properties, idempotency_key)"
)
# SQLite allows 32,766 parameters per statement; 8 per row.
_SQLITE_CHUNK = 1000


def _insert(kept: list[_Kept]) -> tuple[set[str], set[str] | None]:
    """Insert the rows; return the idempotency keys that were new, and those already stored
    with other content (PostgreSQL; ``None`` on SQLite, where the caller compares)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            payload = orjson.dumps(
                [
                    {
                        "l": learner_id,
                        "k": row.kind,
                        "t": row.occurred_at,
                        "v": row.value,
                        "c": course_id,
                        "m": module_id,
                        "p": orjson.Fragment(row.properties),
                        "i": row.key,
                    }
                    for row, learner_id, course_id, module_id in kept
                ]
            ).decode()
            cursor.execute(_PG_INSERT, [payload])
            inserted: set[str] = set()
            differing: set[str] = set()
            for key, conflict in cursor.fetchall():
                (differing if conflict else inserted).add(key)
            # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: check them now, so a
            # stale cached learner id fails here (and is retried) rather than at some outer
            # COMMIT. One round trip.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED")
            return inserted, differing
        inserted = set()
        adapt = connection.ops.adapt_datetimefield_value
        for start in range(0, len(kept), _SQLITE_CHUNK):
            chunk = kept[start : start + _SQLITE_CHUNK]
            placeholders = ",".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            params: list[Any] = []
            for row, learner_id, course_id, module_id in chunk:
                params += [
                    learner_id,
                    row.kind,
                    adapt(row.occurred_at),
                    row.value,
                    course_id,
                    module_id,
                    row.properties.decode(),
                    row.key,
                ]
            cursor.execute(
                f"INSERT INTO {_TABLE} {_SQLITE_COLUMNS} VALUES {placeholders} "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
                params,
            )
            inserted.update(key for (key,) in cursor.fetchall())
        new_learners = {learner_id for row, learner_id, *_ in kept if row.key in inserted}
        learners_mark_dirty(new_learners)
        return inserted, None


# external_id -> id of learners seen by this process. Ids never change and are never reused,
# so an entry can only go stale by deletion, which the insert detects (foreign key violation)
# and answers by clearing the cache and retrying (PostgreSQL only). Saves one query per batch
# (~4–8 ms of database time for 1,000 learners). Bounded: cleared when it reaches the limit.
_LEARNER_IDS: dict[str, int] = {}
LEARNER_CACHE_LIMIT = 500_000


def learner_ids(names: set[str]) -> dict[str, int]:
    """``{external_id: id}`` for the known learners among ``names``.

    The cache is used on PostgreSQL only, where the insert re-checks the foreign keys at once;
    SQLite (embedded mode) would need a scan of the events table for the same check.
    """
    if connection.vendor != "postgresql":
        return dict(Learner.objects.filter(external_id__in=names).values_list("external_id", "id"))
    found = {name: _LEARNER_IDS[name] for name in names if name in _LEARNER_IDS}
    missing = names - found.keys()
    if missing:
        fetched = dict(
            Learner.objects.filter(external_id__in=missing).values_list("external_id", "id")
        )
        if len(_LEARNER_IDS) + len(fetched) > LEARNER_CACHE_LIMIT:
            _LEARNER_IDS.clear()
        _LEARNER_IDS.update(fetched)
        found.update(fetched)
    return found
