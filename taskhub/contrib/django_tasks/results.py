"""Django ``TaskResult`` values rebuilt from taskhub's rows: the row is the single source of truth.

Status mapping (taskhub → Django):

    pending, queued, retrying → READY      (waiting, or "ready to be executed again")
    running                   → RUNNING
    completed                 → SUCCESSFUL
    failed, cancelled         → FAILED     (a failed task also has a DeadLetter)

``worker_ids`` has one entry per attempt that started (from the ``started`` events), so
``attempts`` counts attempts; ``errors`` has one ``TaskError`` per failed attempt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.utils.module_loading import import_string

from taskhub.errors import TaskCancelled, TaskhubError
from taskhub.models import EventKind, TaskEvent, TaskLog, TaskStatus
from taskhub.models import Task as TaskRow

from . import compat

#: Name of the taskhub task type that runs Django tasks of the "default" backend alias; other
#: aliases get ``django_tasks.run:<alias>`` (each alias may carry its own retry policy).
RUN_TASK = "django_tasks.run"
#: How a failed attempt's exception is recorded: a TaskLog line at ERROR level starting with this.
ERROR_MARK = "django task raised "

STATUS_MAP = {
    TaskStatus.PENDING: compat.TaskResultStatus.READY,
    TaskStatus.QUEUED: compat.TaskResultStatus.READY,
    TaskStatus.RETRYING: compat.TaskResultStatus.READY,
    TaskStatus.RUNNING: compat.TaskResultStatus.RUNNING,
    TaskStatus.COMPLETED: compat.TaskResultStatus.SUCCESSFUL,
    TaskStatus.FAILED: compat.TaskResultStatus.FAILED,
    TaskStatus.CANCELLED: compat.TaskResultStatus.FAILED,
}


class WorkerLost(TaskhubError):
    """Stands in for the exception of an attempt whose worker died (kill -9, lost host)."""


def definition_name(alias: str) -> str:
    return RUN_TASK if alias == "default" else f"{RUN_TASK}:{alias}"


def is_django_task(name: str) -> bool:
    return name == RUN_TASK or name.startswith(RUN_TASK + ":")


def _check_importable(module_path: str) -> None:
    """Refuse, before importing anything, a path outside the packages of the installed apps:
    importing runs a module's top level, and the path comes from a stored payload."""
    module, _, name = module_path.rpartition(".")
    if not module or not name:
        raise ImportError(f"{module_path!r} is not a dotted path to a Task")
    packages = {config.name.partition(".")[0] for config in apps.get_app_configs()}
    if module.partition(".")[0] not in packages:
        raise ImportError(
            f"{module_path!r} is outside the installed apps' packages; only their Tasks run"
        )


def resolve_task(module_path: str) -> Any:
    """The Task object a ``@task`` decorator bound at ``module_path`` (ImportError if none).

    Only a Django Task defined at that very path runs: not a path outside the installed apps'
    packages (never imported), not another callable, not a Task re-exported under another name.
    """
    _check_importable(module_path)
    try:
        obj = import_string(module_path)
    except ImportError:
        raise
    except Exception as exc:  # the module raised while importing
        raise ImportError(f"cannot import {module_path!r}: {exc}") from exc
    if not isinstance(obj, compat.Task) or obj.module_path != module_path:
        raise ImportError(f"{module_path!r} is not a Task (decorate the function with @task)")
    return obj


def restore_task(payload: dict) -> Any:
    """The Task as it was enqueued (priority, queue, run_after, backend), without re-validating
    it: configuration drift since the enqueue must not make its result unreadable."""
    base = resolve_task(payload["module_path"])
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    run_after = payload.get("run_after")
    values.update(
        priority=payload.get("priority", values.get("priority", 0)),
        queue_name=payload.get("queue_name", values.get("queue_name")),
        run_after=dt.datetime.fromisoformat(run_after) if run_after else None,
        backend=payload.get("backend", values.get("backend")),
        takes_context=payload.get("takes_context", values.get("takes_context", False)),
    )
    restored = object.__new__(type(base))
    for name, value in values.items():
        object.__setattr__(restored, name, value)
    return restored


def error_message(exc: BaseException) -> str:
    return f"{ERROR_MARK}{compat.class_path(type(exc))}\n{compat.exception_traceback(exc)}"


def _parse_error(message: str) -> Any:
    path, _, trace = message[len(ERROR_MARK) :].partition("\n")
    return compat.TaskError(exception_class_path=path, traceback=trace)


def _stand_in_error(row: TaskRow) -> Any:
    if row.status == TaskStatus.CANCELLED:
        cls: type[BaseException] = TaskCancelled
    elif "worker lost" in row.error:
        cls = WorkerLost
    else:
        cls = TaskhubError
    return compat.TaskError(exception_class_path=compat.class_path(cls), traceback=row.error)


def build_results(rows: Iterable[TaskRow]) -> dict[uuid.UUID, Any]:
    """TaskResults for rows of Django tasks, in three queries whatever the number of rows."""
    rows = list(rows)
    ids = [r.id for r in rows]
    starts: dict[uuid.UUID, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for task_id, at, data in (
        TaskEvent.objects.filter(task_id__in=ids, kind=EventKind.STARTED)
        .order_by("id")
        .values_list("task_id", "at", "data")
    ):
        starts[task_id].append((at, (data or {}).get("worker", "")))
    errors: dict[uuid.UUID, list[tuple[int, Any]]] = defaultdict(list)
    for task_id, attempt, message in (
        TaskLog.objects.filter(task_id__in=ids, level="ERROR", message__startswith=ERROR_MARK)
        .order_by("id")
        .values_list("task_id", "attempt", "message")
    ):
        errors[task_id].append((attempt, _parse_error(message)))
    return {r.id: _result(r, starts[r.id], errors[r.id]) for r in rows}


def _result(row: TaskRow, starts: list, errors: list) -> Any:
    payload = row.payload
    status = STATUS_MAP[TaskStatus(row.status)]
    task_errors = [e for _, e in errors]
    if status == compat.TaskResultStatus.FAILED and row.attempt not in {a for a, _ in errors}:
        task_errors.append(_stand_in_error(row))
    result = compat.TaskResult(
        task=restore_task(payload),
        id=str(row.id),
        status=status,
        enqueued_at=row.created_at,
        started_at=starts[0][0] if starts else row.started_at,
        finished_at=row.completed_at if status in _FINISHED else None,
        last_attempted_at=row.started_at or (starts[-1][0] if starts else None),
        args=payload.get("args", []),
        kwargs=payload.get("kwargs", {}),
        backend=payload.get("backend", "default"),
        errors=task_errors,
        worker_ids=[worker for _, worker in starts],
    )
    if status == compat.TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", row.result)
    return result


_FINISHED = {compat.TaskResultStatus.SUCCESSFUL, compat.TaskResultStatus.FAILED}


def load_result(result_id: str) -> Any:
    """The TaskResult with this id, or TaskResultDoesNotExist."""
    try:
        task_id = uuid.UUID(str(result_id))
    except ValueError:
        raise compat.TaskResultDoesNotExist(f"no task result {result_id!r}") from None
    row = TaskRow.objects.filter(id=task_id, name__startswith=RUN_TASK).first()
    if row is None or not is_django_task(row.name):
        raise compat.TaskResultDoesNotExist(f"no task result {result_id!r}")
    try:
        return build_results([row])[row.id]
    except ImportError as exc:
        raise compat.TaskResultDoesNotExist(
            f"task result {result_id!r} belongs to a task that no longer imports: {exc}"
        ) from exc
