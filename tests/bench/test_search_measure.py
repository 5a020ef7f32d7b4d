"""The bench's search measure, run whole on a few hundred rows: it fills the table, asks uvicorn
every search (and the admin, and an export), reports a row for each, and leaves no row behind."""

import pytest
from django.db import connection

from bench import search
from bench.core import Context
from taskhub.console.search import filter_tasks
from taskhub.models import Task
from tests.support import database_url_for_children

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the measure needs PostgreSQL"),
]


def test_the_search_measure_runs_on_a_tiny_table(transactional_db, monkeypatch):
    monkeypatch.setattr(search, "ROWS", 600)
    monkeypatch.setattr(search, "SAMPLES", 5)
    # uvicorn (a child process) serves the test database
    monkeypatch.setenv("DATABASE_URL", database_url_for_children())
    exported = {}
    timed_export = search._timed_export

    def watched_export(client, q):  # the rows still exist: count what it should find
        exported["expected"] = filter_tasks(Task.objects.all(), q).count()
        exported.update(timed_export(client, q))
        return exported

    monkeypatch.setattr(search, "_timed_export", watched_export)
    ctx = Context()

    rows = search.run(ctx)

    labels = [row.metric for row in rows]
    assert labels[: len(search.SEARCHES)] == [f"{label}: {q}" for label, q in search.SEARCHES]
    assert f"admin task list searched: {search.ADMIN_SEARCH}" in labels
    measured = [row for row in rows if row.target]
    assert len(measured) == len(search.SEARCHES) + 1
    assert all(isinstance(row.value, float) and row.value > 0 for row in measured)
    assert exported["expected"] > 0 and exported["rows"] == exported["expected"]
    assert set(ctx.details["search"]) >= {label for label, _ in search.SEARCHES}
    assert not Task.objects.filter(worker_id=search.MARK).exists()
