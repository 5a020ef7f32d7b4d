"""Set-based, guarded writes to task rows: many rows per statement, one vendor-neutral shape.

Every transition is guarded by (id, attempt, expected status), so a stale or duplicated outcome
changes nothing; each function returns the (id, attempt) pairs it actually changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection

from .models import Task

# PostgreSQL needs the type of each VALUES column spelled out when a value may be NULL.
_PG_TYPES = {
    "id": "uuid", "attempt": "integer", "status": "varchar", "result": "jsonb",
    "error": "text", "traceback": "text", "started_at": "timestamptz",
    "completed_at": "timestamptz", "duration": "double precision",
    "scheduled_at": "timestamptz", "progress": "integer", "worker_id": "varchar",
    "updated_at": "timestamptz",
}  # fmt: skip

_TABLE = Task._meta.db_table
_CHUNK = 400


def _placeholder(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"CAST(%s AS {_PG_TYPES[column]})"
    return "%s"


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
    row_sql = "(" + ", ".join(_placeholder(c) for c in columns) + ")"
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
