"""Replacing a derived table wholesale at bulk-load speed, without making readers wait.

Inserting 445,282 rows into a table with four B-tree indexes and two deferred foreign keys
took 21 s of index maintenance and 17 s of foreign-key triggers at commit; loading the same
rows into a bare table and building the indexes afterwards takes about half a second.
``table_replaced`` does that inside the caller's transaction, beside the live table: it
creates an empty copy of the table's columns, defaults, identity and check constraints, lets
the caller load the rows into it, builds its primary and unique keys and indexes from the
live table's own definitions (read from the catalogue), analyses it, and only then swaps it
in — the old table dropped, the new one renamed, every key, index and sequence given the
name the migrations made, the privileges copied. Readers go on reading the old rows during
the load and the index builds, wait only for the swap (milliseconds) and see the new table
whole. Foreign keys are not copied: re-adding one would lock the table it refers to; a
derived table is better without them (``db_constraint=False``), and a table others refer
to cannot be swapped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

# pg_get_indexdef: CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING method (...)
_INDEX_DEF = re.compile(r"^(CREATE (?:UNIQUE )?INDEX )(\S+)( ON (?:ONLY )?)(\S+)( USING .*)$")


@contextmanager
def table_replaced(cursor: Any, table: str, *, lock_timeout_ms: int = 10_000) -> Iterator[str]:
    """Replace ``table`` by the rows the caller loads into the table name this yields.

    For tables no other table refers to. Must run inside ``transaction.atomic()``: on an
    error nothing of it is kept, and the old table stays as it was. ``lock_timeout_ms``
    bounds the wait for readers to finish before the swap (the caller fails rather than
    queue every later reader behind it).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("table_replaced must run inside transaction.atomic()")
    cursor.execute("SELECT 1 FROM pg_constraint WHERE confrelid = %s::regclass", [table])
    if cursor.fetchone():
        raise ValueError(f"{table} is referred to by a foreign key; it cannot be set aside")
    tag = uuid.uuid4().hex[:8]
    staging = f"{table[:40]}_load_{tag}"
    cursor.execute(
        f"CREATE TABLE {staging} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY"
        " INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)"
    )
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
    cursor.execute(
        "SELECT pg_get_serial_sequence(%s, a.attname), a.attname FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " AND pg_get_serial_sequence(%s, a.attname) IS NOT NULL",
        [table, table, table],
    )
    sequences = cursor.fetchall()
    cursor.execute(
        "SELECT grantee, privilege_type FROM information_schema.role_table_grants"
        " WHERE table_schema = current_schema() AND table_name = %s AND grantee <> current_user",
        [table],
    )
    grants = cursor.fetchall()

    yield staging

    for number, (_, definition) in enumerate(constraints):
        cursor.execute(f'ALTER TABLE {staging} ADD CONSTRAINT "c{number}_{tag}" {definition}')
    for number, (_, definition) in enumerate(indexes):
        match = _INDEX_DEF.match(definition)
        if match is None:  # pragma: no cover - PostgreSQL's own format
            raise ValueError(f"cannot rebuild index: {definition}")
        head, _, on, _, rest = match.groups()
        cursor.execute(f'{head}"i{number}_{tag}"{on}{staging}{rest}')
    for grantee, privilege in grants:
        cursor.execute(f'GRANT {privilege} ON {staging} TO "{grantee}"')
    cursor.execute(f"ANALYZE {staging}")  # a new table has no statistics for the planner
    # The swap: the only moment readers wait.
    cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"DROP TABLE {table}")
    cursor.execute(f"ALTER TABLE {staging} RENAME TO {table}")
    for number, (name, _) in enumerate(constraints):
        cursor.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "c{number}_{tag}" TO "{name}"')
    for number, (name, _) in enumerate(indexes):
        cursor.execute(f'ALTER INDEX "i{number}_{tag}" RENAME TO "{name}"')
    for sequence, column in sequences:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
        (current,) = cursor.fetchone()
        if current != sequence:
            cursor.execute(f"ALTER SEQUENCE {current} RENAME TO {sequence.split('.')[-1]}")
    cursor.execute("SET LOCAL lock_timeout = DEFAULT")
