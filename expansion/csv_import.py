"""CSV import of learners, orders and events, through the same validation and writes as the
API's bulk endpoints (``learners_upsert``, ``orders_upsert``, ``events_ingest``).

All or nothing: the file is written in batches of ``BATCH`` items inside one transaction; if
any row is refused, every batch is rolled back and each error is reported with its CSV row
(the header is row 1) and column. A cell left empty is a field not sent (as an API item
without it: an upsert keeps what is stored). Orders take one row per line; the order's
columns repeat on each of its rows.

Progress: ``import_run`` calls ``progress(done, total)`` after each batch (the admin page
streams it, so a long import shows how far it is).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from expansion.commerce.sync import orders_upsert
from learners.ingest import events_ingest
from learners.sync import learners_upsert

BATCH = 1000
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000


class CsvError(Exception):
    """The file as a whole is unusable (not UTF-8, no header, an unknown column …)."""


def _text(value: str) -> Any:
    return value


def _boolean(value: str) -> Any:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "y"):
        return True
    if lowered in ("false", "0", "no", "n"):
        return False
    return value  # the API's validator names it


def _number(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def _integer(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        return value


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # refused by the validator as not an object


@dataclass(frozen=True)
class Kind:
    label: str
    columns: dict[str, Callable[[str], Any]]
    required: tuple[str, ...]
    service: Callable[..., Any]
    permission: str
    changelist: str
    example: str
    line_columns: dict[str, tuple[str, Callable[[str], Any]]] = field(default_factory=dict)


KINDS: dict[str, Kind] = {
    "learners": Kind(
        label="learners",
        columns={
            "external_id": _text,
            "email": _text,
            "name": _text,
            "account": _text,
            "time_zone": _text,
            "locale": _text,
            "marketing_opt_in": _boolean,
            "unsubscribed_at": _text,
            "attributes": _json,
            "role": _text,
            "signed_up_at": _text,
        },
        required=("external_id",),
        service=learners_upsert,
        permission="learners.add_learner",
        changelist="admin:learners_learner_changelist",
        example="external_id,email,name,time_zone,marketing_opt_in\n"
        "ann-1,ann@example.com,Ann Lee,Europe/London,true",
    ),
    "events": Kind(
        label="events",
        columns={
            "idempotency_key": _text,
            "learner": _text,
            "kind": _text,
            "occurred_at": _text,
            "value": _number,
            "course": _text,
            "module": _text,
            "properties": _json,
        },
        required=("idempotency_key", "learner", "kind", "occurred_at"),
        service=events_ingest,
        permission="learners.add_event",
        changelist="admin:learners_event_changelist",
        example="idempotency_key,learner,kind,occurred_at,course,module\n"
        "evt-1,ann-1,module_completed,2026-11-30T10:00:00Z,sql-1,m8",
    ),
    "orders": Kind(
        label="orders",
        columns={
            "external_id": _text,
            "learner": _text,
            "placed_at": _text,
            "currency": _text,
        },
        required=("external_id", "learner", "placed_at", "line_external_id", "sku", "unit_price"),
        service=orders_upsert,
        permission="expansion.add_order",
        changelist="admin:expansion_order_changelist",
        example="external_id,learner,placed_at,line_external_id,sku,quantity,unit_price\n"
        "order-1,ann-1,2026-11-30T10:00:00Z,1,SQL-2,1,99.00",
        line_columns={
            "line_external_id": ("external_id", _text),
            "sku": ("sku", _text),
            "quantity": ("quantity", _integer),
            "unit_price": ("unit_price", _text),
            "refunded_amount": ("refunded_amount", _text),
        },
    ),
}


@dataclass
class Parsed:
    """The file's items, and for each the CSV row it came from (for an order: each line's)."""

    items: list[dict[str, Any]]
    rows: list[list[int]]
    total_rows: int


def csv_parse(*, kind: Kind, data: bytes) -> Parsed:
    """The file's rows as API items; ``CsvError`` naming what is wrong with the file as a
    whole (encoding, header, size). A row's cell problems are left to the API's validation."""
    if len(data) > MAX_BYTES:
        raise CsvError(f"the file is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvError(
            f"the file is not UTF-8 (byte {error.start}): save it as UTF-8 CSV"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise CsvError("the file is empty: the first row names the columns") from None
    except csv.Error as error:
        raise CsvError(f"row 1: {error}") from None
    known = set(kind.columns) | set(kind.line_columns)
    unknown = [name for name in header if name not in known]
    if unknown:
        raise CsvError(
            f"row 1: {', '.join(repr(n) for n in unknown)} is not a column of a {kind.label} "
            f"import; its columns: {', '.join(sorted(known))}"
        )
    missing = [name for name in kind.required if name not in header]
    if missing:
        raise CsvError(f"row 1: the required column(s) {', '.join(missing)} are missing")
    if len(set(header)) != len(header):
        raise CsvError("row 1: a column is named twice")
    items: list[dict[str, Any]] = []
    origins: list[list[int]] = []
    orders: dict[str, int] = {}
    count = 0
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            count += 1
            if count > MAX_ROWS:
                raise CsvError(f"more than {MAX_ROWS:,} rows: split the file")
            if len(cells) != len(header):
                raise CsvError(f"row {number}: {len(cells)} cells for {len(header)} columns")
            values = {name: cell for name, cell in zip(header, cells, strict=True) if cell != ""}
            item = {
                name: kind.columns[name](v) for name, v in values.items() if name in kind.columns
            }
            if not kind.line_columns:
                items.append(item)
                origins.append([number])
                continue
            line = {
                target: convert(values[name])
                for name, (target, convert) in kind.line_columns.items()
                if name in values
            }
            key = str(item.get("external_id", f"row {number}"))
            if key not in orders:
                orders[key] = len(items)
                items.append({**item, "lines": []})
                origins.append([])
            order = items[orders[key]]
            for name, value in item.items():
                if order.get(name) != value:
                    raise CsvError(
                        f"row {number}, column {name}: order {key} says {order.get(name)!r} "
                        f"on an earlier row and {value!r} here"
                    )
            order["lines"].append(line)
            origins[orders[key]].append(number)
    except csv.Error as error:
        raise CsvError(f"row {reader.line_num}: {error}") from None
    if not items:
        raise CsvError("the file has a header and no rows")
    return Parsed(items=items, rows=origins, total_rows=count)


@dataclass
class Outcome:
    written: bool = False
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # row, column, reason


def _locate(error: dict[str, Any], rows: list[int], kind: Kind) -> dict[str, Any]:
    """An API error (item index, field) as the CSV's row and column."""
    column = error.get("field") or ""
    row = rows[0] if rows else None
    if column.startswith("lines[") and kind.line_columns:
        index_text, _, inner = column[len("lines[") :].partition("]")
        if index_text.isdigit() and int(index_text) < len(rows):
            row = rows[int(index_text)]
        inner = inner.lstrip(".")
        by_target = {target: name for name, (target, _) in kind.line_columns.items()}
        column = by_target.get(inner, inner or "lines")
    return {"row": row, "column": column, "reason": error.get("reason", "")}


