"""Django's Tasks API on TaskhubBackend with real workers: the execution cases of django-tasks-db's
DatabaseBackendWorkerTestCase and its process tests, run by rundramatiq + the dispatcher."""

import datetime as dt
import time

import pytest
from django.db import transaction
from django.utils import timezone

from taskhub import schedule
from taskhub.contrib.django_tasks import TaskhubBackend
from taskhub.contrib.django_tasks.compat import TaskResultStatus, task_backends
from taskhub.contrib.django_tasks.results import RUN_TASK
from taskhub.engine.broker import get_redis, key
from taskhub.models import DeadLetter, TaskStatus
from taskhub.models import Task as TaskRow
from tests.contrib import djtasks
from tests.support import wait_for

pytestmark = [pytest.mark.e2e]


def wait_finished(result, timeout: float = 20):
    def finished():
        result.refresh()
        return result.is_finished

    wait_for(finished, timeout=timeout, interval=0.1, message=f"result {result.id} to finish")
    return result


def recorded(label):
    return [v.decode() for v in get_redis().lrange(key("djtasks", label), 0, -1)]


def test_an_enqueued_task_runs_on_a_worker_and_its_result_is_readable(e2e):
    result = djtasks.calculate_meaning_of_life.enqueue()

    wait_finished(result)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.attempts == 1 and len(result.worker_ids[0]) > 0 and result.errors == []
    assert task_backends["default"].get_result(result.id) == result


def test_an_async_task_function_runs_and_returns(e2e):
    result = djtasks.add_async.enqueue(2, b=3)

    wait_finished(result)

    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5


def test_a_failing_task_fails_with_its_exception_class_and_traceback_and_is_dead_lettered(e2e):
    result = djtasks.failing_task_value_error.enqueue()

    wait_finished(result)

    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    [error] = result.errors
    assert error.exception_class is ValueError
    assert error.exception_class_path == "builtins.ValueError"
    assert error.traceback.endswith("ValueError: This Task failed due to ValueError\n")
    assert result.attempts == 1
    assert DeadLetter.objects.filter(task_id=result.id).count() == 1


def test_an_exception_holding_an_exception_is_recorded(e2e):
    result = djtasks.complex_exception.enqueue()

    wait_finished(result)

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is ValueError
    assert "This task failed" in result.errors[0].traceback


def test_a_return_value_json_cannot_hold_fails_with_a_type_error(e2e):
    result = djtasks.complex_return_value.enqueue()

    wait_finished(result)

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TypeError


@pytest.mark.parametrize(
    ("fixture", "exception"),
    [
        ("failing_task_system_exit", SystemExit),
        ("failing_task_keyboard_interrupt", KeyboardInterrupt),
        ("exit_task", SystemExit),
    ],
)
def test_system_exit_or_keyboard_interrupt_inside_a_task_fails_it_and_the_worker_lives_on(
    e2e, fixture, exception
):
    result = getattr(djtasks, fixture).enqueue()

    wait_finished(result)
    after = djtasks.calculate_meaning_of_life.enqueue()

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is exception
    assert wait_finished(after).status == TaskResultStatus.SUCCESSFUL
    assert e2e.workers[0].poll() is None


def test_a_failing_task_is_retried_by_the_backends_policy_then_succeeds(e2e):
    result = djtasks.flaky.enqueue(failures=2)

    wait_finished(result, timeout=30)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"succeeded_on": 3}
    assert result.attempts == 3 and len(result.worker_ids) == 3
    assert [e.exception_class for e in result.errors] == [RuntimeError, RuntimeError]
    assert "planned failure 2 of 2" in result.errors[1].traceback
    assert TaskRow.objects.get(id=result.id).name == f"{RUN_TASK}:retrying"


def test_a_task_out_of_attempts_fails_with_every_error_and_a_dead_letter(e2e):
    result = djtasks.always_fails.enqueue()

    wait_finished(result, timeout=30)

    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert [e.exception_class for e in result.errors] == [ConnectionError] * 3
    letter = DeadLetter.objects.get(task_id=result.id)
    assert letter.attempts == 3 and "provider unreachable" in letter.error


