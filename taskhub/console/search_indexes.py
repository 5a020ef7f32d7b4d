"""The PostgreSQL indexes that make task search fast on a large table — created on request
(``manage.py taskhub search-indexes``), not by a migration.

Search (taskhub.console.search) works without them, by scanning. With them, each kind of term
is an index lookup: a GIN index on the payload (``jsonb_path_ops``, for ``payload @> …``) and
pg_trgm GIN indexes on the name and the error (for ``ILIKE '%timeout%'``; the error's is
partial, over the rows that have one). They are opt-in because they cost every task write:
status is indexed, so no status write is a HOT update, and each new row version goes into these
indexes too — ``make bench`` measured the dispatch throughput about a fifth lower with them
(docs/performance.md). A deployment that searches a large history creates them; one that only
runs tasks does not pay for them.

pg_trgm is an extension: ``CREATE EXTENSION`` takes a superuser, or (PostgreSQL 13+, where
pg_trgm is trusted) a user with CREATE on the database; otherwise a superuser runs
``CREATE EXTENSION pg_trgm;`` first (docs/install.md).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection

from ..models import Task

#: Name → what follows ``ON taskhub_task``. The error index's condition is the one
#: taskhub.console.search writes, so the planner may use it.
SEARCH_INDEXES: dict[str, str] = {
    "task_payload_gin": "USING gin (payload jsonb_path_ops)",
    "task_name_trgm": "USING gin (name gin_trgm_ops)",
    "task_error_trgm": "USING gin (error gin_trgm_ops) WHERE error > ''",
}


class SearchIndexesUnsupported(Exception):
    """The database is not PostgreSQL: there, search scans (and these indexes don't exist)."""


def _check_vendor() -> None:
    if connection.vendor != "postgresql":
        raise SearchIndexesUnsupported(
            f"search indexes are PostgreSQL's (this database is {connection.vendor}); "
            "search works without them, by scanning"
        )


def index_states() -> dict[str, bool | None]:
    """Each search index: True if built and valid, False if a build was interrupted (invalid),
    None if absent."""
    _check_vendor()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = ANY(%s) AND pg_table_is_visible(c.oid)",
            [list(SEARCH_INDEXES)],
        )
        found = dict(cursor.fetchall())
    return {name: found.get(name) for name in SEARCH_INDEXES}


def create_search_indexes(
    *, concurrently: bool = True, report: Callable[[str], None] = lambda line: None
) -> list[str]:
    """Create the extension and every missing (or invalid) index; returns the names built.

    ``concurrently`` (outside a transaction): no write waits for the build, which on a large
    table takes a while. Without it (inside a transaction, as in tests) the table is locked
    against writes while each index builds."""
    _check_vendor()
    table = Task._meta.db_table
    how = "CONCURRENTLY " if concurrently else ""
    built = []
    with connection.cursor() as cursor:
        # IF NOT EXISTS: when a superuser created it beforehand, no privilege is needed.
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, state in index_states().items():
            if state:
                continue
            if state is False:  # an interrupted concurrent build left an invalid index
                cursor.execute(f"DROP INDEX {how}IF EXISTS {name}")
            report(f"building {name} …")
            cursor.execute(f"CREATE INDEX {how}{name} ON {table} {SEARCH_INDEXES[name]}")
            built.append(name)
    return built


def drop_search_indexes(*, concurrently: bool = True) -> list[str]:
    """Drop the search indexes that exist (the extension stays: others may use it)."""
    _check_vendor()
    how = "CONCURRENTLY " if concurrently else ""
    dropped = [name for name, state in index_states().items() if state is not None]
    with connection.cursor() as cursor:
        for name in dropped:
            cursor.execute(f"DROP INDEX {how}IF EXISTS {name}")
    return dropped
