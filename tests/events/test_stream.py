"""The live event stream, end to end: uvicorn web process, real workers, real Redis."""

from __future__ import annotations

import time

import httpx
import pytest

import taskhub
from tests.support import wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _ticket(web, token: str, user_id: str) -> str:
    resp = httpx.post(
        f"{web.url}/api/events/tickets",
        json={"user_id": user_id},
        headers={"Authorization": f"Token {token}"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["ticket"]


def _finished(task_id: str):
    return lambda e: e[2]["task"] == task_id and e[0] in ("task.completed", "task.dead_lettered")


def test_a_user_stream_gets_that_users_events_in_order_and_never_another_users(
    live, operator_token, sse
):
    # Given a browser streaming with a ticket for user A
    stream = sse(
        f"{live.url}/api/events/stream",
        params={"ticket": _ticket(live, operator_token, "A"), "user_id": "B"},
    )
    assert stream.status == 200
    # When tasks of A and of B run
    b_task = taskhub.schedule("test.noop", {}, user_id="B")
    a_task = taskhub.schedule("test.progress", {}, user_id="A")
    wait_status(b_task.id, "completed")
    # Then A's stream shows A's task from creation to completion, in order, and nothing of B's
    events = stream.take_until(_finished(str(a_task.id)))
    events += stream.drain(1.0)
    assert {e[2]["user_id"] for e in events} == {"A"}
    mine = [e for e in events if e[2]["task"] == str(a_task.id)]
    types = [e[0] for e in mine]
    assert types[0] == "task.created" and types[-1] == "task.completed"
    assert "task.started" in types and "task.queued" in types
    ids = [int(e[1]) for e in mine]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert [e[2]["version"] for e in mine] == ids
    assert mine[-1][2]["status"] == "completed" and mine[-1][2]["progress"] == 100


def test_a_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(
    live, operator_token, sse
):
    headers = {"Authorization": f"Token {operator_token}"}
    # Given an operator streaming one correlation id, who saw the first task finish
    first = sse(
        f"{live.url}/api/events/stream", headers=headers, params={"correlation_id": "reconnect"}
    )
    t1 = taskhub.schedule("test.noop", {}, correlation_id="reconnect")
    seen = first.take_until(_finished(str(t1.id)))
    first.close()
    # When more tasks run while the operator is disconnected
    later = [
        taskhub.schedule("test.fail_times", {"times": 1}, correlation_id="reconnect")
        for _ in range(3)
    ]
    for t in later:
        wait_status(t.id, "completed")
    # Then a reconnect with Last-Event-ID replays exactly what was missed, then goes live
    again = sse(
        f"{live.url}/api/events/stream",
        headers={**headers, "Last-Event-ID": seen[-1][1]},
        params={"correlation_id": "reconnect"},
    )
    t5 = taskhub.schedule("test.noop", {}, correlation_id="reconnect")
    replayed = again.take_until(_finished(str(t5.id)))
    replayed += again.drain(1.0)
    from taskhub.models import TaskEvent

    expected = list(
        TaskEvent.objects.filter(task__correlation_id="reconnect", id__gt=int(seen[-1][1]))
        .order_by("id")
        .values_list("id", flat=True)
    )
    assert [int(e[1]) for e in replayed] == expected
    kinds = [e[0] for e in replayed if e[2]["task"] == str(later[0].id)]
    assert kinds.count("task.retrying") == 1 and kinds[-1] == "task.completed"


def test_a_bad_expired_or_reused_ticket_is_refused_before_any_stream_byte(
    live, operator_token, sse
):
    url = f"{live.url}/api/events/stream"
    assert httpx.get(url, params={"ticket": "made-up"}).status_code == 401
    assert httpx.get(url).status_code == 401
    used = _ticket(live, operator_token, "A")
    ok = sse(url, params={"ticket": used})
    assert ok.status == 200
    reused = httpx.get(url, params={"ticket": used})
    assert reused.status_code == 401
    assert reused.headers["content-type"].startswith("application/json")
    expired = _ticket(live, operator_token, "A")
    time.sleep(2.5)  # the web process runs with EVENTS_TICKET_TTL = 2
    assert httpx.get(url, params={"ticket": expired}).status_code == 401


def test_only_operators_mint_tickets(live, transactional_db):
    from taskhub.console.roles import VIEWER, create_user

    _, _, viewer = create_user("events-viewer", VIEWER)
    url = f"{live.url}/api/events/tickets"
    assert httpx.post(url, json={"user_id": "A"}).status_code == 401
    resp = httpx.post(url, json={"user_id": "A"}, headers={"Authorization": f"Token {viewer}"})
    assert resp.status_code == 403


def test_too_many_streams_for_one_user_get_429(live, operator_token, sse):
    url = f"{live.url}/api/events/stream"
    streams = [sse(url, params={"ticket": _ticket(live, operator_token, "busy")}) for _ in range(3)]
    assert [s.status for s in streams] == [200, 200, 200]
    resp = httpx.get(url, params={"ticket": _ticket(live, operator_token, "busy")})
    assert resp.status_code == 429


def test_a_reconnect_after_a_pruned_gap_gets_a_reset_then_live_events(live, operator_token, sse):
    from taskhub.models import Task, TaskEvent

    # Given events the client saw that have since been pruned
    old = taskhub.schedule("test.noop", {}, correlation_id="pruned")
    wait_status(old.id, "completed")
    last_seen = TaskEvent.objects.filter(task=old).order_by("id").last().id
    taskhub.schedule("test.noop", {}, correlation_id="newer")
    Task.objects.filter(id=old.id).delete()
    # When it reconnects from there
    stream = sse(
        f"{live.url}/api/events/stream",
        headers={"Authorization": f"Token {operator_token}", "Last-Event-ID": str(last_seen)},
        params={"correlation_id": "fresh"},
    )
    # Then it is told to refetch, and then follows live events
    [reset] = stream.take_until(lambda e: True, timeout=15)
    assert reset[0] == "reset"
    fresh = taskhub.schedule("test.noop", {}, correlation_id="fresh")
    events = stream.take_until(_finished(str(fresh.id)))
    assert events[0][0] == "task.created"


@pytest.fixture
def brief_web(django_db_setup):
    from .conftest import WebServer

    server = WebServer({"EVENTS_KEEPALIVE": 0.5, "EVENTS_STREAM_LIFETIME": 2.5})
    yield server
    server.stop()


def test_a_quiet_stream_gets_keep_alives_then_ends_after_its_lifetime(brief_web, operator_token):
    # Given a stream on which nothing happens
    started = time.monotonic()
    with httpx.stream(
        "GET",
        f"{brief_web.url}/api/events/stream",
        headers={"Authorization": f"Token {operator_token}"},
        params={"correlation_id": "quiet"},
        timeout=10,
    ) as resp:
        assert resp.status_code == 200
        lines = list(resp.iter_lines())
    # Then it carries a keep-alive comment every EVENTS_KEEPALIVE seconds, and the server ends
    # it after EVENTS_STREAM_LIFETIME (the client reconnects and is authorised again)
    elapsed = time.monotonic() - started
    assert 2.4 <= elapsed < 8, elapsed
    assert lines[0] == "retry: 3000"
    assert 3 <= lines.count(": keep-alive") <= 5, lines


def test_a_workflow_stream_gets_the_steps_of_that_run_only(live, operator_token, sse):
    from taskhub import start_workflow
    from taskhub.workflows.builder import WorkflowBuilder

    def chain(name):
        wf = WorkflowBuilder(name)
        wf.chain(wf.step("a", "test.noop"), wf.step("b", "test.noop"))
        return wf.graph

    headers = {"Authorization": f"Token {operator_token}"}
    bad = httpx.get(
        f"{live.url}/api/events/stream", headers=headers, params={"workflow": "not-an-id"}
    )
    assert bad.status_code == 400
    run = start_workflow(chain("watched"))
    stream = sse(
        f"{live.url}/api/events/stream",
        headers=headers,
        params={"workflow": str(run.id), "last_event_id": "0"},
    )
    other = start_workflow(chain("other"))
    last = run.steps.get(step_key="b")

    events = stream.take_until(lambda e: e[2]["task"] == str(last.id) and e[0] == "task.completed")
    events += stream.drain(1.0)
    assert {e[2]["workflow"] for e in events} == {str(run.id)}
    assert str(other.id) not in {e[2]["workflow"] for e in events}
    types = [e[0] for e in events if e[2]["task"] == str(last.id)]
    assert types[0] == "task.blocked" and "task.released" in types
