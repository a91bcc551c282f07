"""Event ingestion: the hot path of the sync API.

A batch of up to 1,000 events is validated item by item in plain Python (no serializer
objects), its learners, courses and modules are resolved in one query each, and the valid rows
go to the database in one ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING RETURNING``.
Keys the insert did not return are duplicates: a replayed batch adds nothing and says so;
a key reused with different content is refused as a conflict, naming the key.
The rows travel as one JSON document through ``json_to_recordset`` (one statement, one
parameter); measured by bench/ingest.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction

from expansion.core.api.batch import FUTURE_TOLERANCE, BatchError, type_name

from .dirty import events_stored_notify, scoring_kick
from .event_items import EventRow, event_validate
from .models import Course, DirtyLearner, Event, Learner, Module


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "errors": self.errors}


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
_Kept = tuple[EventRow, int, int | None, int | None]


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
    rows: list[EventRow] = []
    for index, item in enumerate(items):
        row = event_validate(index, item, errors, now_limit)
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
    # compare it (a key repeated inside the batch): replays stay one statement.
    compare = [entry for entry in repeats if entry[0].key not in inserted]
    stored = _stored_events({entry[0].key for entry in compare}) if compare else {}
    for entry in sorted(not_new + repeats, key=lambda e: e[0].index):
        row = entry[0]
        if first[row.key] is entry:
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
# probe sees only events stored before, and jsonb compares properties as JSON (key order and
# 1 vs 1.0 aside, true is not 1). It probes the unique index only for the keys the insert
# skipped: OFFSET 0 keeps the lateral subquery a probe, where the join it replaced let the
# planner hash the whole events table (13 ms of a 51 ms statement at 40,000 events, growing
# with the table) to find the nothing a fresh batch conflicts with. Measured: a replayed
# batch of 1,000 costs no more than before (~20 ms), where fetching the stored rows to
# compare in Python added ~35 ms.
_INSERT = f"""
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
SELECT r.i, true FROM r
CROSS JOIN LATERAL (
    SELECT e.learner_id, e.kind, e.occurred_at, e.value, e.course_id, e.module_id, e.properties
    FROM {_TABLE} e WHERE e.idempotency_key = r.i OFFSET 0
) e
WHERE NOT EXISTS (SELECT FROM inserted WHERE inserted.idempotency_key = r.i)
  AND (e.learner_id, e.kind, e.occurred_at, e.value, e.course_id, e.module_id, e.properties)
      IS DISTINCT FROM (r.l, r.k, r.t, r.v, r.c, r.m, coalesce(r.p, '{{}}'::jsonb))
"""


def _insert(kept: list[_Kept]) -> tuple[set[str], set[str]]:
    """Insert the rows; return the idempotency keys that were new, and those already stored
    with other content."""
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
    inserted: set[str] = set()
    differing: set[str] = set()
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [payload])
        for key, conflict in cursor.fetchall():
            (differing if conflict else inserted).add(key)
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: check them now, so a
        # stale cached learner id fails here (and is retried) rather than at some outer
        # COMMIT. One round trip.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED")
    return inserted, differing


# external_id -> id of learners seen by this process. Ids never change and are never reused,
# so an entry can only go stale by deletion, which the insert detects (foreign key violation)
# and answers by clearing the cache and retrying. Saves one query per batch
# (~4–8 ms of database time for 1,000 learners). Bounded: cleared when it reaches the limit.
_LEARNER_IDS: dict[str, int] = {}
LEARNER_CACHE_LIMIT = 500_000


def learner_ids(names: set[str]) -> dict[str, int]:
    """``{external_id: id}`` for the known learners among ``names``, from the process's cache
    where it can (the insert re-checks the foreign keys at once)."""
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
