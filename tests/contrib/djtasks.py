"""Django Tasks-framework functions the conformance tests enqueue (the django-tasks-db fixtures).

Workers import this module by the tasks' module paths. Signal receivers connected here record
what the worker process sent, in Redis under the session's key prefix.
"""

import asyncio
import time

from taskhub.engine.broker import get_redis, key

try:
    from django.tasks import TaskContext, task
    from django.tasks.signals import task_finished, task_started
except ImportError:
    from django_tasks import TaskContext, task
    from django_tasks.signals import task_finished, task_started


@task()
def noop_task(*args, **kwargs) -> None:
    return None


@task()
async def noop_task_async(*args, **kwargs) -> None:
    await asyncio.sleep(0)


@task()
def calculate_meaning_of_life() -> int:
    return 42


@task()
async def add_async(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


@task()
def failing_task_value_error() -> None:
    raise ValueError("This Task failed due to ValueError")


@task()
def failing_task_system_exit() -> None:
    raise SystemExit("This Task failed due to SystemExit")


@task()
def failing_task_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("This Task failed due to KeyboardInterrupt")


@task()
def complex_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task()
def complex_return_value():
    return lambda: True  # not JSON


@task()
def exit_task() -> None:
    exit(1)


@task()
def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


@task(takes_context=True)
def get_task_id(context: TaskContext) -> str:
    return context.task_result.id


@task(takes_context=True)
def check_context(context: TaskContext, attempt: int) -> int:
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt
    return context.attempt


@task()
def record(label: str, item: str) -> str:
    get_redis().rpush(key("djtasks", label), item)
    return item


@task(backend="retrying", takes_context=True)
def flaky(context: TaskContext, failures: int) -> dict:
    if context.attempt <= failures:
        raise RuntimeError(f"planned failure {context.attempt} of {failures}")
    return {"succeeded_on": context.attempt}


@task(backend="retrying")
def always_fails() -> None:
    raise ConnectionError("provider unreachable")


@task(backend="retrying", takes_context=True)
def slow_once(context: TaskContext, seconds: float) -> int:
    """Sleeps on its first attempt only (long enough to be killed), then succeeds."""
    get_redis().rpush(key("djtasks", "slow_once"), context.task_result.id)
    if context.attempt == 1:
        time.sleep(seconds)
    return context.attempt


not_a_task = "a module attribute that is not a Task"


def _record_signal(signal_name):
    def receiver(sender, task_result, **kwargs):
        get_redis().rpush(
            key("djtasks", "signals", task_result.id),
            f"{signal_name}:{sender.__name__}:{task_result.status}",
        )

    return receiver


_on_started = _record_signal("started")
_on_finished = _record_signal("finished")
task_started.connect(_on_started, dispatch_uid="djtasks-started")
task_finished.connect(_on_finished, dispatch_uid="djtasks-finished")
