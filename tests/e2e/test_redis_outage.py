"""Redis going away, or coming back empty, must never make a live worker look dead: an attempt
still running must not start a second time, and the worker's health probe must stay healthy.

Each drill uses a Redis of its own (never the shared one), stopped and restarted on its port."""

import contextlib
import datetime as dt
import io
import json
import socket
import subprocess
import time

import dramatiq
import pytest
from django.core.management import call_command
from django.utils import timezone

from taskhub import schedule
from taskhub.conf import taskhub_settings
from taskhub.engine.broker import build_broker, get_redis
from taskhub.engine.lifeline import Lifeline
from taskhub.models import Task, TaskEvent
from tests.support import override_taskhub, start_private_redis, wait_for, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class RestartableRedis:
    """A private redis-server without persistence: a restart brings it back empty."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: subprocess.Popen | None = None

    def start(self) -> None:
        self.server = start_private_redis(self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(10)
            self.server = None


@pytest.fixture
def restartable_redis():
    server = RestartableRedis()
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def on_redis(url: str):
    """This process's Redis client and broker on ``url`` (the lifeline here sends messages)."""
    previous = dramatiq.get_broker()
    with override_taskhub(REDIS_URL=url):
        dramatiq.set_broker(build_broker())
        try:
            yield
        finally:
            dramatiq.get_broker().close()
            dramatiq.set_broker(previous)


def probe_worker() -> int:
    try:
        call_command("taskhub", "health", "--worker", stdout=io.StringIO())
    except SystemExit as exc:
        return exc.code
    return 0


def starts(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_redis_outage_longer_than_the_lifeline_timeout_runs_nothing_twice(
    make_stack, restartable_redis, tmp_path
):
    timeout = taskhub_settings.LIFELINE_TIMEOUT
    log = tmp_path / "starts.log"
    with on_redis(restartable_redis.url):
        stack = make_stack(processes=1, threads=2, env={"REDIS_URL": restartable_redis.url})
        stack.start()
        task = schedule("test.sleep_logged", {"seconds": 4 * timeout, "path": str(log)})
        wait_for(lambda: len(starts(log)) == 1, timeout=20, message="the task to start")

        restartable_redis.stop()
        outage_started = time.monotonic()
        probes = []
        while time.monotonic() - outage_started < 2 * timeout:
            time.sleep(0.5)
            probes.append(probe_worker())
        restartable_redis.start()  # empty: no claims, no liveness keys, no messages
        # A lifeline cycle right as Redis returns, before the worker's next beat reaches it.
        Lifeline().run_once()

        wait_status(task.id, "completed", timeout=8 * timeout)

    assert starts(log) == [f"{task.id} 1"], "the handler started more than once"
    assert probes and set(probes) == {0}, f"the worker probe said down during the outage: {probes}"
    done = Task.objects.get(id=task.id)
    assert done.attempt == 1
    assert not TaskEvent.objects.filter(task_id=task.id, kind="recovered").exists()


def test_an_attempt_that_just_started_is_not_sent_again_when_redis_is_flushed(
    make_stack, restartable_redis, tmp_path
):
    """Right after a FLUSHALL an attempt that just started still reads ``queued`` (its running
    write is deferred) and its claim is gone until the worker's next beat: the lifeline must not
    take the missing claim for a lost message and send the attempt to another thread."""
    timeout = taskhub_settings.LIFELINE_TIMEOUT
    log = tmp_path / "starts.log"
    # The deferred running write, stretched so the attempt reads queued for the whole drill.
    late_running = json.dumps({"RUNNING_WRITE_AFTER_MS": 600_000})
    with on_redis(restartable_redis.url):
        stack = make_stack(
            processes=1,
            threads=2,
            env={"REDIS_URL": restartable_redis.url, "TASKHUB_SETTINGS_JSON": late_running},
        )
        stack.start()
        task = schedule("test.sleep_logged", {"seconds": 3 * timeout, "path": str(log)})
        wait_for(lambda: len(starts(log)) == 1, timeout=20, message="the task to start")
        assert Task.objects.get(id=task.id).status == "queued"
        # Its message waited longer than REDISPATCH_AFTER before a thread took it.
        waited = dt.timedelta(seconds=2 * taskhub_settings.REDISPATCH_AFTER)
        Task.objects.filter(id=task.id).update(queued_at=timezone.now() - waited)

        get_redis().flushall()
        Lifeline().run_once()

        wait_status(task.id, "completed", timeout=8 * timeout)

    assert starts(log) == [f"{task.id} 1"], "the handler started more than once"
    assert not TaskEvent.objects.filter(task_id=task.id, kind="recovered").exists()
