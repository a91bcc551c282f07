"""The SQL plumbing every step of a pass shares: running a statement, statistics for the
planner, the pass's temporary tables, the subquery fence and the changed-rows-only upsert."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection

TEMP_TABLES = ("scoring_scope", "scoring_ev", "scoring_lv", "scoring_es", "scoring_co")

# Keeps PostgreSQL from inlining a subquery into the one above it. Inlined, every reference
# to a computed column re-evaluates its expression: the LPS three times per row and each RFM
# quintile CASE once per named cell — most of the upserts' time (bench/scoring.py: 1.1 s of
# 1.9 s for 150,000 enrollment scores). ``OFFSET 0`` makes each level compute its columns once.
FENCE = " OFFSET 0"


def execute(sql: str, params: Iterable[Any] = ()) -> int:
    """Run one statement on the pass's connection; returns the rows it touched."""
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.rowcount


def analyze(*tables: str) -> None:
    """Statistics for the planner; on temporary tables, of the join keys only (the other
    columns' statistics cost ~60 ms a table and change no plan)."""
    for table in tables:
        execute(f"ANALYZE {table}")


def drop_temp_tables() -> None:
    for name in TEMP_TABLES:
        execute(f"DROP TABLE IF EXISTS {name}")


def upsert(
    table: str,
    key: str,
    columns: tuple[str, ...],
    compared: tuple[str, ...],
    select: str,
    returning: tuple[str, ...] = (),
) -> str:
    """SQL writing ``select``'s rows (named like ``columns``) into ``table``, changed rows only.

    Only rows that are new or whose ``compared`` values differ are written: a steady-state
    pass then rewrites only the learners whose scores moved, where rewriting every row cost
    ~60 % of a full pass (index maintenance on 100,000 unchanged rows). So ``computed_at`` is
    when the values last changed; ScoringRun records every pass.

    One statement. One join of the new values with the stored ones keeps the rows that are new
    or differ (a hash join over the whole table on a full pass); an ``UPDATE`` writes the
    changed ones and an ``INSERT`` the new ones. ``INSERT … ON CONFLICT DO UPDATE`` instead
    probed and locked all 1,500,000 existing rows one by one: 7 of its 15 s in a steady-state
    pass (bench/scoring.py). Returns the written rows' ``returning`` columns as ``changed``,
    for the caller to ``SELECT`` from.
    """
    names = ", ".join(columns)
    ret = ", ".join(returning or (key,))
    old = ", ".join(f"t.{c}" for c in compared)
    new = ", ".join(f"s.{c}" for c in compared)
    return f"""
        WITH todo AS MATERIALIZED (
          SELECT s.*, t.{key} IS NULL AS is_new
          FROM ({select}) s LEFT JOIN {table} t ON t.{key} = s.{key}
          WHERE t.{key} IS NULL OR ({old}) IS DISTINCT FROM ({new})
        ),
        updated AS (
          UPDATE {table} t SET {", ".join(f"{c} = s.{c}" for c in columns if c != key)}
          FROM todo s WHERE t.{key} = s.{key} AND NOT s.is_new
          RETURNING {", ".join(f"t.{c}" for c in returning or (key,))}
        ),
        inserted AS (
          INSERT INTO {table} ({names}) SELECT {names} FROM todo WHERE is_new
          ON CONFLICT ({key}) DO NOTHING
          RETURNING {ret}
        ),
        changed AS (SELECT {ret} FROM updated UNION ALL SELECT {ret} FROM inserted)
    """
