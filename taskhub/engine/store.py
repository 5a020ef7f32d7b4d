"""Set-based, guarded writes to task rows: many rows per statement, one vendor-neutral shape.

Every transition is guarded by (id, attempt, expected status), so a stale or duplicated outcome
changes nothing; each function returns the (id, attempt) pairs it actually changed.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.db.models import JSONField

from ..models import Task, TaskEvent

# PostgreSQL needs the type of each unnest array spelled out (a column may be all NULLs).
_PG_TYPES = {
    "id": "uuid",
    "attempt": "integer",
    "status": "varchar",
    "result": "jsonb",
    "error": "text",
    "traceback": "text",
    "started_at": "timestamptz",
    "completed_at": "timestamptz",
    "duration": "double precision",
    "scheduled_at": "timestamptz",
    "progress": "integer",
    "worker_id": "varchar",
    "updated_at": "timestamptz",
}

_TABLE = Task._meta.db_table
_CHUNK = 400


def _prep(column: str, value: Any) -> Any:
    return Task._meta.get_field(column).get_db_prep_value(value, connection, prepared=False)


def guarded_update(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    assignments: str,
    from_statuses: Sequence[str],
) -> set[tuple[uuid.UUID, int]]:
    """UPDATE the task rows named by (id, attempt) in ``rows`` whose status is one of
    ``from_statuses``; ``assignments`` is the SET clause over the values alias ``v``.

    ``columns`` must start with ``id`` and ``attempt``; ``{t}`` in ``assignments`` names the
    task table (to read a row's current value).
    """
    changed: set[tuple[uuid.UUID, int]] = set()
    statuses = ", ".join(f"'{s}'" for s in from_statuses)
    if connection.vendor == "postgresql":
        return _pg_guarded_update(columns, rows, assignments, statuses) if rows else changed
    # SQLite: a VALUES list (PostgreSQL takes the unnest statement above).
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        params = [_prep(c, v) for row in chunk for c, v in zip(columns, row, strict=True)]
        sql = (
            f"WITH v ({', '.join(columns)}) AS (VALUES {', '.join([row_sql] * len(chunk))}) "
            f"UPDATE {_TABLE} SET {assignments.format(t=_TABLE)} FROM v "
            f"WHERE {_TABLE}.id = v.id AND {_TABLE}.attempt = v.attempt "
            f"AND {_TABLE}.status IN ({statuses}) "
            f"RETURNING {_TABLE}.id, {_TABLE}.attempt"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            changed.update((uuid.UUID(str(i)), int(a)) for i, a in cursor.fetchall())
    return changed


@contextmanager
def server_cursor() -> Iterator[Any]:
    """A psycopg cursor with server-side parameter binding on Django's connection (and in its
    transaction). Django's default client-side binding quotes every parameter in Python, which
    on the hot paths cost more than the statements themselves. Errors come out as Django's
    (DatabaseError, …) and mark the connection for the usual close-and-reconnect."""
    import psycopg  # only PostgreSQL uses it: the embedded default runs on SQLite

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _json_default(value: Any) -> str:
    # The only non-JSON values the hot paths pass: datetimes and UUIDs (the hottest callers
    # hand over strings already; a call into this hook per value is what they save).
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _as_json_records(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as one JSON text for ``json_to_recordset``: the C encoder writes it in a fraction of
    the time psycopg's (pure-Python) array dumpers took per element."""
    return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=_json_default)


def _pg_guarded_update(columns, rows, assignments: str, statuses: str) -> set:
    # One JSON parameter whatever the batch size: the statement text never changes.
    record = ", ".join(f"{c} {_PG_TYPES[c]}" for c in columns)
    sql = (
        f"UPDATE {_TABLE} SET {assignments.format(t=_TABLE)} "
        f"FROM json_to_recordset(%s::json) AS v ({record}) "
        f"WHERE {_TABLE}.id = v.id AND {_TABLE}.attempt = v.attempt "
        f"AND {_TABLE}.status IN ({statuses}) "
        f"RETURNING {_TABLE}.id, {_TABLE}.attempt"
    )
    with server_cursor() as cursor:
        cursor.execute(sql, [_as_json_records(columns, rows)])
        return {(i, a) for i, a in cursor.fetchall()}