def import_steps(*, kind: Kind, parsed: Parsed) -> Generator[tuple[int, int], None, Outcome]:
    """Write every item or none (see the module docstring), yielding (items done, total)
    after each batch; returns the ``Outcome`` (errors sorted by row). The transaction spans
    the batches: nothing is visible to anyone until the last one has passed."""
    outcome = Outcome()
    total = len(parsed.items)
    with transaction.atomic():
        for start in range(0, total, BATCH):
            items = parsed.items[start : start + BATCH]
            result = kind.service(items=items).as_dict()
            outcome.created += result.get("created", result.get("accepted", 0))
            outcome.updated += result.get("updated", 0)
            outcome.duplicates += len(result.get("duplicates", []))
            for error in result["errors"]:
                outcome.errors.append(_locate(error, parsed.rows[start + error["index"]], kind))
            yield min(start + BATCH, total), total
        if outcome.errors:
            transaction.set_rollback(True)
        else:
            outcome.written = True
    outcome.errors.sort(key=lambda e: (e["row"] or 0, e["column"]))
    if not outcome.written:
        outcome.created = outcome.updated = outcome.duplicates = 0
    return outcome


def import_run(
    *, kind: Kind, parsed: Parsed, progress: Callable[[int, int], None] | None = None
) -> Outcome:
    """``import_steps`` to its end, calling ``progress(done, total)`` after each batch."""
    steps = import_steps(kind=kind, parsed=parsed)
    while True:
        try:
            done, total = next(steps)
        except StopIteration as finished:
            return finished.value
        if progress is not None:
            progress(done, total)
