"""Django's Tasks API on TaskhubBackend, without workers: enqueue, results, validation, checks.

Ported from django-tasks-db's DatabaseBackendTestCase and the backport's test_tasks.py.
"""

import datetime as dt
import logging
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from taskhub.contrib.django_tasks import TaskhubBackend
from taskhub.contrib.django_tasks.compat import (
    InvalidTask,
    InvalidTaskError,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
)
from taskhub.contrib.django_tasks.results import RUN_TASK
from taskhub.models import EventKind, TaskEvent, TaskStatus
from taskhub.models import Task as TaskRow
from tests.contrib import djtasks

try:
    from django.tasks import task
    from django.tasks.exceptions import TaskResultMismatch
except ImportError:
    from django_tasks import task
    from django_tasks.exceptions import TaskResultMismatch


def test_both_spellings_of_the_invalid_task_exception_are_the_same_class():
    assert InvalidTask is InvalidTaskError


def test_the_default_backend_is_taskhub_with_its_alias_and_options():
    backend = task_backends["default"]

    assert isinstance(backend, TaskhubBackend)
    assert backend.alias == "default"
    assert backend.options == {"MAX_ATTEMPTS": 1}
    assert backend.supports_defer and backend.supports_priority
    assert backend.supports_get_result and backend.supports_async_task
    assert isinstance(task_backends["retrying"], TaskhubBackend)


def test_enqueue_stores_a_ready_taskhub_row_and_returns_a_ready_result(db):
    received = []

    def on_enqueued(sender, task_result, **kwargs):
        received.append((sender, task_result))

    task_enqueued.connect(on_enqueued)
    try:
        result = djtasks.noop_task.enqueue(1, two=(2, 3), three=b"bytes")
    finally:
        task_enqueued.disconnect(on_enqueued)

    assert result.status == TaskResultStatus.READY
    assert not result.is_finished
    assert result.started_at is None and result.finished_at is None
    assert result.last_attempted_at is None and result.enqueued_at is not None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert result.task == djtasks.noop_task
    assert result.args == [1] and result.kwargs == {"two": [2, 3], "three": "bytes"}
    assert result.attempts == 0 and result.errors == [] and result.backend == "default"
    assert received == [(TaskhubBackend, result)]
    row = TaskRow.objects.get(id=result.id)
    assert row.name == RUN_TASK and row.queue == "default" and row.status == TaskStatus.PENDING
    assert row.payload["module_path"] == "tests.contrib.djtasks.noop_task"
    assert row.max_attempts == 1


def test_async_enqueue_and_get_result_work_like_their_sync_twins(transactional_db):
    result = async_to_sync(djtasks.noop_task_async.aenqueue)()

    fetched = async_to_sync(task_backends["default"].aget_result)(result.id)

    assert fetched == result
    assert async_to_sync(djtasks.noop_task_async.aget_result)(result.id) == result


def test_get_result_rebuilds_an_equal_result_with_the_same_task(db):
    run_after = timezone.now() + dt.timedelta(hours=1)
    result = djtasks.calculate_meaning_of_life.using(
        priority=7, queue_name="capped", run_after=run_after
    ).enqueue()

    fetched = task_backends["default"].get_result(result.id)

    assert fetched == result
    assert fetched.task.priority == 7 and fetched.task.queue_name == "capped"
    assert fetched.task.run_after == run_after
    assert djtasks.calculate_meaning_of_life.get_result(result.id) == result


def test_refresh_picks_up_what_a_worker_recorded(db):
    result = djtasks.calculate_meaning_of_life.enqueue()
    now = timezone.now()
    TaskRow.objects.filter(id=result.id).update(
        status=TaskStatus.COMPLETED, result=42, attempt=1, started_at=now, completed_at=now
    )
    TaskEvent.objects.create(
        task_id=result.id, kind=EventKind.STARTED, attempt=1, at=now, data={"worker": "w1"}
    )

    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.attempts == 1 and result.worker_ids == ["w1"]
    assert result.started_at == now == result.last_attempted_at and result.finished_at == now


