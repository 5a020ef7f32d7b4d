"""The engine end to end: real worker and dispatcher processes, real Redis, real database."""

import time

import pytest
from django.db import transaction

from taskhub import schedule
from taskhub.console import services
from taskhub.models import DeadLetter, Task, TaskLog
from tests.support import wait_for, wait_status

pytestmark = [pytest.mark.e2e]


def event_kinds(task_id):
    return list(Task.objects.get(id=task_id).events.order_by("id").values_list("kind", flat=True))


def attempt_times(task_id, kind="started"):
    return [e.at for e in Task.objects.get(id=task_id).events.filter(kind=kind).order_by("id")]


def test_a_scheduled_ping_completes_with_pong_and_a_full_event_trail(e2e):
    task = schedule("taskhub.ping", {})

    done = wait_status(task.id, "completed", timeout=15)

    assert done.result == "pong"
    assert done.attempt == 1
    assert done.started_at is not None and done.completed_at >= done.started_at
    assert done.progress == 100
    assert event_kinds(task.id) == ["created", "queued", "started", "completed"]


def test_a_task_that_fails_twice_is_retried_and_then_succeeds(e2e):
    task = schedule("test.fail_times", {"times": 2})

    done = wait_status(task.id, "completed", timeout=20)

    assert done.result == {"succeeded_on": 3}
    assert done.attempt == 3
    assert event_kinds(task.id) == [
        "created",
        "queued",
        "started",
        "retrying",
        "queued",
        "started",
        "retrying",
        "queued",
        "started",
        "completed",
    ]


@pytest.mark.parametrize(
    ("name", "expected_gaps"),
    [
        ("test.fail_schedule", [1.0, 2.0]),  # Schedule([1, 2])
        ("test.fail_exponential", [2.0, 3.0]),  # 2**1, then 2**2 capped at 3
        ("test.fail_linear", [1.5, 2.0]),  # 1.5 * 1, then 1.5 * 2 capped at 2
    ],
)
def test_each_retry_policy_spaces_attempts_by_its_delays_then_dead_letters(
    e2e, name, expected_gaps
):
    task = schedule(name, {})

    failed = wait_status(task.id, "failed", timeout=30)

    starts = attempt_times(task.id)
    assert len(starts) == 3 == failed.attempt
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    for gap, expected in zip(gaps, expected_gaps, strict=True):
        # Not before the policy's delay; late by at most the dispatcher's wake-up and a flush.
        assert expected - 0.05 <= gap <= expected + 1.0, (gaps, expected_gaps)
    letter = DeadLetter.objects.get(task_id=task.id)
    assert letter.attempts == 3 and "always fails" in letter.error
    assert event_kinds(task.id)[-2:] == ["failed", "dead_lettered"]


def test_a_permanent_error_fails_at_once_without_retrying(e2e):
    task = schedule("test.permanent", {})

    failed = wait_status(task.id, "failed", timeout=15)

    assert failed.attempt == 1
    assert "card declined" in failed.error
    assert DeadLetter.objects.filter(task_id=task.id).count() == 1


def test_an_attempt_over_its_timeout_counts_as_failed_and_is_retried(e2e):
    task = schedule("test.slow_timeout", {})

    failed = wait_status(task.id, "failed", timeout=30)

    assert failed.attempt == 2
    assert "timed out" in failed.error
    assert event_kinds(task.id).count("retrying") == 1


def test_a_dead_letter_retried_runs_again_keeping_its_history(e2e):
    task = schedule("test.fail_times", {"times": 1}, max_attempts=1)
    wait_status(task.id, "failed", timeout=15)
    letter = DeadLetter.objects.get(task_id=task.id)

    services.retry_dead_letter(letter.id, actor="test")
    done = wait_status(task.id, "completed", timeout=15)

    assert done.result == {"succeeded_on": 2}
    assert not DeadLetter.objects.filter(task_id=task.id).exists()
    kinds = event_kinds(task.id)
    assert kinds.index("dead_lettered") < kinds.index("requeued") < kinds.index("completed")


def test_a_task_scheduled_in_a_rolled_back_transaction_never_runs(e2e):
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        ghost = schedule("test.sleep", {"label": "ghost"})
        raise Rollback
    witness = schedule("taskhub.ping", {})

    wait_status(witness.id, "completed", timeout=15)
    time.sleep(0.5)
    assert not Task.objects.filter(id=ghost.id).exists()
    from taskhub.engine.broker import get_redis, key

    assert get_redis().llen(key("test", "ghost", "order")) == 0


def test_progress_and_handler_logs_are_recorded_in_order(e2e):
    task = schedule("test.progress", {})

    wait_for(
        lambda: 0 < Task.objects.get(id=task.id).progress < 100,
        timeout=15,
        message="progress mid-run",
    )
    done = wait_status(task.id, "completed", timeout=15)

    progress = [e.data["progress"] for e in done.events.filter(kind="progress").order_by("id")]
    assert progress == sorted(progress) and progress[-1] == 75
    assert list(TaskLog.objects.filter(task=task).values_list("message", flat=True)) == [
        "reached 25%",
        "reached 50%",
        "reached 75%",
    ]
    kinds = event_kinds(task.id)
    assert kinds.index("started") < kinds.index("progress") < kinds.index("completed")


def test_a_running_task_shows_running_in_the_database(e2e):
    task = schedule("test.sleep", {"seconds": 1.5, "label": "visible"})

    running = wait_status(task.id, "running", timeout=10)

    assert running.started_at is not None and running.worker_id
    wait_status(task.id, "completed", timeout=10)


def test_a_result_that_is_not_json_fails_permanently_with_a_clear_error(e2e):
    task = schedule("test.bad_result", {})

    failed = wait_status(task.id, "failed", timeout=15)

    assert failed.attempt == 1 and "not JSON-serialisable" in failed.error


def test_http_request_against_a_failing_server_dead_letters_then_retry_succeeds(e2e):
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    answers = {"code": 500}

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(answers["code"])
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if answers["code"] == 200 else b"boom")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Flaky)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        task = schedule(
            "http.request", {"method": "POST", "url": url, "json": {"a": 1}}, max_attempts=3
        )

        failed = wait_status(task.id, "failed", timeout=30)
        starts = attempt_times(task.id)
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
        assert failed.attempt == 3 and "500" in failed.error
        assert 2 <= gaps[0] < 3.5 and 4 <= gaps[1] < 5.5  # Exponential(base=2): 2 s, 4 s
        letter = DeadLetter.objects.get(task_id=task.id)

        answers["code"] = 200
        services.retry_dead_letter(letter.id)
        done = wait_status(task.id, "completed", timeout=15)
        assert done.result == {"status_code": 200, "body": '{"ok": true}'}
    finally:
        server.shutdown()


def test_http_request_4xx_fails_permanently_without_retrying(e2e):
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    class Missing(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Missing)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        task = schedule("http.request", {"url": f"http://127.0.0.1:{server.server_port}/x"})
        failed = wait_status(task.id, "failed", timeout=15)
        assert failed.attempt == 1 and "404" in failed.error
    finally:
        server.shutdown()
