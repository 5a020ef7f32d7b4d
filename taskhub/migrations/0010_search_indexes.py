# The indexes task search uses on PostgreSQL (taskhub/console/search.py): a GIN index on the
# payload (jsonb_path_ops, for `payload @> '{"user_id": 42}'`) and pg_trgm GIN indexes on the
# name and the error (for `ILIKE '%timeout%'`; the error's is partial, over the rows that have
# one). PostgreSQL only: on SQLite these operations do nothing, and search scans.
#
# pg_trgm is an extension: CREATE EXTENSION needs a superuser, or (PostgreSQL 13+, where pg_trgm
# is "trusted") a user with CREATE on the database. Without either, have a superuser run
# `CREATE EXTENSION pg_trgm;` in the database first (docs/install.md).
#
# The indexes are built CONCURRENTLY (the migration is not atomic): on a large table the build
# takes a while, and a plain CREATE INDEX would block every insert and status write meanwhile.
# They are not in the model's Meta: Django would create them on SQLite too, where GIN does not
# exist. Django's own CreateExtension / GinIndex are not used because django.contrib.postgres
# needs psycopg at import, which an SQLite-only installation does not have.

from django.db import migrations, router
from django.db.migrations.operations.base import Operation

TABLE = "taskhub_task"


class PostgresOnly(Operation):
    """SQL run on PostgreSQL only; no change to the models' state."""

    reversible = True

    def state_forwards(self, app_label, state):
        pass

    def _applies(self, app_label, schema_editor) -> bool:
        connection = schema_editor.connection
        return connection.vendor == "postgresql" and router.allow_migrate(
            connection.alias, app_label
        )


class CreateTrigramExtension(PostgresOnly):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if self._applies(app_label, schema_editor):
            # IF NOT EXISTS: when a superuser created it beforehand, no privilege is needed.
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass  # other indexes or applications may use the extension: it stays

    def describe(self):
        return "Creates the pg_trgm extension (PostgreSQL only)"


class CreateIndexConcurrently(PostgresOnly):
    def __init__(self, name: str, definition: str):
        self.name = name
        self.definition = definition

    def deconstruct(self):
        return (self.__class__.__name__, [self.name, self.definition], {})

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not self._applies(app_label, schema_editor):
            return
        if self._state(schema_editor) is False:
            # An interrupted concurrent build leaves an invalid index behind: build it again.
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {self.name}")
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {self.name} ON {TABLE} {self.definition}"
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if self._applies(app_label, schema_editor):
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {self.name}")

    def _state(self, schema_editor) -> bool | None:
        """Whether the index is valid; None if there is none."""
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %s AND pg_table_is_visible(c.oid)",
                [self.name],
            )
            row = cursor.fetchone()
        return None if row is None else bool(row[0])

    def describe(self):
        return f"Creates index {self.name} on {TABLE} (PostgreSQL only)"


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY runs outside a transaction

    dependencies = [
        ("taskhub", "0009_task_type"),
    ]

    operations = [
        CreateTrigramExtension(),
        CreateIndexConcurrently("task_payload_gin", "USING gin (payload jsonb_path_ops)"),
        CreateIndexConcurrently("task_name_trgm", "USING gin (name gin_trgm_ops)"),
        # Partial: most rows have no error, and neither their insert nor their status writes
        # touch this index. search.py states the same condition, so the planner may use it.
        CreateIndexConcurrently(
            "task_error_trgm", "USING gin (error gin_trgm_ops) WHERE error > ''"
        ),
    ]
