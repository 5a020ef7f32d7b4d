"""The in-process run writes what a worker writes. Each task runs twice: once through a worker's
own path — the dispatcher's claim, Dramatiq's WorkerThread with taskhub's middleware (the Redis
attempt claim, the actor, the outcome decision) and the outcome writer — and once through
taskhub.testing.drain; the rows, events, logs and dead letters must match, worker id and
timestamps aside."""

from __future__ import annotations

from queue import PriorityQueue
from unittest import mock

import dramatiq
import pytest
from django.db import transaction
from django.utils import timezone
from dramatiq.brokers.stub import StubBroker
from dramatiq.worker import WorkerThread

from taskhub import schedule
from taskhub.engine import worker
from taskhub.engine.broker import EXECUTE_ACTOR
from taskhub.engine.dispatcher import claim_ready_tasks, record_queued
from taskhub.engine.middleware import TaskTrackingMiddleware
from taskhub.engine.outcomes import OutcomeWriter
from taskhub.models import DeadLetter, Task, TaskEvent, TaskLog
from taskhub.testing import drain, worker_id

from .tasks import calls

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_ID = "worker-under-test"


def run_like_a_worker(queue: str) -> int:
    """Dispatch and run the queue's due tasks one at a time on a worker's code path."""
    runtime = worker.WorkerRuntime()
    runtime.worker_id = WORKER_ID
    runtime.writer = OutcomeWriter(WORKER_ID)
    tracking = TaskTrackingMiddleware()
    tracking._runtime = runtime
    broker = StubBroker(middleware=[tracking])
    dramatiq.Actor(
        lambda envelope: worker.run_current_attempt(),
        broker=broker,
        actor_name=EXECUTE_ACTOR,
        queue_name=queue,
        priority=0,
        options={},
    )
    ran = 0
    while True:
        now = timezone.now()
        with transaction.atomic():
            claimed = claim_ready_tasks(queue, 1, now)
            record_queued(claimed, now)
        if not claimed:
            return ran
        thread = WorkerThread(
            broker=broker,
            consumers={queue: mock.Mock()},
            work_queue=PriorityQueue(),
            worker_timeout=1000,
        )
        thread.work_queue.put((0, None))  # process_message marks one item done
        thread.work_queue.get()
        thread.process_message(dramatiq.broker.MessageProxy(claimed[0].message))
        assert runtime.writer.flush()
        ran += 1


def written(task: Task, worker: str) -> dict:
    """What was recorded for ``task``, with what differs by worker and by clock left out."""
    task.refresh_from_db()

    def same(value):
        if isinstance(value, dict):
            return {k: same(v) for k, v in value.items() if k not in ("retry_at", "scheduled_at")}
        return "<worker>" if value == worker else value

    events = TaskEvent.objects.filter(task_id=task.id).order_by("id")
    return {
        "row": {
            field: getattr(task, field)
            for field in (
                "status",
                "attempt",
                "max_attempts",
                "result",
                "error",
                "progress",
                "payload",
                "priority",
                "correlation_id",
                "user_id",
            )
        },
        "worker": task.worker_id == worker,
        "traceback": task.traceback.splitlines()[:1] + task.traceback.splitlines()[-1:],
        "finished": (task.started_at is not None, task.completed_at is not None),
        "events": [(e.kind, e.attempt, same(e.data)) for e in events],
        "logs": list(
            TaskLog.objects.filter(task_id=task.id)
            .order_by("id")
            .values_list("attempt", "level", "message")
        ),
        "dead_letters": list(
            DeadLetter.objects.filter(task_id=task.id).values_list(
                "task_name", "queue", "payload", "error", "attempts"
            )
        ),
        "handler_saw": [
            (attempt, ctx.max_attempts, ctx.correlation_id, ctx.user_id)
            for _, attempt, ctx in calls.pop(task.name, [])
        ],
    }


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("testing.greet", {"to": "ada"}),  # a result, a log line, progress
        ("testing.flaky", {"fail_times": 2}),  # two retries, then success
        ("testing.fails_fast", {"n": 1}),  # every retry fails: failed, dead letter
        ("testing.permanent", {"to": "x"}),  # a permanent error: failed at once
        ("testing.exits", {}),  # SystemExit is a failure like any other
    ],
)
def test_a_drained_task_is_recorded_as_a_worker_records_it(taskhub_manual, name, payload):
    options = {"correlation_id": "c-1", "user_id": 5, "priority": "high"}
    by_worker = schedule(name, payload, **options)
    assert run_like_a_worker("testing") >= 1
    expected = written(by_worker, WORKER_ID)

    in_process = schedule(name, payload, **options)
    assert len(drain("testing")) >= 1
    actual = written(in_process, worker_id())

    assert actual == expected
    assert expected["handler_saw"]  # the handler ran in both
    assert expected["worker"] and actual["worker"]
