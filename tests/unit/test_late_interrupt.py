"""A time limit fires asynchronously (Dramatiq raises TimeLimitExceeded in the worker thread), so
it can land after the handler returned, while the outcome is being decided or recorded. The
attempt's outcome must still be recorded, once.

Driven through Dramatiq's own WorkerThread.process_message (a stub broker carrying taskhub's
middleware), so the exception takes the path a real worker gives it."""

from queue import PriorityQueue
from unittest import mock

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import TimeLimitExceeded
from dramatiq.worker import WorkerThread

from taskhub import schedule
from taskhub.engine import worker
from taskhub.engine.broker import EXECUTE_ACTOR
from taskhub.engine.middleware import TaskTrackingMiddleware
from taskhub.engine.outcomes import OutcomeWriter
from taskhub.models import Task, TaskEvent

pytestmark = pytest.mark.django_db(transaction=True)


def interrupt_once(func, *, after: bool):
    """``func``, raising TimeLimitExceeded the first time it is called — before it ran, or just
    after it did (where an asynchronous exception can land too)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1 and not after:
            raise TimeLimitExceeded()
        value = func(*args, **kwargs)
        if len(calls) == 1:
            raise TimeLimitExceeded()
        return value

    return wrapped


def run_one_message(task: Task, runtime: worker.WorkerRuntime, body=None) -> None:
    tracking = TaskTrackingMiddleware()
    tracking._runtime = runtime
    broker = StubBroker(middleware=[tracking])
    dramatiq.Actor(
        body or (lambda envelope: worker.run_current_attempt()),
        broker=broker,
        actor_name=EXECUTE_ACTOR,
        queue_name=task.queue,
        priority=0,
        options={},
    )
    envelope = {
        "id": str(task.id),
        "name": task.name,
        "queue": task.queue,
        "attempt": 1,
        "max_attempts": task.max_attempts,
        "payload": task.payload,
        "correlation_id": "",
        "user_id": "",
        "timeout": task.timeout,
    }
    message = dramatiq.Message(
        queue_name=task.queue, actor_name=EXECUTE_ACTOR, args=(envelope,), kwargs={}, options={}
    )
    thread = WorkerThread(
        broker=broker,
        consumers={task.queue: mock.Mock()},
        work_queue=PriorityQueue(),
        worker_timeout=1000,
    )
    thread.work_queue.put((0, None))  # process_message marks one item done
    thread.work_queue.get()
    thread.process_message(dramatiq.broker.MessageProxy(message))


@pytest.mark.parametrize(
    ("where", "after"),
    [
        ("decide_outcome", False),  # while the outcome is decided
        ("record_outcome", True),  # once the outcome is buffered, before the call returns
    ],
)
def test_a_time_limit_landing_after_the_handler_returned_keeps_its_outcome(where, after):
    task = schedule("test.noop", {})
    Task.objects.filter(id=task.id).update(status="queued", attempt=1)
    task.refresh_from_db()
    runtime = worker.WorkerRuntime()
    runtime.worker_id = "unit-late-interrupt"
    runtime.writer = OutcomeWriter(runtime.worker_id)
    target = worker if where == "decide_outcome" else runtime.writer
    patched = interrupt_once(getattr(target, where), after=after)

    with mock.patch.object(target, where, patched):
        run_one_message(task, runtime)
    assert runtime.writer.flush()

    task.refresh_from_db()
    assert task.status == "completed"
    assert TaskEvent.objects.filter(task_id=task.id, kind="completed").count() == 1
    assert runtime.writer.in_flight() == []  # nothing left for the heartbeat to keep claiming


def test_a_time_limit_landing_in_the_actor_after_the_handler_returned_keeps_its_result():
    task = schedule("test.noop", {})
    Task.objects.filter(id=task.id).update(status="queued", attempt=1)
    task.refresh_from_db()
    runtime = worker.WorkerRuntime()
    runtime.worker_id = "unit-late-interrupt"
    runtime.writer = OutcomeWriter(runtime.worker_id)

    def handler_then_time_limit(envelope):
        worker.run_current_attempt()
        raise TimeLimitExceeded()

    run_one_message(task, runtime, handler_then_time_limit)
    assert runtime.writer.flush()

    task.refresh_from_db()
    assert (task.status, task.attempt) == ("completed", 1)