_EVENT_COLUMNS = ("task_id", "kind", "attempt", "at", "data")


class NewEvent:
    """A task event about to be inserted, for the hot paths: what :func:`insert_events` and the
    live-event publisher read of a ``TaskEvent``, without a model instance's construction cost
    (a dispatcher cycle and an outcome flush make one or two per task)."""

    __slots__ = ("id", "task_id", "kind", "attempt", "at", "data")

    def __init__(
        self, task_id: str, kind: str, attempt: int, at: dt.datetime, data: dict | None = None
    ) -> None:
        self.id: int | None = None
        self.task_id, self.kind, self.attempt, self.at = task_id, kind, attempt, at
        self.data = data or {}

    @property
    def pk(self) -> int | None:
        return self.id


def insert_events(events: Sequence[Any]) -> Sequence[Any]:
    """Insert event rows — ``TaskEvent`` or :class:`NewEvent` — setting their ids; on
    PostgreSQL in one server-bound statement."""
    if not events:
        return events
    if connection.vendor != "postgresql":
        saved = TaskEvent.objects.bulk_create([_as_model(e) for e in events])
        for event, row in zip(events, saved, strict=True):
            event.id = row.id
        return events
    sql = (
        f"INSERT INTO {TaskEvent._meta.db_table} ({', '.join(_EVENT_COLUMNS)}) "
        f"SELECT {', '.join(_EVENT_COLUMNS)} FROM json_to_recordset(%s::json) AS v "
        "(task_id uuid, kind varchar, attempt integer, at timestamptz, data jsonb) RETURNING id"
    )
    rows = [(e.task_id, e.kind, e.attempt, e.at.isoformat(), e.data or {}) for e in events]
    with server_cursor() as cursor:
        cursor.execute(sql, [_as_json_records(_EVENT_COLUMNS, rows)])
        for event, (event_id,) in zip(events, cursor.fetchall(), strict=True):
            event.id = event_id
    return events


def _as_model(event: Any) -> Any:
    if isinstance(event, TaskEvent):
        return event
    return TaskEvent(
        task_id=event.task_id, kind=event.kind, attempt=event.attempt, at=event.at, data=event.data
    )


# -- inserting new task rows fast ------------------------------------------------------------------
def _insert_columns(model) -> list:
    # Every concrete column; an auto-increment primary key is left to the database.
    return [f for f in model._meta.concrete_fields if not (f.primary_key and f.auto_created)]


def insert_task_with_event(task: Task, event) -> None:
    """INSERT a task row and its first event in one statement (PostgreSQL): in autocommit that
    is one round trip for the whole durable enqueue instead of BEGIN, two INSERTs and COMMIT.
    Sets ``event.id``. Raises IntegrityError (nothing written) like the ORM would."""
    task_fields = _insert_columns(Task)
    event_fields = [f for f in _insert_columns(type(event)) if f.attname != "task_id"]
    event_table = type(event)._meta.db_table
    sql = (
        f"WITH t AS (INSERT INTO {_TABLE} ({', '.join(f.column for f in task_fields)}) "
        f"VALUES ({', '.join(['%s'] * len(task_fields))}) RETURNING id) "
        f"INSERT INTO {event_table} (task_id, {', '.join(f.column for f in event_fields)}) "
        f"SELECT t.id, {', '.join(['%s'] * len(event_fields))} FROM t RETURNING id"
    )
    # Server-side binding of native values: the per-field ORM conversion and client-side quoting
    # cost more than the INSERT itself. (Nothing is prepared: Django leaves psycopg's
    # prepare_threshold at None, which PgBouncer in transaction mode needs.)
    params = [*_native_values(task, task_fields), *_native_values(event, event_fields)]
    with server_cursor() as cursor:
        cursor.execute(sql, params)
        event.id = cursor.fetchone()[0]
    event.task_id = task.id


