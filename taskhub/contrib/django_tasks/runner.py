"""The worker side: the one taskhub task type that runs every Django task, and the signals.

The payload names the Task by ``module_path`` (``@task`` rebinds the module attribute to the Task
object, so ``import_string`` returns it) and carries its arguments. The handler runs inside
taskhub's worker middleware like any other task: claims, timeouts, retries by the backend's
policy, dead letters and the lifeline all apply unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from taskhub.definitions.registry import TaskDefinition
from taskhub.definitions.registry import task as taskhub_task
from taskhub.definitions.retry import policy_from_config
from taskhub.errors import PermanentError
from taskhub.models import EventKind, TaskEvent, TaskStatus
from taskhub.models import Task as TaskRow

from . import compat
from .results import build_results, definition_name, error_message, is_django_task, restore_task

logger = logging.getLogger(__name__)

_FINAL = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


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
    from .backend import TaskhubBackend

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
    from .backend import TaskhubBackend

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
