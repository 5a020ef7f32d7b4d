"""Metrics over a time range, failures grouped by fingerprint, health and Prometheus."""

import datetime as dt
import subprocess
import sys

import pytest
import redis
from django.utils import timezone

from taskhub.console import analytics, health
from taskhub.console.analytics import fingerprint, normalise_error
from taskhub.engine.broker import get_redis
from taskhub.engine.dispatcher import dispatch_cycle_key, mark_dispatcher_alive
from taskhub.engine.enqueue import schedule
from taskhub.engine.leadership import DISPATCHER_LEASE
from taskhub.models import LeaderLease, Task, TaskStatus, WorkerProcess

pytestmark = pytest.mark.django_db


def finish(status, *, name="taskhub.ping", error="", user="", attempt=1, duration=0.5, ago=0):
    task = schedule(
        name, {} if name == "taskhub.ping" else {"url": "https://example.com"}, user_id=user or None
    )
    at = timezone.now() - dt.timedelta(seconds=ago)
    Task.objects.filter(id=task.id).update(
        status=status, error=error, attempt=attempt, duration=duration, completed_at=at
    )
    return task


def test_metrics_count_rates_and_average_time(viewer):
    finish(TaskStatus.COMPLETED, duration=0.2)
    finish(TaskStatus.COMPLETED, duration=0.4, attempt=2)
    finish(TaskStatus.FAILED, attempt=3, error="RuntimeError: x")
    schedule("taskhub.ping", {})
    data = viewer.get("/api/metrics").json()
    assert (data["totalTasks"], data["completedTasks"], data["failedTasks"]) == (4, 2, 1)
    assert data["averageExecutionTime"] == pytest.approx(300.0)  # ms
    assert data["successRate"] == pytest.approx(66.67)
    assert data["retryRate"] == pytest.approx(66.67)  # 2 of the 3 started needed retries
    assert data["tasksByType"]["other"] == 4  # taskhub.ping declares no type
    assert sum(data["tasksByType"].values()) == 4
    assert data["tasksByStatus"]["pending"] == 1
    past = viewer.get("/api/metrics?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z").json()
    assert past["totalTasks"] == 0 and past["successRate"] == 0.0


def test_millisecond_timestamps_are_accepted(viewer):
    now_ms = int(timezone.now().timestamp() * 1000)
    response = viewer.get(f"/api/metrics?from={now_ms - 3_600_000}&to={now_ms + 1000}")
    assert response.status_code == 200


def test_error_fingerprints_ignore_ids_and_numbers():
    a = "ConnectionError: host 10.0.0.1 refused connection for order 1234 (id 3f2a9c1e-1111-4a4a-9b9b-123456789abc)"  # noqa: E501
    b = "ConnectionError: host 10.0.0.7 refused connection for order 99 (id 5f2a9c1e-2222-4a4a-9b9b-123456789abc)"  # noqa: E501
    assert fingerprint("t", a) == fingerprint("t", b)
    assert fingerprint("t", a) != fingerprint("other", a)
    assert normalise_error("timed out after 30.0 s") == ("Timeout", "timed out after <n> s")
    assert normalise_error("KeyError: 'user_42'")[0] == "KeyError"


def test_failures_are_grouped_with_frequency_users_and_advice(viewer):
    for i in range(3):
        finish(
            TaskStatus.FAILED,
            name="http.request",
            user=f"u{i % 2}",
            error=f"HttpServerError: server answered 503: try later (req {i})",
            ago=10 - i,
        )
    finish(TaskStatus.FAILED, error="KeyError: 'amount'")
    finish(TaskStatus.FAILED, error="timed out after 30.0 s")
    data = viewer.get("/api/failures").json()
    assert data["totalFailures"] == 5
    top = data["failures"][0]
    assert (top["taskName"], top["errorType"], top["frequency"], top["affectedUsersCount"]) == (
        "http.request",
        "HttpServerError",
        3,
        2,
    )
    assert top["taskType"] == "other" and sorted(top["affectedUsers"]) == ["u0", "u1"]
    assert "unavailable" in top["suggestedAction"]
    assert "(req 2)" in top["lastError"]  # the latest occurrence
    advice = {f["errorType"]: f["suggestedAction"] for f in data["failures"]}
    assert "bug in the handler" in advice["KeyError"]
    assert "timeout" in advice["Timeout"]


