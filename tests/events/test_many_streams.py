"""Many open streams in one uvicorn process: no connection held per stream, the API stays fast."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from .conftest import WebServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

STREAMS = 200
# The web process borrows connections from a pool; a small one proves streams give theirs back
# (200 streams that each kept one would exhaust it and the later ones would fail).
POOL = 5


@pytest.fixture
def roomy_web(stack, transactional_db):
    server = WebServer(
        {"EVENTS_MAX_STREAMS_PER_USER": STREAMS + 10}, env={"DATABASE_POOL_MAX_SIZE": str(POOL)}
    )
    yield server
    server.stop()


def _backends() -> int | None:
    """Open PostgreSQL connections to the test database (None on SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cur.fetchone()[0]


async def _first_event_of(resp: httpx.Response, task_id: str) -> float:
    """When this stream saw the task complete."""
    data = None
    async for line in resp.aiter_lines():
        if line.startswith("data:"):
            data = json.loads(line[5:])
        elif line == "" and data is not None:
            if data["task"] == task_id and data["type"] == "task.completed":
                return time.monotonic()
            data = None
    raise AssertionError("stream ended before the task completed")


def test_two_hundred_streams_hold_no_db_connections_and_other_calls_stay_fast(
    roomy_web, operator_token
):
    headers = {"Authorization": f"Token {operator_token}"}
    before = _backends()

    async def scenario():
        limits = httpx.Limits(max_connections=STREAMS + 20)
        async with httpx.AsyncClient(
            base_url=roomy_web.url, headers=headers, limits=limits, timeout=60
        ) as client:
            # Given 200 operator streams open on one web process
            streams = []
            for _ in range(STREAMS):
                req = client.build_request("GET", "/api/events/stream")
                resp = await client.send(req, stream=True)
                assert resp.status_code == 200
                streams.append(resp)
            # Then the web process holds (almost) no database connections for them
            during = await sync_to_async(_backends)()
            # And another API call answers quickly
            started = time.monotonic()
            listed = await client.get("/api/tasks")
            api_seconds = time.monotonic() - started
            assert listed.status_code == 200
            # When a task runs, every stream sees it complete
            created = await client.post("/api/tasks", json={"task": "test.noop"})
            task_id = created.json()["id"]
            seen = await asyncio.wait_for(
                asyncio.gather(*(_first_event_of(r, task_id) for r in streams)), 60
            )
            for resp in streams:
                await resp.aclose()
            return during, api_seconds, seen

    during, api_seconds, seen = asyncio.run(scenario())
    assert len(seen) == STREAMS
    assert api_seconds < 2.0
    if before is not None:
        # The pool may keep its idle connections open, never more than its size
        assert during - before <= POOL, (before, during)
