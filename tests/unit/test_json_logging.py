"""LOG_FORMAT=json (taskhub.logging): one JSON object per line, the running task's fields on every
line written while its handler runs — from any logger — and none outside; APScheduler's per-run
INFO lines quieted unless the project configured those loggers."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time
import uuid

import pytest
from django.utils import timezone

from taskhub.engine.context import TaskContext
from taskhub.engine.outcomes import StartedAttempt
from taskhub.engine.worker import Attempt, run_attempt
from taskhub.logging import JsonFormatter, TaskFieldsFilter, current_task_fields, task_fields
from taskhub.scheduler.runner import APSCHEDULER_CHATTY_LOGGERS, quiet_apscheduler

FIELDS = {
    "task_id": "6f0c2d0e-0000-4000-8000-000000000001",
    "task_name": "emails.send",
    "attempt": 2,
    "queue": "email",
    "correlation_id": "signup-42",
    "user_id": "42",
}


@pytest.fixture
def captured():
    """A stream with the JSON formatter on a logger of the test's own (and on the handler's)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger("tests.json"), logging.getLogger("tests.taskapp.handler")]
    for each in loggers:
        each.addHandler(handler)
        each.setLevel(logging.DEBUG)
        each.propagate = False
    yield stream
    for each in loggers:
        each.removeHandler(handler)
        each.setLevel(logging.NOTSET)
        each.propagate = True


def lines(stream: io.StringIO) -> list[dict]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # each line is one JSON object


def test_a_line_has_timestamp_level_logger_and_message(captured):
    logging.getLogger("tests.json").warning("disk %s%% full\nsecond line", 91)

    [line] = lines(captured)

    assert line["level"] == "WARNING" and line["logger"] == "tests.json"
    assert line["message"] == "disk 91% full\nsecond line"  # a newline stays inside the line
    assert line["timestamp"].endswith("Z")
    moment = dt.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - moment).total_seconds()) < 5
    assert "task_id" not in line and "attempt" not in line  # outside a task: no task fields


def test_an_exception_is_a_field_of_the_same_line(captured):
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("tests.json").exception("lookup failed")

    [line] = lines(captured)

    assert line["message"] == "lookup failed" and line["exception_type"] == "KeyError"
    assert line["exception"].startswith("Traceback") and "KeyError: 'missing'" in line["exception"]


def test_extra_values_are_fields_and_odd_ones_are_written_as_text(captured):
    logging.getLogger("tests.json").info("x", extra={"order": 7, "when": object(), "_hidden": 1})

    [line] = lines(captured)

    assert line["order"] == 7 and line["when"].startswith("<object object")
    assert "_hidden" not in line


def test_lines_inside_a_task_carry_its_fields_and_lines_after_it_do_not(captured):
    log = logging.getLogger("tests.json")
    with task_fields(**FIELDS):
        log.info("inside")
        assert current_task_fields() == FIELDS
    log.info("after")

    inside, after = lines(captured)

    assert {name: inside[name] for name in FIELDS} == FIELDS
    assert not any(name in after for name in FIELDS)
    assert current_task_fields() == {}


def test_a_task_without_correlation_or_user_id_writes_null(captured):
    with task_fields(**{**FIELDS, "correlation_id": "", "user_id": ""}):
        logging.getLogger("tests.json").info("inside")

    [line] = lines(captured)

    assert line["correlation_id"] is None and line["user_id"] is None
    assert line["task_id"] == FIELDS["task_id"]


def test_the_filter_makes_the_fields_usable_in_a_plain_format():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(task_id)s %(attempt)s %(queue)s %(message)s"))
    handler.addFilter(TaskFieldsFilter())
    log = logging.getLogger("tests.json.plain")
    log.addHandler(handler)
    log.propagate = False
    try:
        with task_fields(**FIELDS):
            log.warning("hello")
    finally:
        log.removeHandler(handler)
        log.propagate = True

    assert stream.getvalue() == f"{FIELDS['task_id']} 2 email hello\n"


def test_a_handler_logging_through_any_logger_writes_the_attempts_fields(captured):
    """The worker's own path (taskhub.engine.worker.run_attempt), with tests/taskapp's
    ``test.log_line``, whose handler logs through a module logger and knows nothing of fields."""
    task_id = str(uuid.uuid4())
    ctx = TaskContext(
        task_id=task_id,
        name="test.log_line",
        queue="default",
        attempt=3,
        max_attempts=5,
        correlation_id="order-9",
        user_id="u-7",
        _writer=None,
    )
    envelope = {"id": task_id, "name": "test.log_line", "payload": {"marker": "m-1"}}
    start = StartedAttempt(task_id, 3, timezone.now(), time.monotonic())

    run_attempt(Attempt(envelope=envelope, ctx=ctx, start=start))
    logging.getLogger("tests.taskapp.handler").info("after the handler")

    info, failure, after = lines(captured)
    expected = {
        "task_id": task_id,
        "task_name": "test.log_line",
        "attempt": 3,
        "queue": "default",
        "correlation_id": "order-9",
        "user_id": "u-7",
    }
    assert info["message"] == "handler line m-1"
    assert {name: info[name] for name in expected} == expected
    assert failure["message"] == "handler exception m-1"
    assert {name: failure[name] for name in expected} == expected
    assert "ValueError: caught m-1" in failure["exception"]
    assert "task_id" not in after


@pytest.fixture
def apscheduler_levels():
    names = {"apscheduler", "apscheduler.executors", *APSCHEDULER_CHATTY_LOGGERS}
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_apscheduler_per_run_lines_are_quieted_to_warning(apscheduler_levels):
    quiet_apscheduler()

    for name in APSCHEDULER_CHATTY_LOGGERS:
        log = logging.getLogger(name)
        assert not log.isEnabledFor(logging.INFO) and log.isEnabledFor(logging.WARNING)


def test_a_level_the_project_set_on_apscheduler_is_kept(apscheduler_levels):
    logging.getLogger("apscheduler").setLevel(logging.DEBUG)  # as a host's LOGGING would

    quiet_apscheduler()

    assert logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.INFO)
    assert logging.getLogger("apscheduler.executors.default").level == logging.NOTSET