def test_health_is_ok_with_a_live_worker_and_degraded_without(viewer):
    data = viewer.get("/api/task-queue/health").json()
    assert data["status"] == "degraded"
    assert {d["name"] for d in data["details"]} >= {
        "database",
        "redis",
        "workers",
        "queues",
        "scheduler",
    }
    now = timezone.now()
    WorkerProcess.objects.create(
        id="w1", hostname="h", pid=1, threads=4, started_at=now, last_heartbeat_at=now
    )
    # ... and a dispatcher that leads and cycles (tests/api/test_health_checks.py has the rest)
    LeaderLease.objects.create(
        name=DISPATCHER_LEASE,
        holder="w1",
        acquired_at=now,
        expires_at=now + dt.timedelta(seconds=60),
    )
    mark_dispatcher_alive()
    analytics.overview_snapshot.clear()
    try:
        data = viewer.get("/api/task-queue/health").json()
    finally:
        get_redis().delete(dispatch_cycle_key())
    assert data["status"] == "ok", data
    assert data["summary"]["liveWorkers"] == 1
    assert set(data["summary"]) >= {"activeJobs", "failedJobs", "waitingJobs"}


def test_an_overloaded_queue_degrades_health(viewer, settings):
    now = timezone.now()
    WorkerProcess.objects.create(
        id="w1", hostname="h", pid=1, threads=4, started_at=now, last_heartbeat_at=now
    )
    settings.TASKHUB = {**settings.TASKHUB, "HEALTH_MAX_WAITING": 1}
    schedule("taskhub.ping", {})
    schedule("taskhub.ping", {})
    analytics.overview_snapshot.clear()
    data = viewer.get("/api/task-queue/health").json()
    queues = next(d for d in data["details"] if d["name"] == "queues")
    assert data["status"] == "degraded" and queues["overloaded"][0]["queue"] == "default"


def test_a_broker_outage_is_down_with_503(viewer, client, monkeypatch):
    class Dead:
        def ping(self):
            raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(health, "get_redis", lambda: Dead())
    response = viewer.get("/api/task-queue/health")
    assert response.status_code == 503 and response.json()["status"] == "down"
    assert client.get("/healthz").status_code == 503


def test_a_registered_scheduler_check_is_reported(viewer, monkeypatch):
    monkeypatch.setitem(
        health.CHECKS,
        "scheduler",
        lambda: {"name": "scheduler", "status": "degraded", "message": "stale"},
    )
    details = viewer.get("/api/task-queue/health").json()["details"]
    assert next(d for d in details if d["name"] == "scheduler")["message"] == "stale"


def test_prometheus_exposes_queue_and_task_metrics(viewer):
    from taskhub.console.prometheus import snapshot

    finish(TaskStatus.COMPLETED, duration=0.2)
    finish(TaskStatus.FAILED, attempt=3, error="x")
    schedule("taskhub.ping", {})
    snapshot.clear()
    text = viewer.get("/metrics").content.decode()
    assert 'taskhub_tasks{queue="default",state="waiting"} 1.0' in text
    assert 'taskhub_tasks_finished_last_hour{queue="default",status="failed"} 1.0' in text
    assert 'taskhub_task_duration_seconds_bucket{le="0.25",queue="default"} 1.0' in text
    assert 'taskhub_task_retries_last_hour{queue="default"} 2.0' in text
    assert "taskhub_queue_oldest_waiting_seconds" in text and "taskhub_workers_live 0.0" in text


def test_the_openapi_schema_validates_without_warnings():
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_schema_documents_every_endpoint(viewer):
    schema = viewer.get("/api/schema/?format=json").json()
    for endpoint in (
        "/api/tasks",
        "/api/tasks/bulk",
        "/api/tasks/{task_id}/retry",
        "/api/task-queue/email",
        "/api/task-queue/{queue_name}/failed",
        "/api/task-queue/health",
        "/api/health",
        "/api/metrics",
        "/api/failures",
    ):
        assert endpoint in schema["paths"], endpoint
    email = schema["paths"]["/api/task-queue/email"]["post"]["requestBody"]
    assert "template" in email["content"]["application/json"]["schema"]["required"]
