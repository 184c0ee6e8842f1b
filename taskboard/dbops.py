"""Migration operations for a table of millions of rows that the workers write all the time:
on PostgreSQL indexes are built and dropped CONCURRENTLY (the tracking writes are not
blocked meanwhile; the migration must then be non-atomic), and the trigram indexes of the
search exist on PostgreSQL only. Other databases do as Django always does."""

from __future__ import annotations

from typing import Any

from django.db import migrations


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)
        return None

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)
        return None


class RemoveIndexConcurrentlyOnPostgres(migrations.RemoveIndex):
    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.remove_index(model, index, concurrently=True)
        return None

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.add_index(model, index, concurrently=True)
        return None


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
