"""LOG_FORMAT=json on real processes: a worker's log is JSON lines and a handler's line carries its
task's fields; the scheduler's log has no APScheduler line per poll."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid

import pytest

from taskhub import schedule
from taskhub.engine.broker import get_redis
from taskhub.scheduler.runner import _heartbeat_key, last_poll_age
from tests.support import ROOT, child_env, wait_for, wait_status

pytestmark = pytest.mark.e2e

#: Lines the worker's launcher writes itself, outside the worker processes and before or beside
#: Django's LOGGING: django_dramatiq's banner (" * Discovered tasks module …", " * Running
#: dramatiq …", a blank line) and Dramatiq's main process, which logs in its own format.
LAUNCHER_LINE = re.compile(
    r"^( \* |$|\[\d{4}-\d\d-\d\d [\d:,]+\] \[PID \d+\] \[MainThread\] \[dramatiq\.MainProcess\] )"
)


def json_lines(path) -> list[dict]:
    """Every line of a log but the launcher's, each parsed: a line that is not JSON fails."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if LAUNCHER_LINE.match(line):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line in {path.name}: {line!r}") from None
        assert isinstance(entry, dict) and {"timestamp", "level", "logger", "message"} <= set(
            entry
        ), line
        entries.append(entry)
    return entries


def test_a_worker_logs_json_lines_and_a_handlers_lines_carry_the_tasks_fields(make_stack):
    stack = make_stack(env={"LOG_FORMAT": "json"}).start()
    marker = uuid.uuid4().hex
    task = schedule(
        "test.log_line", {"marker": marker}, correlation_id=f"corr-{marker}", user_id="user-42"
    )
    wait_status(task.id, "completed", timeout=30)

    [worker] = stack.workers

    def handler_lines():
        found = [e for e in json_lines(worker.log_path) if marker in e["message"]]
        return found if len(found) == 2 else None

    info, failure = wait_for(handler_lines, timeout=10, message="the handler's two log lines")
    expected = {
        "task_id": str(task.id),
        "task_name": "test.log_line",
        "attempt": 1,
        "queue": "default",
        "correlation_id": f"corr-{marker}",
        "user_id": "user-42",
    }
    for line in (info, failure):
        assert {name: line.get(name) for name in expected} == expected, line
        assert line["logger"] == "tests.taskapp.handler"
    assert info["level"] == "INFO" and info["message"] == f"handler line {marker}"
    assert failure["level"] == "ERROR" and failure["exception_type"] == "ValueError"
    assert f"ValueError: caught {marker}" in failure["exception"]
    # The worker's own lines, outside any task, carry no task fields.
    entries = json_lines(worker.log_path)
    assert any(e["logger"].startswith("dramatiq") and "task_id" not in e for e in entries)
    for dispatcher in stack.dispatchers:
        assert json_lines(dispatcher.log_path)  # the dispatcher's log is JSON lines too


def spawn_scheduler(**env: str) -> subprocess.Popen:
    log_dir = ROOT / "var" / "test-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"scheduler-logs-{time.time_ns()}.log"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runscheduler"],
        cwd=ROOT,
        env=child_env(LOG_LEVEL="INFO", **env),
        stdout=open(path, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    proc.log_path = path
    return proc


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_logs_no_line_per_poll_at_info():
    get_redis().delete(_heartbeat_key())  # only this test's scheduler can set it again
    proc = spawn_scheduler(LOG_FORMAT="json")
    try:
        # It polls every second (SCHEDULER_POLL_INTERVAL): wait for a poll, then a few more.
        wait_for(
            lambda: (age := last_poll_age()) is not None and age < 2,
            timeout=60,
            message="the scheduler to poll",
        )
        time.sleep(4)
        assert last_poll_age() < 2  # still polling
    finally:
        proc.terminate()
        proc.wait(20)

    entries = json_lines(proc.log_path)  # every line JSON, the launcher writing none
    messages = [e["message"] for e in entries]
    assert any(m.startswith("scheduler started") for m in messages)  # INFO is logged
    assert not [m for m in messages if "executed successfully" in m or "Running job" in m]
