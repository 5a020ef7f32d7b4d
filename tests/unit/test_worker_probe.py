"""The worker's health probe during a Redis outage: the worker rides it out (its running tasks
go on, its database heartbeat too), so the probe must not have the supervisor restart it."""

import io
import json
import os
import socket

import pytest
from django.core.management import call_command
from django.utils import timezone

from taskhub.models import WorkerProcess
from tests.support import override_taskhub

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def probe(capsys):
    """Run ``taskhub health`` with flags: (exit code, its JSON line)."""

    def run(*flags) -> tuple[int, dict]:
        capsys.readouterr()
        try:
            call_command("taskhub", "health", *flags, stdout=io.StringIO())
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    return run


@pytest.fixture
def redis_away():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with override_taskhub(REDIS_URL=f"redis://127.0.0.1:{port}/0"):
        yield


def beating_worker_here() -> None:
    now = timezone.now()
    WorkerProcess.objects.create(
        id="probe-worker",
        hostname=socket.gethostname(),
        pid=os.getpid(),
        queues=[],
        threads=1,
        started_at=now,
        last_heartbeat_at=now,
    )


def test_the_worker_probe_stays_healthy_while_redis_is_away(redis_away, probe):
    beating_worker_here()

    code, answer = probe("--worker")

    assert code == 0
    assert answer["status"] == "degraded"
    checks = {c["name"]: c["status"] for c in answer["checks"]}
    assert checks == {"database": "ok", "redis": "down", "worker": "ok"}


def test_the_worker_probe_still_fails_without_a_live_worker(redis_away, probe):
    code, answer = probe("--worker")

    assert code == 1 and answer["status"] == "down"


def test_the_other_probes_still_need_redis(redis_away, probe):
    beating_worker_here()

    assert probe()[0] == 1
    assert probe("--dispatcher")[0] == 1
