"""Row-by-row validation and set-based writes for bulk endpoints.

Every bulk endpoint takes ``{"items": [...]}``, validates each item on its own and reports every
bad field as ``{"index": i, "field": "occurred_at", "reason": "..."}``; the valid items are then
written set-based in one transaction (:func:`upsert`). What each field is held to (the
validators, :class:`FieldError`) lives in :mod:`expansion.core.api.fields`; its names are
re-exported here, where the bulk endpoints import them from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import models

from expansion.core.api.fields import (
    CONTROL_CHARACTERS,
    EARLIEST,
    EMAIL_MAX_LENGTH,
    FUTURE_TOLERANCE,
    ID_PATTERN,
    ID_RULES,
    LATEST,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    RESERVED_IDS,
    TIMESTAMP_RANGE,
    FieldError,
    Validator,
    aware_datetime,
    boolean,
    choice,
    currency,
    email,
    identifier,
    integer,
    item_storable,
    json_object,
    money,
    number,
    optional,
    past_datetime,
    string,
    text_storable,
    time_zone,
    type_name,
    web_url,
)

__all__ = [
    # What each field is held to (expansion.core.api.fields).
    "CONTROL_CHARACTERS",
    "EARLIEST",
    "EMAIL_MAX_LENGTH",
    "FUTURE_TOLERANCE",
    "ID_PATTERN",
    "ID_RULES",
    "LATEST",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "RESERVED_IDS",
    "TIMESTAMP_RANGE",
    "FieldError",
    "Validator",
    "aware_datetime",
    "boolean",
    "choice",
    "currency",
    "email",
    "identifier",
    "integer",
    "item_storable",
    "json_object",
    "money",
    "number",
    "optional",
    "past_datetime",
    "string",
    "text_storable",
    "time_zone",
    "type_name",
    "web_url",
    # The batch: its items, their validation, references and the set-based write.
    "BatchError",
    "BatchResult",
    "Spec",
    "UpsertCounts",
    "batch_items",
    "items_schema",
    "resolve_references",
    "upsert",
    "validate_items",
]


class BatchError(Exception):
    """The request as a whole is unusable (not a list, too large, ...): nothing is written."""

    def __init__(self, reason: str, field: str = "items") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class Spec:
    validator: Validator
    required: bool = False


def item_schema(specs: Mapping[str, Spec]) -> dict[str, Any]:
    """The OpenAPI schema of one item validated by ``specs`` (a bulk item, a nested one)."""
    return {
        "type": "object",
        "properties": {name: dict(getattr(s.validator, "schema", {})) for name, s in specs.items()},
        "required": [name for name, s in specs.items() if s.required],
        "additionalProperties": False,
    }


def items_schema(specs: Mapping[str, Spec], *, description: str = "") -> dict[str, Any]:
    """The OpenAPI schema of a bulk request body built from the same specs that validate it."""
    item = item_schema(specs)
    return {
        "type": "object",
        "description": description,
        "properties": {"items": {"type": "array", "minItems": 1, "items": item}},
        "required": ["items"],
    }


@dataclass
class BatchResult:
    """Valid rows (index, cleaned dict) and errors (index, field, reason)."""

    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, index: int, field_name: str | None, reason: str) -> None:
        self.errors.append({"index": index, "field": field_name, "reason": reason})

    def drop_failed(self) -> None:
        """Forget rows that picked up an error after their fields were validated."""
        failed = {error["index"] for error in self.errors}
        self.rows = [(i, row) for i, row in self.rows if i not in failed]


def batch_items(data: Any) -> list[Any]:
    """The ``items`` list of a bulk request body, or :class:`BatchError`."""
    if not isinstance(data, Mapping):
        raise BatchError(
            f'the body must be a JSON object {{"items": [...]}}, got {type_name(data)}'
        )
    items = data.get("items")
    if not isinstance(items, list):
        raise BatchError(f"must be an array, got {type_name(items)}")
    if not items:
        raise BatchError("must hold at least one item")
    if len(items) > settings.API_BATCH_LIMIT:
        raise BatchError(
            f"holds {len(items)} items; the limit is {settings.API_BATCH_LIMIT} per request"
        )
    return items


def validate_items(
    items: list[Any], specs: Mapping[str, Spec], *, unique: str | tuple[str, ...] | None = None
) -> BatchResult:
    """Validate each item against ``specs``.

    Unknown fields are errors (they are usually typos). A field missing from an item is left
    out of its cleaned dict, so an upsert touches only the fields the client sent. ``unique``
    names the field(s) that identify an item; a repeat within the batch is an error.
    """
    result = BatchResult()
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            result.fail(index, None, f"must be a JSON object, got {type_name(item)}")
            continue
        clean: dict[str, Any] = {}
        ok = True
        storable = item_storable(item)
        for name, value in item.items():
            spec = specs.get(name)
            if spec is None:
                result.fail(index, name, "is not a known field")
                ok = False
                continue
            try:
                if not storable:
                    text_storable(value)
                clean[name] = spec.validator(value)
            except FieldError as error:
                result.fail(index, error.field or name, error.reason)
                ok = False
        for name, spec in specs.items():
            if spec.required and name not in item:
                result.fail(index, name, "is required")
                ok = False
        if ok and unique is not None:
            key = tuple(clean[f] for f in unique) if isinstance(unique, tuple) else clean[unique]
            if key in seen:
                label = unique if isinstance(unique, str) else "+".join(unique)
                result.fail(index, label, f"repeats item {seen[key]} of this batch")
                ok = False
            else:
                seen[key] = index
        if ok:
            result.rows.append((index, clean))
    return result


def resolve_references(
    result: BatchResult,
    *,
    field_name: str,
    lookup: Callable[[set[Any]], Mapping[Any, Any]],
    target: str,
    what: str,
) -> None:
    """Replace ``row[field_name]`` (an external id) by the id ``lookup`` maps it to.

    One query for the whole batch; rows naming an unknown id fail with ``unknown <what>``.
    """
    wanted = {row[field_name] for _, row in result.rows if row.get(field_name) is not None}
    found = lookup(wanted) if wanted else {}
    for index, row in result.rows:
        if field_name not in row:
            continue
        external = row.pop(field_name)
        if external is None:
            row[target] = None
            continue
        resolved = found.get(external)
        if resolved is None:
            result.fail(index, field_name, f"unknown {what} {str(external)[:64]!r}")
        else:
            row[target] = resolved
    result.drop_failed()


def refuse_moves_past_stored(
    result: BatchResult,
    model: type[models.Model],
    *,
    keys: tuple[str, ...],
    moved: str,
    kept: str,
    what: str,
) -> None:
    """An item that leaves ``kept`` (a later date) out keeps the stored one: its ``moved``
    (the earlier date) may not pass it, or the table's check would refuse the whole batch.
    One query for the batch; each such item fails on ``moved``."""
    keeping = {
        tuple(row[key] for key in keys): index for index, row in result.rows if kept not in row
    }
    if not keeping:
        return
    stored = model._default_manager.filter(
        **{f"{key}__in": {values[n] for values in keeping} for n, key in enumerate(keys)},
        **{f"{kept}__isnull": False},
    ).values_list(*keys, kept)
    rows = dict(result.rows)
    for *values, stored_at in stored:
        index = keeping.get(tuple(values))
        if index is not None and stored_at < rows[index][moved]:
            result.fail(
                index,
                moved,
                f"is after the {what}'s stored {kept} ({stored_at.isoformat()}); send {kept} too",
            )
    result.drop_failed()


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0


def upsert(
    model: type[models.Model],
    rows: list[dict[str, Any]],
    *,
    unique_fields: tuple[str, ...],
    touch: tuple[str, ...] = ("updated_at",),
) -> UpsertCounts:
    """Insert or update ``rows`` in as few statements as there are distinct row shapes.

    Only the fields a row carries are updated on an existing record, so a partial sync never
    blanks what it did not send. Counts come from one lookup of the existing keys; they are
    exact unless another writer inserts the same keys concurrently (the rows stay correct).
    """
    counts = UpsertCounts()
    if not rows:
        return counts
    existing = _existing_keys(model, rows, unique_fields)
    shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(frozenset(row), []).append(row)
    for shape, group in shapes.items():
        update_fields = sorted(shape - set(unique_fields)) + [f for f in touch if f not in shape]
        objs = [model(**row) for row in group]
        if update_fields:
            model._default_manager.bulk_create(
                objs,
                update_conflicts=True,
                unique_fields=list(unique_fields),
                update_fields=update_fields,
                batch_size=1000,
            )
        else:
            model._default_manager.bulk_create(objs, ignore_conflicts=True, batch_size=1000)
    for row in rows:
        if _key(row, unique_fields) in existing:
            counts.updated += 1
        else:
            counts.created += 1
    return counts


def _key(row: Mapping[str, Any], unique_fields: tuple[str, ...]) -> tuple:
    return tuple(row[f] for f in unique_fields)


def _existing_keys(
    model: type[models.Model], rows: list[dict[str, Any]], unique_fields: tuple[str, ...]
) -> set:
    if len(unique_fields) == 1:
        (name,) = unique_fields
        values = {row[name] for row in rows}
        return {
            (v,)
            for v in model._default_manager.filter(**{f"{name}__in": values}).values_list(
                name, flat=True
            )
        }
    # Composite keys: narrow by the first field, match the rest in Python (a batch is ≤ 1,000).
    first = unique_fields[0]
    found = model._default_manager.filter(
        **{f"{first}__in": {row[first] for row in rows}}
    ).values_list(*unique_fields)
    return set(found)
