"""Reads that can lag go to a read replica; everything else to the primary.

With ``DATABASE_REPLICA_URL`` set, settings add the ``replica`` alias (a streaming replica of
the primary: same schema, never migrated on its own) and this router. Reads go to the replica
only inside ``replica_reads()`` (the admin's big changelists, the revenue dashboard, experiment
results) or through ``replica_alias()`` (the metrics' raw SQL), and even there not inside a
transaction on the primary: a path that wrote must read what it wrote (ingest, dispatch,
claims and every ``atomic`` block read and write the primary). Writes, migrations and
anything outside those paths always use the primary. Without the setting there is no
``replica`` alias and everything runs on the primary, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def replica_alias() -> str:
    """The alias a lag-tolerant read should use now: the replica when there is one and the
    primary's connection is not inside a transaction (that would read before its own writes
    land on the replica), else the primary."""
    if replica_configured() and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return REPLICA
    return DEFAULT_DB_ALIAS


@contextmanager
def replica_reads() -> Iterator[str]:
    """ORM reads in the block go to ``replica_alias()``; writes still go to the primary.
    Yields the alias reads use at entry. Nests; safe without a replica (a no-op)."""
    token = _replica_reads.set(True)
    try:
        yield replica_alias()
    finally:
        _replica_reads.reset(token)


class ReplicaRouter:
    """Django database router: see the module docstring."""

    def db_for_read(self, model, **hints) -> str | None:
        if _replica_reads.get():
            return replica_alias()
        return None  # Django's default: the primary, or the database of a hinted instance

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        # The replica holds the primary's rows: an object read there relates to one here.
        aliases = {DEFAULT_DB_ALIAS, REPLICA}
        if obj1._state.db in aliases and obj2._state.db in aliases:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        # The replica is a copy of the primary, schema included: never migrated on its own.
        return db != REPLICA
