"""``GET /api/health`` against real processes: a worker, a dispatcher process and a scheduler.
Healthy, every check is ok; once the dispatcher is killed (SIGKILL: no clean hand-over of its
lease), the dispatcher check says so within LIFELINE_TIMEOUT — not after the 600 s oldest-waiting
limit, as before it looked at the leader."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from taskhub import schedule
from taskhub.console import analytics
from taskhub.console.roles import create_user
from tests.support import ROOT, _signal_group, child_env, wait_for, wait_status

pytestmark = pytest.mark.e2e


def spawn_scheduler() -> subprocess.Popen:
    log_dir = ROOT / "var" / "test-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runscheduler"],
        cwd=ROOT,
        env=child_env(),
        stdout=open(log_dir / f"scheduler-health-{time.time_ns()}.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture
def scheduler(transactional_db):
    proc = spawn_scheduler()
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def health(api: APIClient) -> tuple[int, dict[str, dict]]:
    analytics.overview_snapshot.clear()  # the report's queue figures, cached 2 s per process
    response = api.get("/api/health")
    return response.status_code, {c["name"]: c for c in response.json()["checks"]}


def test_healthy_then_a_killed_dispatcher_is_reported_within_the_lifeline_timeout(
    make_stack, scheduler
):
    # A dispatcher process beside a worker that leaves dispatching to it, whatever
    # TASKHUB_TEST_DISPATCHER says: the drill kills that process.
    stack = make_stack(embedded=False).start()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {create_user('ops', 'viewer')[2]}")
    task = schedule("test.noop", {})
    wait_status(task.id, "completed", timeout=30)

    def all_ok():
        code, checks = health(api)
        return code == 200 and all(c["status"] == "ok" for c in checks.values()) and checks

    checks = wait_for(all_ok, timeout=60, interval=0.5, message="every check ok")
    assert {"database", "redis", "broker", "workers", "outcome_writers", "dispatcher"} <= set(
        checks
    )
    assert {"queues", "failures", "scheduler"} <= set(checks)
    assert checks["dispatcher"]["leader"].startswith("dispatcher:")  # the process leads

    [dispatcher] = stack.dispatchers
    _signal_group(dispatcher, signal.SIGKILL)
    killed_at = time.monotonic()
    dispatcher.wait()

    def dispatcher_reported():
        code, checks = health(api)
        return checks["dispatcher"]["status"] != "ok" and (code, checks)

    code, checks = wait_for(
        dispatcher_reported, timeout=30, interval=0.2, message="the dispatcher check to fail"
    )
    took = time.monotonic() - killed_at
    assert took <= settings.TASKHUB["LIFELINE_TIMEOUT"], f"reported after {took:.1f}s"
    assert checks["dispatcher"]["status"] == "degraded" and code == 200  # work waits, not lost
    assert checks["workers"]["status"] == "ok"  # the worker is alive: only dispatching stopped

    # A dispatcher again: the check is ok again once it leads and cycles.
    stack.start_dispatcher()
    wait_for(
        lambda: health(api)[1]["dispatcher"]["status"] == "ok",
        timeout=60,
        interval=0.5,
        message="the new dispatcher to lead",
    )
