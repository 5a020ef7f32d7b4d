"""A worker whose outcome writer cannot write shows as unhealthy, though its heartbeat goes on.

The writer is held up for real: the test locks the row of the task the worker is running, so
the worker's outcome write waits behind the lock while its heartbeat (other rows) still lands.
"""

import contextlib
import io
import json

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from taskhub import schedule
from taskhub.console.health import check_workers
from taskhub.models import Task
from tests.support import wait_for, wait_status

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="SQLite locks the whole database: the heartbeat would wait behind the lock too",
    ),
]


def worker_probe() -> tuple[int, dict]:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):  # the probe writes its JSON line to sys.stdout
            call_command("taskhub", "health", "--worker")
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_a_worker_whose_outcomes_cannot_be_written_fails_its_probe_until_they_are(e2e):
    wait_for(lambda: worker_probe()[0] == 0, timeout=20, message="a healthy worker")
    task = schedule("test.sleep", {"seconds": 0.5})
    wait_status(task.id, "running", timeout=20)

    with transaction.atomic():
        Task.objects.select_for_update().get(id=task.id)  # its outcome now waits for us

        code, report = wait_for(
            lambda: (answer := worker_probe())[0] == 1 and answer,
            timeout=20,
            message="the probe to fail",
        )
        [worker] = [c for c in report["checks"] if c["name"] == "worker"]
        assert worker["live_processes"] == 1  # the heartbeat still lands
        [stuck] = worker["stuck_writers"]
        assert stuck["status"] == "stuck" and stuck["unflushed_for"] > 4.0  # LIFELINE_TIMEOUT
        workers = check_workers()
        assert workers["status"] == "degraded" and workers["stuck_writers"] == 1

    assert wait_status(task.id, "completed", timeout=20).result["slept"] == 0.5
    wait_for(lambda: worker_probe()[0] == 0, timeout=20, message="the probe to pass again")
    assert check_workers()["status"] == "ok"