def test_takes_context_passes_the_result_id_and_the_attempt(e2e):
    ids = djtasks.get_task_id.enqueue()
    context = djtasks.check_context.enqueue(attempt=1)

    assert wait_finished(ids).return_value == ids.id
    assert wait_finished(context).status == TaskResultStatus.SUCCESSFUL


def test_a_task_on_a_queue_no_worker_serves_stays_ready(e2e):
    idle = djtasks.noop_task.using(queue_name="analytics").enqueue()
    served = djtasks.noop_task.enqueue()

    wait_finished(served)
    time.sleep(1.0)
    idle.refresh()

    assert idle.status == TaskResultStatus.READY and idle.attempts == 0


def test_run_after_holds_a_task_back_until_its_time(e2e):
    run_after = timezone.now() + dt.timedelta(seconds=2)
    result = djtasks.noop_task.using(run_after=run_after).enqueue()

    time.sleep(1.0)
    result.refresh()
    assert result.status == TaskResultStatus.READY
    wait_finished(result, timeout=10)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.started_at >= run_after


def test_waiting_tasks_start_highest_priority_first_then_by_run_after(e2e):
    # The "single" queue runs one task at a time, so the others wait in the database, where the
    # dispatcher orders them: -priority, then run_after (django-tasks-db's ordering contract).
    blocker = djtasks.sleep_for.using(queue_name="single").enqueue(1.5)
    wait_for(lambda: TaskRow.objects.get(id=blocker.id).status == "running", timeout=10)
    now = timezone.now()
    single = djtasks.record.using(queue_name="single")
    results = [
        single.using(priority=-10).enqueue("order", "low"),
        single.using(priority=50, run_after=now + dt.timedelta(milliseconds=20)).enqueue(
            "order", "high-later"
        ),
        single.using(priority=50, run_after=now).enqueue("order", "high-sooner"),
        single.enqueue("order", "normal"),
        single.using(priority=100).enqueue("order", "top"),
    ]

    for result in results:
        wait_finished(result)

    assert recorded("order") == ["top", "high-sooner", "high-later", "normal", "low"]


def test_a_task_enqueued_in_a_transaction_runs_only_after_commit(e2e):
    with transaction.atomic():
        result = djtasks.record.enqueue("commit", "ran")
        time.sleep(1.0)
        assert recorded("commit") == []

    wait_finished(result)
    assert recorded("commit") == ["ran"]


def test_a_task_enqueued_in_a_rolled_back_transaction_never_runs(e2e):
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        djtasks.record.enqueue("rollback", "ghost")
        raise Rollback
    witness = djtasks.noop_task.enqueue()

    wait_finished(witness)
    time.sleep(0.5)
    assert recorded("rollback") == []


def test_started_and_finished_signals_are_sent_by_the_worker(e2e):
    result = djtasks.calculate_meaning_of_life.enqueue()

    wait_finished(result)

    signals = wait_for(
        lambda: (
            [v.decode() for v in get_redis().lrange(key("djtasks", "signals", result.id), 0, -1)]
            if get_redis().llen(key("djtasks", "signals", result.id)) >= 2
            else None
        ),
        timeout=5,
        message="both signals",
    )
    assert signals == [
        f"started:{TaskhubBackend.__name__}:RUNNING",
        f"finished:{TaskhubBackend.__name__}:SUCCESSFUL",
    ]


@pytest.mark.parametrize(
    "module_path",
    [
        "tests.contrib.djtasks.not_a_task",  # imports, but is not a Task
        "tests.contrib.djtasks.missing",  # no such attribute
        "tests.contrib.no_such_module.task",  # no such module
    ],
)
def test_a_task_path_that_is_not_an_importable_task_fails_and_the_worker_lives_on(e2e, module_path):
    row = schedule(RUN_TASK, {"module_path": module_path, "args": [], "kwargs": {}})

    wait_for(
        lambda: TaskRow.objects.get(id=row.id).status == TaskStatus.FAILED,
        timeout=15,
        message="the bad path to fail",
    )
    after = djtasks.calculate_meaning_of_life.enqueue()

    failed = TaskRow.objects.get(id=row.id)
    assert failed.attempt == 1 and failed.error.startswith("PermanentError")
    assert wait_finished(after).status == TaskResultStatus.SUCCESSFUL
