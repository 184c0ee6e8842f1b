"""Migration operations for a table of millions of rows that the workers write all the time:
on PostgreSQL indexes are built and dropped CONCURRENTLY (the tracking writes are not
blocked meanwhile; the migration must then be non-atomic), and the trigram indexes of the
search exist on PostgreSQL only. Other databases do as Django always does."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import migrations
from django.db.migrations.operations.models import IndexOperation
from django.db.migrations.state import ProjectState
from django.db.models import Index


class _IndexConcurrentlyOnPostgres(IndexOperation):
    """AddIndex and RemoveIndex on PostgreSQL: each direction creates or drops the index
    CONCURRENTLY (the forwards of one is the backwards of the other); elsewhere the plain
    operation. The model and the index come from the state that has the index: the one the
    operation goes to when it creates, the one it comes from when it drops."""

    creates: ClassVar[bool]  # forwards creates the index (and backwards drops it), or the reverse
    model_name: str

    def index_in(self, state: ProjectState, app_label: str) -> Index:
        raise NotImplementedError

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        self._concurrently(self.creates, app_label, schema_editor, from_state, to_state)
        return None

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        self._concurrently(not self.creates, app_label, schema_editor, from_state, to_state)
        return None

    def _concurrently(
        self, create: bool, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        state = to_state if create else from_state
        model = state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = self.index_in(state, app_label)
        if create:
            schema_editor.add_index(model, index, concurrently=True)
        else:
            schema_editor.remove_index(model, index, concurrently=True)


class AddIndexConcurrentlyOnPostgres(_IndexConcurrentlyOnPostgres, migrations.AddIndex):
    creates = True

    def index_in(self, state: ProjectState, app_label: str) -> Index:
        return self.index


class RemoveIndexConcurrentlyOnPostgres(_IndexConcurrentlyOnPostgres, migrations.RemoveIndex):
    creates = False

    def index_in(self, state: ProjectState, app_label: str) -> Index:
        index: Index = state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        return index


def postgres_only_sql(forwards: str, backwards: str) -> migrations.RunPython:
    """SQL run on PostgreSQL only (elsewhere nothing): for what the model's state does not
    describe, such as an expression index with an operator class of an extension."""

    def run(sql: str) -> Any:
        def apply(apps: Any, schema_editor: Any) -> None:
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(sql)

        return apply

    return migrations.RunPython(run(forwards), run(backwards), elidable=False)


def drop_like_index_on_postgres(table: str, column: str) -> migrations.RunPython:
    """Drop the `varchar_pattern_ops` index Django adds beside the unique index of a
    CharField on PostgreSQL (for LIKE 'prefix%' lookups) when nothing asks such lookups: it
    only costs every write. Its name has a hash Django computes, so it is looked up."""

    def like_indexes(schema_editor: Any) -> list[str]:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
                [table, f"%({column} varchar_pattern_ops)%"],
            )
            return [row[0] for row in cursor.fetchall()]

    def forwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for name in like_indexes(schema_editor):
                schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')

    def backwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql" and not like_indexes(schema_editor):
            schema_editor.execute(
                f'CREATE INDEX CONCURRENTLY "{table}_{column}_like" ON "{table}"'
                f' ("{column}" varchar_pattern_ops)'
            )

    return migrations.RunPython(forwards, backwards, elidable=False)
