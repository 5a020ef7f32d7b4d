"""Each health check on its own (taskhub.console.health), on the real database and Redis, made to
fail the way it fails in production, and ``GET /api/health``.

Real processes — a dispatcher killed under a running stack — are in
tests/e2e/test_health_e2e.py.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from taskhub.console import analytics, health
from taskhub.console.services import pause_queue
from taskhub.engine.broker import get_broker, get_redis
from taskhub.engine.dispatcher import (
    dispatch_cycle_key,
    dispatcher_alive_key,
    last_dispatch_cycle,
    mark_dispatcher_alive,
)
from taskhub.engine.enqueue import schedule
from taskhub.engine.leadership import DISPATCHER_LEASE, Lease
from taskhub.engine.outcomes import writer_health_key
from taskhub.models import LeaderLease, Task, TaskStatus, WorkerProcess

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_dispatcher_marks():
    client = get_redis()
    client.delete(dispatch_cycle_key(), dispatcher_alive_key())
    analytics.overview_snapshot.clear()
    health.recent_finished.clear()
    yield
    client.delete(dispatch_cycle_key(), dispatcher_alive_key())
    health.recent_finished.clear()  # cached per process: the next test's rows are its own


def live_worker(worker_id="w1", queues=(), threads=4) -> WorkerProcess:
    now = timezone.now()
    return WorkerProcess.objects.create(
        id=worker_id,
        hostname="h",
        pid=1,
        queues=list(queues),
        threads=threads,
        started_at=now,
        last_heartbeat_at=now,
    )


def lease(holder="worker-a", expires_in: float = 60.0) -> LeaderLease:
    now = timezone.now()
    return LeaderLease.objects.update_or_create(
        name=DISPATCHER_LEASE,
        defaults={
            "holder": holder,
            "acquired_at": now,
            "expires_at": now + dt.timedelta(seconds=expires_in),
        },
    )[0]


def checks_by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


class DeadRedis:
    def ping(self):
        raise redis.ConnectionError("Error 111 connecting to broker-redis:6379")


# -- database: a write round trip ------------------------------------------------------------------


def test_the_database_check_writes_reads_back_and_leaves_nothing():
    before = list(LeaderLease.objects.values_list("name", flat=True))

    check = health.check_database()

    assert check["status"] == "ok" and check["write_round_trip_ms"] >= 0
    assert list(LeaderLease.objects.values_list("name", flat=True)) == before


@pytest.mark.django_db(transaction=True)
def test_a_database_that_refuses_writes_is_down_though_it_answers_reads():
    """A read-only database (a replica promoted wrongly, a standby after a failover) still
    answers SELECT 1; the check writes, so it sees the refusal."""
    on, off = (
        ("SET default_transaction_read_only = on", "SET default_transaction_read_only = off")
        if connection.vendor == "postgresql"
        else ("PRAGMA query_only = ON", "PRAGMA query_only = OFF")
    )
    with connection.cursor() as cursor:
        cursor.execute(on)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # reads still work
        check = health.check_database()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(off)

    assert check["status"] == "down"
    assert "read" in check["error"].lower()  # "read-only transaction" / "readonly database"
    assert health.check_database()["status"] == "ok"  # and back once it takes writes


@pytest.mark.django_db(transaction=True)
def test_a_broken_database_connection_is_down():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("Django never closes an in-memory SQLite connection, so it cannot break")
    real = dict(connection.settings_dict)
    connection.close()
    # A server that is not there: every new connection fails.
    connection.settings_dict.update(
        {"HOST": "127.0.0.1", "PORT": "1"}
        if connection.vendor == "postgresql"
        else {"NAME": "/nonexistent/dir/db.sqlite3"}
    )
    try:
        check = health.check_database()
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(real)

    assert check["status"] == "down" and check["error"]


# -- broker: the one Dramatiq uses -----------------------------------------------------------------


def test_the_redis_broker_is_pinged_through_its_own_client(monkeypatch):
    broker = get_broker()
    if not hasattr(broker, "client"):
        pytest.skip("this session runs on RabbitMQ")
    assert health.check_broker() == {"name": "broker", "status": "ok", "kind": "redis"}

    monkeypatch.setattr(broker, "client", DeadRedis())  # the coordination Redis still answers

    check = health.check_broker()
    assert check["status"] == "down" and "broker-redis" in check["error"]
    assert health.check_redis()["status"] == "ok"


def _rabbitmq_broker(url: str):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url, middleware=[])


def test_an_unreachable_rabbitmq_broker_is_down(monkeypatch):
    monkeypatch.setattr(health, "get_broker", lambda: _rabbitmq_broker("amqp://127.0.0.1:1/"))

    check = health.check_broker()

    assert check["status"] == "down" and check["kind"] == "rabbitmq" and check["error"]


def _rabbitmq_listening() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _rabbitmq_listening(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_a_reachable_rabbitmq_broker_is_ok(monkeypatch):
    url = getattr(settings, "BROKER_URL", "")
    url = url if url.startswith("amqp") else "amqp://guest:guest@127.0.0.1:5672/"
    monkeypatch.setattr(health, "get_broker", lambda: _rabbitmq_broker(url))

    assert health.check_broker() == {"name": "broker", "status": "ok", "kind": "rabbitmq"}


def test_a_broker_with_nothing_to_reach_is_skipped(monkeypatch):
    from dramatiq.brokers.stub import StubBroker

    monkeypatch.setattr(health, "get_broker", lambda: StubBroker(middleware=[]))

    assert health.check_broker()["status"] == "skipped"


# -- workers per queue, outcome writers ------------------------------------------------------------


def test_a_queue_no_live_worker_serves_degrades_and_is_named():
    live_worker("mail-only", queues=["email"], threads=2)

    check = health.check_workers()

    assert check["status"] == "degraded" and "default" in check["unserved_queues"]
    assert "email" not in check["unserved_queues"]
    assert check["queues"]["email"] == {"processes": 1, "threads": 2}
    assert check["queues"]["default"] == {"processes": 0, "threads": 0}


def test_a_paused_queue_without_a_worker_is_not_a_problem():
    live_worker("mail-only", queues=["email"])
    for queue in health.check_workers()["unserved_queues"]:
        pause_queue(queue)

    assert health.check_workers()["status"] == "ok"


def test_a_worker_that_names_no_queues_serves_every_queue():
    live_worker("all", queues=[], threads=8)

    check = health.check_workers()

    assert check["status"] == "ok" and check["live"] == 1 and check["threads"] == 8
    assert all(counts == {"processes": 1, "threads": 8} for counts in check["queues"].values())


def test_a_stuck_outcome_writer_is_its_own_degraded_check():
    live_worker("w1")
    stuck = {"status": "stuck", "unflushed_for": 12.5, "buffered": 3, "last_error": "x"}
    get_redis().set(writer_health_key("w1"), json.dumps(stuck), ex=30)
    try:
        checks = checks_by_name(health.report())
    finally:
        get_redis().delete(writer_health_key("w1"))

    writers = checks["outcome_writers"]
    assert writers["status"] == "degraded" and writers["stuck"] == 1
    assert writers["longest_unflushed_seconds"] == 12.5
    assert checks["workers"]["stuck_writers"] == 1  # as before, for existing clients


def test_outcome_writers_are_ok_when_none_is_stuck_and_degraded_when_unreadable():
    assert health.check_outcome_writers(["w1"], [])["status"] == "ok"
    assert health.check_outcome_writers(["w1"], None)["status"] == "degraded"


# -- dispatcher: the lease holder and its last cycle -----------------------------------------------


def test_a_leader_that_cycles_is_ok():
    lease("worker-a")
    mark_dispatcher_alive()

    check = health.check_dispatcher()

    assert check["status"] == "ok" and check["leader"] == "worker-a"
    assert 0 <= check["last_cycle_seconds_ago"] < 2


def test_nobody_leading_and_no_recent_cycle_is_degraded():
    check = health.check_dispatcher()

    assert check["status"] == "degraded" and check["leader"] is None
    assert "nothing is dispatched" in check["message"]


def test_an_expired_leader_lease_is_degraded_even_with_a_recent_cycle():
    lease("worker-a", expires_in=-1)  # its holder stopped renewing: dead, stopped or cut off
    mark_dispatcher_alive()

    check = health.check_dispatcher()

    assert check["status"] == "degraded" and check["leader"] is None
    assert "handover" in check["message"]


def test_a_real_lease_that_is_not_renewed_runs_out_and_degrades_the_check():
    with override_settings(TASKHUB={**settings.TASKHUB, "LIFELINE_TIMEOUT": 0.6}):
        holder = Lease(DISPATCHER_LEASE, "worker-b")
        assert holder.acquire()
        mark_dispatcher_alive()
        assert health.check_dispatcher()["status"] == "ok"
        time.sleep(0.7)  # the lease (0.3 s) and the cycle mark (0.6 s) run out

        check = health.check_dispatcher()
    assert check["status"] == "degraded" and check["leader"] is None


def test_a_leader_that_has_not_cycled_within_the_lifeline_timeout_is_degraded():
    lease("worker-a")  # holds the lease, but its loop finished no cycle

    check = health.check_dispatcher()

    assert check["status"] == "degraded" and check["leader"] == "worker-a"
    assert "no dispatch cycle" in check["message"]


def test_the_cycle_mark_says_how_long_ago_without_comparing_clocks():
    mark_dispatcher_alive()
    get_redis().pexpire(dispatch_cycle_key(), 1000)  # as if marked LIFELINE_TIMEOUT − 1 s ago

    cycle = last_dispatch_cycle()

    assert cycle["host"] == socket.gethostname()
    expected = settings.TASKHUB["LIFELINE_TIMEOUT"] - 1
    assert cycle["seconds_ago"] == pytest.approx(expected, abs=0.3)


# -- overload: the recent failure rate -------------------------------------------------------------


def finished(status: str, count: int, *, ago: float = 0, queue_task="taskhub.ping") -> None:
    at = timezone.now() - dt.timedelta(seconds=ago)
    for _ in range(count):
        task = schedule(queue_task, {})
        Task.objects.filter(id=task.id).update(status=status, attempt=1, completed_at=at)


def test_a_queue_whose_recent_tasks_mostly_fail_degrades():
    finished(TaskStatus.FAILED, 9)
    finished(TaskStatus.COMPLETED, 3)

    check = health.check_failures()

    assert check["status"] == "degraded"
    [failing] = check["failing"]
    assert failing == {"queue": "default", "failed": 9, "finished": 12, "failure_rate": 0.75}


def test_too_few_finished_tasks_or_old_failures_do_not_degrade():
    finished(TaskStatus.FAILED, 5)  # fewer than HEALTH_FAILURE_MIN_FINISHED (10)
    finished(TaskStatus.FAILED, 20, ago=3600)  # outside the window

    assert health.check_failures()["status"] == "ok"


# -- the report and GET /api/health ----------------------------------------------------------------


def healthy() -> None:
    live_worker("w1")
    lease("w1")
    mark_dispatcher_alive()


def test_everything_healthy_is_ok_with_every_check_listed(viewer):
    healthy()

    response = viewer.get("/api/health")

    assert response.status_code == 200
    body = response.json()
    checks = checks_by_name(body)
    assert body["status"] == "ok", body
    assert set(checks) >= {
        "database",
        "redis",
        "broker",
        "workers",
        "outcome_writers",
        "dispatcher",
        "queues",
        "failures",
        "scheduler",
    }
    assert all(c["status"] in ("ok", "skipped") for c in checks.values())
    assert checks["dispatcher"]["leader"] == "w1"  # details for an authenticated caller


def test_a_dead_dispatcher_shows_in_the_report_and_the_task_queue_health(viewer):
    live_worker("w1")  # workers live, but nobody leads dispatching

    body = viewer.get("/api/health").json()
    details = viewer.get("/api/task-queue/health").json()["details"]

    assert body["status"] == "degraded"
    assert checks_by_name(body)["dispatcher"]["status"] == "degraded"
    assert checks_by_name({"checks": details})["dispatcher"]["status"] == "degraded"


def test_api_health_answers_anonymous_callers_with_statuses_only(client, monkeypatch):
    healthy()
    monkeypatch.setattr(health, "get_redis", lambda: DeadRedis())

    for headers in ({}, {"HTTP_AUTHORIZATION": "Token not-a-real-token"}):
        response = client.get("/api/health", **headers)

        assert response.status_code == 503  # Redis is down: no 401 for a wrong token either
        assert "broker-redis" not in response.content.decode()
        assert {"name": "redis", "status": "down"} in response.json()["checks"]


def test_api_health_gives_an_authenticated_caller_the_details(viewer, monkeypatch):
    monkeypatch.setattr(health, "get_redis", lambda: DeadRedis())

    response = viewer.get("/api/health")

    assert response.status_code == 503
    assert checks_by_name(response.json())["redis"]["error"].endswith("broker-redis:6379")