def test_a_missing_or_malformed_result_id_raises_result_does_not_exist(db):
    backend = task_backends["default"]
    for missing in (str(uuid.uuid4()), "123", ""):
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(missing)


def test_a_plain_taskhub_task_is_not_a_django_task_result(db):
    from taskhub import schedule

    row = schedule("taskhub.ping", {})

    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(str(row.id))


def test_getting_a_result_through_the_wrong_task_raises_a_mismatch(db):
    result = djtasks.noop_task.enqueue()

    with pytest.raises(TaskResultMismatch):
        djtasks.calculate_meaning_of_life.get_result(result.id)


def test_an_unknown_queue_is_refused_on_enqueue_and_nothing_is_stored(db):
    with pytest.raises(InvalidTask, match="is not a taskhub queue"):
        djtasks.noop_task.using(queue_name="nope").enqueue()
    with pytest.raises(InvalidTask, match="Queue 'capped' is not valid for backend"):
        djtasks.noop_task.using(backend="limited", queue_name="capped")
    with pytest.raises(InvalidTask):
        async_to_sync(djtasks.noop_task.using(queue_name="nope").aenqueue)()
    assert not TaskRow.objects.exists()


def test_priority_outside_minus_100_to_100_or_fractional_is_refused():
    for priority in (-101, 101, 1.5):
        with pytest.raises(InvalidTask, match="priority must be a whole number"):
            djtasks.noop_task.using(priority=priority)


def test_a_naive_run_after_is_refused():
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        djtasks.noop_task.using(run_after=dt.datetime.now())  # noqa: DTZ005


def test_a_function_not_at_module_level_is_refused():
    def inner():
        pass

    with pytest.raises(InvalidTask, match="module level"):
        task()(inner)


def test_takes_context_needs_a_first_argument_named_context():
    def no_context(x):
        pass

    no_context.__qualname__ = "no_context"
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(no_context)


def test_priority_and_run_after_land_on_the_taskhub_row(db):
    later = timezone.now() + dt.timedelta(minutes=5)

    result = djtasks.noop_task.using(priority=-100, run_after=later).enqueue()

    row = TaskRow.objects.get(id=result.id)
    assert row.priority == -100 and row.scheduled_at == later


def test_enqueue_writes_in_the_callers_transaction_and_a_rollback_leaves_nothing(
    transactional_db,
):
    # Unlike django-tasks-db (test_doesnt_wait_until_transaction_commit), taskhub dispatches only
    # after commit; the row is visible inside the transaction, and gone if it rolls back.
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        result = djtasks.noop_task.enqueue()
        assert task_backends["default"].get_result(result.id).status == TaskResultStatus.READY
        raise Rollback

    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(result.id)


def test_enqueue_logs_the_result_id_at_debug(db, caplog):
    with caplog.at_level(logging.DEBUG, logger="django_tasks"):
        result = djtasks.noop_task.enqueue()

    assert any(result.id in r.getMessage() and "enqueued" in r.getMessage() for r in caplog.records)


def test_check_is_clean_for_the_configured_backends_and_reports_unknown_queues():
    assert list(task_backends["default"].check()) == []
    backend = TaskhubBackend("odd", {"QUEUES": ["default", "nowhere"]})

    assert [e.id for e in backend.check()] == ["taskhub_django_tasks.E002"]


def test_check_reports_a_missing_contrib_app():
    from django.apps import apps

    with override_settings(
        INSTALLED_APPS=[
            a.name for a in apps.get_app_configs() if "contrib.django_tasks" not in a.name
        ]
    ):
        errors = list(TaskhubBackend("x", {}).check())

    assert [e.id for e in errors] == ["taskhub_django_tasks.E001"]


def test_invalid_options_are_refused_when_the_backend_is_built():
    with pytest.raises(Exception, match="OPTIONS"):
        TaskhubBackend("bad", {"OPTIONS": {"RETRY": {"kind": "sometimes"}}})