def insert_uniform_tasks(
    template: Task, ids: Sequence[uuid.UUID], payloads: Sequence[str], event: Any
) -> list[int]:
    """PostgreSQL: INSERT many task rows that differ only in id and payload, and one event per
    row made from ``event`` (its task_id ignored), in one statement. ``payloads`` are JSON texts
    (as validated). Returns the event ids, in the order of ``ids``.

    Only the ids and payloads travel per row (one JSON parameter, written by the C encoder); the
    other columns are bound once. COPY sent every column of every row through psycopg's
    Python row writer, which cost more than PostgreSQL's work.
    """
    constant = [f for f in _insert_columns(Task) if f.attname not in ("id", "payload")]
    event_fields = [f for f in _insert_columns(TaskEvent) if f.attname != "task_id"]
    columns = ", ".join(f.column for f in constant)
    constants = ", ".join(f"%s::{f.db_type(connection)}" for f in constant)
    event_values = ", ".join(f"%s::{f.db_type(connection)}" for f in event_fields)
    sql = (
        f"WITH v AS (SELECT (e->>0)::uuid AS id, (e->1)::jsonb AS payload, n "
        f"FROM json_array_elements(%s::json) WITH ORDINALITY AS r(e, n)), "
        f"t AS (INSERT INTO {_TABLE} (id, payload, {columns}) "
        f"SELECT v.id, v.payload, {constants} FROM v ORDER BY n RETURNING id) "
        f"INSERT INTO {TaskEvent._meta.db_table} "
        f"(task_id, {', '.join(f.column for f in event_fields)}) "
        f"SELECT t.id, {event_values} FROM t RETURNING id, task_id"
    )
    # The payloads are JSON already: joined, not encoded again.
    rows = "[" + ",".join(f'["{i}",{p}]' for i, p in zip(ids, payloads, strict=True)) + "]"
    params = [rows, *_native_values(template, constant), *_native_values(event, event_fields)]
    with server_cursor() as cursor:
        cursor.execute(sql, params)
        event_ids = dict((task_id, event_id) for event_id, task_id in cursor.fetchall())
    return [event_ids[i] for i in ids]


def _native_values(instance, fields) -> list:
    """Field values as psycopg adapts them itself; only JSON needs a wrapper."""
    from psycopg.types.json import Jsonb  # PostgreSQL only, as above

    values = []
    for f in fields:
        value = getattr(instance, f.attname)
        if isinstance(f, JSONField) and value is not None:
            value = Jsonb(value)
        values.append(value)
    return values


def copy_rows(model, rows: Sequence[Any]) -> None:
    """Bulk-insert model instances with PostgreSQL COPY (many times faster than a multi-row
    INSERT for thousands of rows). Must run inside a transaction. Rows without a primary key
    get theirs from the table's sequence first (so callers can still refer to them)."""
    from psycopg.types.json import Jsonb  # PostgreSQL only, as above

    pk = model._meta.pk
    if pk.auto_created and rows and getattr(rows[0], pk.attname) is None:
        _assign_ids(model, rows)
    fields = list(model._meta.concrete_fields)
    # psycopg adapts str, numbers, bools, UUIDs and aware datetimes itself; only JSON needs a
    # wrapper. (Field.get_db_prep_save per value costs more than the COPY.)
    json_at = {i for i, f in enumerate(fields) if isinstance(f, JSONField)}
    names = [f.attname for f in fields]
    sql = f"COPY {model._meta.db_table} ({', '.join(f.column for f in fields)}) FROM STDIN"
    with (
        connection.cursor() as wrapper,
        connection.wrap_database_errors,
        wrapper.cursor.copy(sql) as copy,
    ):
        for row in rows:
            values = [getattr(row, name) for name in names]
            for i in json_at:
                if values[i] is not None:
                    values[i] = Jsonb(values[i])
            copy.write_row(values)


def _assign_ids(model, rows: Sequence[Any]) -> None:
    table, column = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, column, len(rows)],
        )
        for row, (value,) in zip(rows, cursor.fetchall(), strict=True):
            setattr(row, model._meta.pk.attname, value)
