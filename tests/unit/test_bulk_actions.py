"""taskhub.console.bulk: retry, cancel and delete every task a filter matches — only the rows
whose status allows the action, in batches of their own, each row once, with one audit record."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from taskhub.console import bulk
from taskhub.console.task_filters import filtered_tasks
from taskhub.engine import claims
from taskhub.engine.enqueue import schedule
from taskhub.models import (
    DeadLetter,
    EventKind,
    OperatorAction,
    Task,
    TaskEvent,
    TaskLog,
    TaskStatus,
)
from taskhub.workflows.start import start_workflow
from tests.workflow_states import end_step, step, store_orders

pytestmark = pytest.mark.django_db


def task_in(status: str, *, queue_task: str = "taskhub.ping", **fields) -> Task:
    """A task of ``queue_task`` left in ``status`` after its first attempt."""
    task = schedule(queue_task, {}, correlation_id=fields.pop("correlation_id", "bulk"))
    finished = status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
    Task.objects.filter(id=task.id).update(
        status=status,
        attempt=1,
        max_attempts=3,
        completed_at=timezone.now() if finished else None,
        **fields,
    )
    return Task.objects.get(id=task.id)


def one_of_each() -> dict[str, Task]:
    return {status: task_in(status) for status in TaskStatus.values}


def statuses() -> dict:
    return dict(Task.objects.values_list("id", "status"))


def run(action: str, filters: dict | None = None, **options) -> bulk.BulkResult:
    filters = {"correlation_id": "bulk"} if filters is None else filters
    return bulk.run(
        action, filtered_tasks(filters), user=None, source="cli", filters=filters, **options
    )


def test_retry_moves_only_failed_and_cancelled_tasks_with_a_fresh_budget():
    tasks = one_of_each()
    DeadLetter.objects.create(
        task_id=tasks["failed"].id,
        task_name="taskhub.ping",
        queue="default",
        error="boom",
        attempts=1,
        created_at=timezone.now(),
    )
    before = statuses()

    result = run("retry")

    assert result == bulk.BulkResult(matched=9, eligible=2, acted=2, skipped=7)
    after = statuses()
    for status, task in tasks.items():
        expected = "pending" if status in ("failed", "cancelled") else before[task.id]
        assert after[task.id] == expected, status
    retried = Task.objects.get(id=tasks["failed"].id)
    assert retried.max_attempts == 1 + 3  # as a single retry: attempt + the budget it had
    assert not DeadLetter.objects.exists()
    event = TaskEvent.objects.get(task_id=retried.id, kind=EventKind.REQUEUED)
    assert event.data == {"by": "cli", "attempts_added": 3, "bulk": True}


def test_retry_skips_workflow_steps_as_a_single_retry_refuses_them():
    store_orders()
    workflow = start_workflow("orders", {"order": "o-1"})
    end_step(workflow, "charge", TaskStatus.FAILED, error="declined")
    lone = task_in(TaskStatus.FAILED)

    result = run("retry", {"status": {"failed"}})

    assert (result.matched, result.acted) == (2, 1)
    assert step(workflow, "charge").status == TaskStatus.FAILED
    assert Task.objects.get(id=lone.id).status == TaskStatus.PENDING


def test_cancel_cancels_waiting_tasks_and_asks_running_ones_to_stop(
    django_capture_on_commit_callbacks,
):
    tasks = one_of_each()
    asked_before = task_in(TaskStatus.RUNNING, cancel_requested=True)

    with django_capture_on_commit_callbacks(execute=True):
        result = run("cancel")

    assert (result.matched, result.eligible, result.acted) == (10, 5, 5)
    after = statuses()
    for status in ("pending", "queued", "retrying", "blocked"):
        assert after[tasks[status].id] == "cancelled", status
    running = Task.objects.get(id=tasks["running"].id)
    assert (running.status, running.cancel_requested) == ("running", True)
    for status in ("completed", "failed", "cancelled", "skipped"):
        assert after[tasks[status].id] == status
    kinds = dict(TaskEvent.objects.filter(data__bulk=True).values_list("task_id", "kind"))
    assert kinds[tasks["pending"].id] == EventKind.CANCELLED
    assert kinds[running.id] == EventKind.CANCEL_REQUESTED
    assert asked_before.id not in kinds  # already asked: skipped, nothing recorded twice
    # the workers see it: the attempts are flagged in Redis
    assert claims.is_cancel_requested(str(running.id), 1)
    assert claims.is_cancel_requested(str(tasks["queued"].id), 1)


def test_delete_removes_only_finished_tasks_with_their_history():
    tasks = one_of_each()
    done = tasks["completed"]
    TaskLog.objects.create(
        task_id=done.id, attempt=1, level="INFO", message="x", at=done.created_at
    )

    result = run("delete")

    assert (result.matched, result.acted, result.skipped) == (9, 4, 5)
    left = set(Task.objects.values_list("status", flat=True))
    assert left == {"pending", "queued", "running", "retrying", "blocked"}
    assert not TaskEvent.objects.filter(task_id=done.id).exists()
    assert not TaskLog.objects.exists()


def test_delete_never_takes_a_live_task_with_the_finished_one_that_spawned_it():
    parent, other = task_in(TaskStatus.CANCELLED), task_in(TaskStatus.COMPLETED)
    child = task_in(TaskStatus.COMPLETED, parent_id=parent.id, correlation_id="spawned")
    grandchild = task_in(TaskStatus.RUNNING, parent_id=child.id, correlation_id="spawned")
    finished_tree = task_in(TaskStatus.COMPLETED)
    finished_child = task_in(
        TaskStatus.FAILED, parent_id=finished_tree.id, correlation_id="spawned"
    )

    result = run("delete")

    assert (result.matched, result.acted) == (3, 2)
    assert set(Task.objects.values_list("id", flat=True)) == {parent.id, child.id, grandchild.id}
    assert not Task.objects.filter(id__in=[other.id, finished_child.id]).exists()


def test_delete_leaves_a_finished_child_its_live_parent_still_waits_for():
    parent = task_in(TaskStatus.BLOCKED, correlation_id="parent")
    child = task_in(TaskStatus.COMPLETED, parent_id=parent.id)

    assert run("delete").acted == 0
    assert Task.objects.filter(id=child.id).exists()


def test_the_action_goes_in_batches_of_the_size_asked_each_its_own_transaction():
    for _ in range(7):
        task_in(TaskStatus.FAILED)
    seen = []

    with CaptureQueriesContext(connection) as queries:
        result = run("retry", batch=3, progress=lambda done, total: seen.append((done, total)))

    assert result.acted == 7
    assert seen == [(3, 7), (6, 7), (7, 7)]
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "taskhub_task"')]
    assert len(updates) == 3  # one retry statement per batch
    savepoints = [q["sql"] for q in queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) >= 3  # each batch opened a transaction of its own


def test_the_batch_size_comes_from_the_setting(settings):
    settings.TASKHUB = {**settings.TASKHUB, "BULK_ACTION_BATCH": 2}
    for _ in range(5):
        task_in(TaskStatus.CANCELLED)
    seen = []

    run("retry", progress=lambda done, total: seen.append(done))

    assert seen == [2, 4, 5]


def test_each_row_is_visited_once_even_when_the_action_makes_it_match_again(monkeypatch):
    # Retried tasks that fail again while the action goes on are not retried a second time.
    tasks = [task_in(TaskStatus.FAILED) for _ in range(4)]
    original = bulk._ACT["retry"]

    def retry_then_fail_again(rows, actor):
        acted = original(rows, actor)
        Task.objects.filter(id__in=[t.id for t in tasks]).update(status=TaskStatus.FAILED)
        return acted

    monkeypatch.setitem(bulk._ACT, "retry", retry_then_fail_again)
    result = run("retry", batch=1)

    assert result.acted == 4
    assert TaskEvent.objects.filter(kind=EventKind.REQUEUED).count() == 4


def test_tasks_created_after_the_count_are_left_alone():
    counted_at = timezone.now()
    old = task_in(TaskStatus.FAILED)
    Task.objects.filter(id=old.id).update(created_at=counted_at - dt.timedelta(seconds=1))
    later = task_in(TaskStatus.FAILED)

    result = run("retry", as_of=counted_at)

    assert (result.matched, result.acted) == (1, 1)
    assert Task.objects.get(id=later.id).status == TaskStatus.FAILED


def test_another_count_than_expected_changes_nothing_and_records_nothing():
    tasks = [task_in(TaskStatus.FAILED) for _ in range(3)]

    with pytest.raises(bulk.CountChanged) as refused:
        run("retry", expected_count=2)

    assert (refused.value.expected, refused.value.matched) == (2, 3)
    assert {t.status for t in Task.objects.filter(id__in=[t.id for t in tasks])} == {"failed"}
    assert not OperatorAction.objects.exists()
    assert run("retry", expected_count=3).acted == 3


def test_one_audit_record_holds_the_filter_the_counts_and_the_actor():
    for status in ("failed", "failed", "completed"):
        task_in(status)

    run("retry", {"correlation_id": "bulk", "queue": "default"}, batch=1)

    action = OperatorAction.objects.get()
    assert (action.source, action.action, action.target_type) == ("cli", "task.bulk_retry", "task")
    assert action.details == {
        "filter": {"correlation_id": "bulk", "queue": "default"},
        "matched": 3,
        "eligible": 2,
        "acted": 2,
        "skipped": 1,
    }


def test_an_action_stopped_by_an_error_keeps_its_batches_and_says_so_in_the_audit(monkeypatch):
    for _ in range(3):
        task_in(TaskStatus.FAILED)
    original = bulk._ACT["retry"]
    calls = []

    def fail_on_the_second_batch(rows, actor):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return original(rows, actor)

    monkeypatch.setitem(bulk._ACT, "retry", fail_on_the_second_batch)
    with pytest.raises(RuntimeError):
        run("retry", batch=1)

    assert Task.objects.filter(status=TaskStatus.PENDING).count() == 1
    details = OperatorAction.objects.get().details
    assert details["acted"] == 1 and "database went away" in details["interrupted"]


def test_count_says_how_many_match_and_how_many_the_action_may_touch():
    one_of_each()
    tasks = filtered_tasks({"correlation_id": "bulk"})

    assert [
        (bulk.count(a, tasks).matched, bulk.count(a, tasks).eligible)
        for a in ("retry", "cancel", "delete")
    ] == [(9, 2), (9, 5), (9, 4)]
    assert Task.objects.count() == 9 and not OperatorAction.objects.exists()
