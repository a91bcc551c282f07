"""Migration operations for large tables: indexes built and dropped without blocking writes."""

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations
from django.db.migrations.operations.base import Operation


class _Online(Operation):
    """The concurrent operation on PostgreSQL; the ``plain`` one elsewhere (SQLite). Use in a
    migration with ``atomic = False``."""

    plain: Any

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndexOnline(_Online, AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL (writes go on while it builds)."""

    plain = migrations.AddIndex


class RemoveIndexOnline(_Online, RemoveIndexConcurrently):
    """DROP INDEX CONCURRENTLY on PostgreSQL."""

    plain = migrations.RemoveIndex
