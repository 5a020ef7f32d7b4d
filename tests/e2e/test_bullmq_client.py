"""A BullMQ-shaped client against the running stack: ``taskhub up`` (uvicorn, worker processes
that dispatch, the scheduler) on the test database, and tests/e2e/bullmq_client.py — HTTP
only, the task-queue document's payloads verbatim — run as its own process (issue 21)."""

import json
import signal
import subprocess
import sys

import pytest
from django.utils import timezone

from taskhub.builtins.models import AnalyticsEvent
from taskhub.console.roles import create_user
from taskhub.engine.dispatcher import live_workers
from taskhub.models import Task, TaskEvent
from tests.support import ROOT, free_port, healthz_ok, start_taskhub_up, wait_for

pytestmark = [pytest.mark.e2e]
CLIENT = ROOT / "tests" / "e2e" / "bullmq_client.py"


def test_a_bullmq_shaped_client_runs_the_documents_jobs_through_the_running_stack(
    transactional_db,
):
    operator_token = create_user("bull-operator", "operator")[2]
    admin_token = create_user("bull-admin", "admin")[2]
    port = free_port()
    up = start_taskhub_up(port, "--processes", "1", "--threads", "4", name="up-bullmq")
    try:
        wait_for(lambda: healthz_ok(port), timeout=90, message="the web server")
        wait_for(lambda: live_workers(timezone.now()), timeout=90, message="a live worker")

        client = subprocess.run(
            [sys.executable, str(CLIENT), f"http://127.0.0.1:{port}", operator_token, admin_token],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert client.returncode == 0, client.stderr + up.log_path.read_text()[-3000:]
        seen = json.loads(client.stdout)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=90)

    # What the client saw, checked from the rows the workers wrote.
    email = Task.objects.get(id=seen["jobs"]["email"])
    assert email.status == "completed" and email.attempt == 1
    assert (email.started_at - email.created_at).total_seconds() >= 5  # delay: 5000 ms
    assert AnalyticsEvent.objects.filter(event="user_signup").count() == 1
    image = Task.objects.get(id=seen["jobs"]["image"])
    assert image.status == "failed" and not image.dead_letters.exists()  # removed by the admin
    removed = Task.objects.get(id=seen["removed"])
    assert removed.status == "cancelled"
    assert not TaskEvent.objects.filter(task_id=removed.id, kind="started").exists()
