"""Replacing a derived table wholesale at bulk-load speed.

Inserting 445,282 rows into a table with four B-tree indexes and two deferred foreign keys
took 21 s of index maintenance and 17 s of foreign-key triggers at commit; loading the same
rows into the bare table and building the indexes afterwards takes under 3 s.
``table_replaced`` does that inside the caller's transaction: it empties the table, sets its
indexes and its primary and unique keys aside, lets the caller load the rows, then rebuilds
each from its own definition (read from the catalogue, so the names and definitions the
migrations made are kept exactly). Check constraints stay and are checked row by row, and so
do foreign keys: re-adding one would lock the table it refers to, and fails while that table
has deferred checks pending; a derived table is better without them (``db_constraint=False``).

The table is locked (ACCESS EXCLUSIVE, as ``TRUNCATE`` takes) from the start of the block
to the commit: readers wait for the new contents rather than see a half-written table, so
keep the work before the load out of the block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection


@contextmanager
def table_replaced(cursor: Any, table: str, *, lock_timeout_ms: int = 10_000) -> Iterator[None]:
    """Empty ``table`` for a bulk load, rebuilding its indexes and constraints afterwards.

    For tables no other table refers to. Must run inside ``transaction.atomic()``: on an
    error nothing of it is kept, and the old rows stay. ``lock_timeout_ms`` bounds the wait
    for readers to finish before the table can be locked (the caller fails rather than queue
    every later reader behind it).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("table_replaced must run inside transaction.atomic()")
    cursor.execute("SELECT 1 FROM pg_constraint WHERE confrelid = %s::regclass", [table])
    if cursor.fetchone():
        raise ValueError(f"{table} is referred to by a foreign key; it cannot be set aside")
    cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(
        """
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY contype, conname
        """,
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = %s::regclass
          AND i.indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = %s::regclass)
        ORDER BY c.relname
        """,
        [table, table],
    )
    indexes = cursor.fetchall()
    cursor.execute(f"TRUNCATE {table}")
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    yield
    for name, definition in constraints:
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition)
