"""Migration operations for large tables: indexes built and dropped without blocking writes
(``CONCURRENTLY``). Use in a migration with ``atomic = False``."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently


class AddIndexOnline(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY (writes go on while it builds)."""


class RemoveIndexOnline(RemoveIndexConcurrently):
    """DROP INDEX CONCURRENTLY."""
