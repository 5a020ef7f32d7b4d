"""``TaskhubBackend``: Django's Tasks framework on taskhub.

``@task`` + ``.enqueue()`` becomes one taskhub row (visible in the admin and API), run by the same
Dramatiq workers, retried by the alias's policy and dead-lettered like any taskhub task::

    TASKS = {
        "default": {
            "BACKEND": "taskhub.contrib.django_tasks.TaskhubBackend",
            "QUEUES": ["default", "email"],   # optional: default is every taskhub queue
            "OPTIONS": {"MAX_ATTEMPTS": 3, "RETRY": [1, 5, 15], "TIMEOUT": 60},
        }
    }

OPTIONS (each optional, falling back to taskhub's settings): ``MAX_ATTEMPTS`` (1–100; default
TASKHUB DEFAULT_MAX_ATTEMPTS), ``RETRY`` (a list of delays, or ``{"kind": "exponential",
"base": 2, "cap": 60}`` as in taskhub.definitions.retry.policy_from_config), ``TIMEOUT`` (seconds).

Priority −100…100 is taskhub's own range, so it is stored unchanged (higher runs first within a
queue). ``run_after`` becomes the row's ``scheduled_at``. The row is inserted in the caller's
transaction and only dispatched after commit: a task enqueued in a transaction that rolls back
never runs, and get_result inside the transaction already sees it.

The worker side (below the backend): the one taskhub task type that runs every Django task, and
the signals. The payload names the Task by ``module_path`` (``@task`` rebinds the module attribute
to the Task object, so ``import_string`` returns it) and carries its arguments. The handler runs
inside taskhub's worker middleware like any other task: claims, timeouts, retries by the
backend's policy, dead letters and the lifeline all apply unchanged. One module for both sides:
the backend registers the worker's task type, and the worker's signals name the backend class.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.utils import timezone
from django.utils.module_loading import import_string

from taskhub.definitions.payloads import validate_payload
from taskhub.definitions.registry import TaskDefinition, declared_queues
from taskhub.definitions.registry import task as taskhub_task
from taskhub.definitions.retry import policy_from_config
from taskhub.engine.enqueue import insert_rows
from taskhub.errors import InvalidTaskRequest, PermanentError
from taskhub.models import EventKind, TaskEvent, TaskStatus
from taskhub.models import Task as TaskRow

from . import compat
from .results import (
    build_results,
    definition_name,
    error_message,
    is_django_task,
    load_result,
    restore_task,
)

APP_NAME = "taskhub.contrib.django_tasks"
logger = logging.getLogger(__name__)
_FINAL = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskhubBackend(compat.BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            self.queues = set()  # every queue taskhub declares (checked in validate_task)
        try:
            self.definition = register_definition(alias, self.options)
        except (TypeError, ValueError) as exc:
            message = f"TASKS[{alias!r}]['OPTIONS'] is invalid: {exc}"
            raise compat.InvalidTaskBackend(message) from exc

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        if task.queue_name not in declared_queues():
            raise compat.InvalidTask(
                f"Queue '{task.queue_name}' is not a taskhub queue: declare it in "
                "TASKHUB['QUEUES']."
            )

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        now = timezone.now()
        payload = {
            "module_path": task.module_path,
            "args": compat.normalize_json(args),
            "kwargs": compat.normalize_json(kwargs),
            "takes_context": task.takes_context,
            "backend": self.alias,
            "queue_name": task.queue_name,
            "priority": task.priority,
            "run_after": task.run_after.isoformat() if task.run_after else None,
            "enqueued_at": now.isoformat(),
        }
        definition = self.definition
        try:
            payload = validate_payload(definition, payload)
        except InvalidTaskRequest as exc:
            raise compat.InvalidTask(str(exc)) from exc
        row = TaskRow(
            id=uuid.uuid4(),
            name=definition.name,
            task_type=definition.task_type,
            queue=task.queue_name,
            payload=payload,
            priority=task.priority,
            max_attempts=definition.effective_max_attempts,
            timeout=definition.effective_timeout,
            # run_after as given, even if past: equal priorities then start in run_after order.
            scheduled_at=task.run_after or now,
            created_at=now,
            updated_at=now,
        )
        insert_rows([row])  # in the caller's transaction; dispatched only after commit
        result = compat.TaskResult(
            task=task,
            id=str(row.id),
            status=compat.TaskResultStatus.READY,
            enqueued_at=now,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=payload["args"],
            kwargs=payload["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        compat.task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        return load_result(result_id)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = []
        if not apps.is_installed(APP_NAME):
            errors.append(
                checks.Error(
                    f"{APP_NAME} is not in INSTALLED_APPS",
                    hint="Workers register the task type that runs Django tasks from its ready().",
                    id="taskhub_django_tasks.E001",
                )
            )
        known = set(declared_queues())
        for queue in sorted(self.queues - known):
            errors.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] lists queue {queue!r}, which taskhub does not declare",
                    hint="Add it to TASKHUB['QUEUES'] so the dispatcher and workers serve it.",
                    id="taskhub_django_tasks.E002",
                )
            )
        return errors


# -- the worker side -------------------------------------------------------------------------------


def run_django_task(payload: dict, ctx) -> Any:
    """Runs a task enqueued through Django's Tasks framework (``@task`` + ``.enqueue()``)."""
    try:
        task = restore_task(payload)
    except ImportError as exc:
        # A path that does not import (or is not a Task) will not import on a retry either.
        ctx.logger.error(error_message(exc))
        raise PermanentError(str(exc)) from exc
    result = _running_result(task, payload, ctx)
    backend_class = _backend_class(payload.get("backend", "default"))
    compat.task_started.send(sender=backend_class, task_result=result)
    args, kwargs = payload.get("args", []), payload.get("kwargs", {})
    try:
        if task.takes_context:
            value = task.call(compat.TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
    except BaseException as exc:
        # Recorded with its class path for TaskResult.errors; re-raised so the engine's retry
        # policy decides (SystemExit and KeyboardInterrupt from a task fail it like any error).
        ctx.logger.error(error_message(exc))
        raise
    try:
        value = compat.normalize_json(value)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        ctx.logger.error(error_message(exc))
        raise PermanentError(f"return value is not JSON: {exc}") from exc
    return value


def _running_result(task: Any, payload: dict, ctx) -> Any:
    """The TaskResult a running task sees through its context (``context.attempt`` is 1-based)."""
    worker_id = getattr(ctx._writer, "worker_id", "")
    previous: list[str] = []
    if ctx.attempt > 1:
        previous = [
            (data or {}).get("worker", "")
            for data in TaskEvent.objects.filter(
                task_id=ctx.task_id, kind=EventKind.STARTED, attempt__lt=ctx.attempt
            )
            .order_by("id")
            .values_list("data", flat=True)
        ]
    now = timezone.now()
    enqueued_at = payload.get("enqueued_at")
    return compat.TaskResult(
        task=task,
        id=ctx.task_id,
        status=compat.TaskResultStatus.RUNNING,
        enqueued_at=dt.datetime.fromisoformat(enqueued_at) if enqueued_at else None,
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=payload.get("args", []),
        kwargs=payload.get("kwargs", {}),
        backend=payload.get("backend", "default"),
        errors=[],
        worker_ids=[*previous, worker_id],
    )


def _backend_class(alias: str) -> type:
    try:
        return type(compat.task_backends[alias])
    except compat.InvalidTaskBackend:
        return TaskhubBackend


def register_definition(alias: str, options: dict) -> TaskDefinition:
    """Register (or refresh) the taskhub task type for one backend alias from its OPTIONS."""
    retry = options.get("RETRY")
    return taskhub_task(
        definition_name(alias),
        max_attempts=options.get("MAX_ATTEMPTS"),
        retry=policy_from_config(retry) if retry is not None else None,
        timeout=options.get("TIMEOUT"),
        # Only .enqueue() creates its rows: from outside, a payload could name any module path.
        external=False,
    )(run_django_task)


def register_configured_backends() -> None:
    """Every process (workers above all) must know the task type of every taskhub alias."""
    for alias, params in getattr(settings, "TASKS", {}).items():
        try:
            backend_class = import_string(params["BACKEND"])
        except ImportError:
            continue  # the Tasks framework reports a bad BACKEND itself
        if isinstance(backend_class, type) and issubclass(backend_class, TaskhubBackend):
            register_definition(alias, params.get("OPTIONS", {}))


def send_task_finished(sender, outcomes, **kwargs) -> None:
    """Receiver of taskhub's ``tasks_finished``: Django's ``task_finished`` for final outcomes,
    sent after they are committed, so a receiver that calls get_result sees them."""
    ids = [o.task_id for o in outcomes if is_django_task(o.name) and o.status in _FINAL]
    if not ids:
        return
    rows = list(TaskRow.objects.filter(id__in=ids))
    try:
        results = build_results(rows)
    except ImportError as exc:
        logger.warning("task_finished not sent for a task that does not import: %s", exc)
        return
    for result in results.values():
        compat.task_finished.send(sender=_backend_class(result.backend), task_result=result)
