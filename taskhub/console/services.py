"""Operator actions. The admin, the API and the command line all call these; nobody edits a
status by hand. Each is one guarded transition (or a batch of them) with its event recorded.

And the domain apps' seam (the last section): what payments, kyc, webhooks, notifications and
blockchain may read of taskhub's rows and use of its Redis. .importlinter forbids them
taskhub.models and the engine's modules; these functions are what they use instead.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from ..definitions.registry import declared_queues
from ..engine import claims, pause, transitions
from ..engine.broker import get_redis, key, wake_dispatcher
from ..engine.enqueue import schedule
from ..engine.events import publish_on_commit
from ..errors import InvalidTaskRequest, InvalidTransition, TaskNotFound
from ..models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    DeadLetter,
    EventKind,
    QueueState,
    Task,
    TaskEvent,
    TaskStatus,
)
from ..workflows.coordinator import settle
from ..workflows.models import WorkflowRun

WAITING_STATUSES = (
    TaskStatus.PENDING,
    TaskStatus.QUEUED,
    TaskStatus.RETRYING,
    TaskStatus.BLOCKED,
)


def get_task(task_id: str | uuid.UUID) -> Task:
    """The task with that id; TaskNotFound for unknown or malformed ids."""
    try:
        return Task.objects.get(id=uuid.UUID(str(task_id)))
    except (ValueError, Task.DoesNotExist):
        raise TaskNotFound(f"no task with id {task_id!r}") from None


def _event(task: Task, kind: str, data: dict | None = None) -> TaskEvent:
    event = TaskEvent(
        task_id=task.id, kind=kind, attempt=task.attempt, at=timezone.now(), data=data or {}
    )
    publish_on_commit([event])  # saved by the caller, published after the commit
    return event


def cancel_task(task_id: str | uuid.UUID, *, actor: str = "") -> Task:
    """Cancel a waiting task now; ask a running one to stop at its next checkpoint."""
    with transaction.atomic():
        task = get_task(task_id)
        task = Task.objects.select_for_update().get(id=task.id)
        now = timezone.now()
        if task.status in WAITING_STATUSES:
            transitions.cancel_task_now(task, now)
            _event(task, EventKind.CANCELLED, {"by": actor}).save()
            settle([task.id], now=now)
        elif task.status == TaskStatus.RUNNING:
            task.cancel_requested, task.updated_at = True, now
            task.save(update_fields=["cancel_requested", "updated_at"])
            _event(task, EventKind.CANCEL_REQUESTED, {"by": actor}).save()
        else:
            raise InvalidTransition(f"task {task.id} is {task.status} and cannot be cancelled")
        flag = [(str(task.id), task.attempt)]
        transaction.on_commit(lambda: claims.set_cancel_flags(flag))
    return task


def retry_task(task_id: str | uuid.UUID, *, actor: str = "") -> Task:
    """Run a failed or cancelled task again with a fresh budget of attempts; history is kept
    and its dead letters are resolved."""
    with transaction.atomic():
        task = Task.objects.select_for_update().get(id=get_task(task_id).id)
        if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise InvalidTransition(
                f"task {task.id} is {task.status}; only failed or cancelled tasks can be retried"
            )
        if task.workflow_run_id is not None:
            raise InvalidTransition(
                f"task {task.id} is a step of workflow run {task.workflow_run_id}: retry the "
                "run (it re-runs failed steps and what they skipped) or its compensation"
            )
        now = timezone.now()
        budget = task.max_attempts
        transitions.retry(task, now, budget=budget)
        DeadLetter.objects.filter(task_id=task.id).delete()
        _event(task, EventKind.REQUEUED, {"by": actor, "attempts_added": budget}).save()
        transaction.on_commit(lambda: wake_dispatcher(task.queue))
    return task


def delete_task(task_id: str | uuid.UUID) -> None:
    """Delete a finished task with its history; an active one must be cancelled first."""
    task = get_task(task_id)
    if task.status not in FINISHED_STATUSES:
        raise InvalidTransition(f"task {task.id} is {task.status}; cancel it before deleting")
    task.delete()


def retry_dead_letter(dead_letter_id: int, *, actor: str = "") -> Task:
    letter = DeadLetter.objects.get(id=dead_letter_id)
    return retry_task(letter.task_id, actor=actor)


def remove_dead_letter(dead_letter_id: int) -> None:
    DeadLetter.objects.filter(id=dead_letter_id).delete()


def _check_queue(name: str) -> None:
    if name not in declared_queues():
        raise InvalidTransition(f"unknown queue {name!r}")


def set_queue_paused(name: str, paused: bool) -> QueueState:
    """Pause or resume a queue. While paused nothing of it starts; running tasks finish
    (taskhub.engine.pause)."""
    _check_queue(name)
    return pause.set_paused(name, paused)


def pause_queue(name: str) -> QueueState:
    return set_queue_paused(name, True)


def resume_queue(name: str) -> QueueState:
    return set_queue_paused(name, False)


def clear_queue(name: str, *, actor: str = "", batch: int = 1000) -> int:
    """Cancel every waiting task of a queue (recorded as cancelled, never deleted)."""
    _check_queue(name)
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                Task.objects.select_for_update(skip_locked=True)
                .filter(queue=name, status__in=WAITING_STATUSES)
                .values_list("id", "attempt")[:batch]
            )
            if not ids:
                return total
            now = timezone.now()
            transitions.cancel_waiting([i for i, _ in ids], now, sources=WAITING_STATUSES)
            publish_on_commit(
                TaskEvent.objects.bulk_create(
                    [
                        TaskEvent(
                            task_id=i,
                            kind=EventKind.CANCELLED,
                            attempt=a,
                            at=now,
                            data={"by": actor, "reason": "queue cleared"},
                        )
                        for i, a in ids
                    ]
                )
            )
            settle([i for i, _ in ids], now=now)
            claims.set_cancel_flags([(str(i), a) for i, a in ids])
        total += len(ids)


def queue_stats() -> list[dict[str, Any]]:
    """Per queue: waiting, queued, running, delayed, completed, failed, cancelled, paused."""
    now = timezone.now()
    paused = pause.paused_queues()
    active = (
        Task.objects.filter(status__in=ACTIVE_STATUSES)
        .values("queue")
        .annotate(
            waiting=Count(
                "id",
                filter=Q(
                    status__in=(TaskStatus.PENDING, TaskStatus.RETRYING), scheduled_at__lte=now
                ),
            ),
            delayed=Count(
                "id",
                filter=Q(
                    status__in=(TaskStatus.PENDING, TaskStatus.RETRYING), scheduled_at__gt=now
                ),
            ),
            queued=Count("id", filter=Q(status=TaskStatus.QUEUED)),
            running=Count("id", filter=Q(status=TaskStatus.RUNNING)),
        )
    )
    finished = (
        Task.objects.filter(status__in=FINISHED_STATUSES)
        .values("queue", "status")
        .annotate(n=Count("id"))
    )
    stats = {
        q: {
            "queue": q,
            "waiting": 0,
            "queued": 0,
            "running": 0,
            "delayed": 0,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "paused": q in paused,
        }
        for q in declared_queues()
    }
    for row in active:
        stats.setdefault(row["queue"], {"queue": row["queue"], "paused": False})
        stats[row["queue"]].update({k: row[k] for k in ("waiting", "delayed", "queued", "running")})
    for row in finished:
        stats.setdefault(row["queue"], {"queue": row["queue"], "paused": False})
        stats[row["queue"]][row["status"]] = row["n"]
    return list(stats.values())


#: Options a scheduling request may carry beside the task name and payload.
SCHEDULE_OPTIONS = ("priority", "delay", "max_attempts", "dedup_key", "correlation_id", "user_id")


def schedule_batch(requests: list[dict[str, Any]]) -> list[Task]:
    """Schedule tasks of any types at once, all or nothing.

    Each request is ``{"task", "payload", **SCHEDULE_OPTIONS}``. The first invalid one raises
    InvalidTaskRequest with its errors keyed ``"<index>.<field>"`` and nothing is stored.
    """
    rows = []
    with transaction.atomic():
        for index, request in enumerate(requests):
            options = {k: request[k] for k in SCHEDULE_OPTIONS if request.get(k) is not None}
            try:
                rows.append(schedule(request["task"], request.get("payload"), **options))
            except InvalidTaskRequest as exc:
                errors = {f"{index}.{field}": messages for field, messages in exc.errors.items()}
                raise InvalidTaskRequest(f"item {index}: {exc}", errors=errors) from None
    return rows


# -- the domain apps' seam ------------------------------------------------------------------------


def correlated_tasks(correlation_id: str) -> list[Task]:
    """Every task scheduled with this correlation id, oldest first."""
    return list(Task.objects.filter(correlation_id=correlation_id).order_by("created_at"))


def live_task(task_id: str | uuid.UUID | None) -> Task | None:
    """The task if it has not ended yet (waiting, queued, running or blocked), else None."""
    if task_id is None:
        return None
    return Task.objects.filter(id=task_id, status__in=ACTIVE_STATUSES).first()


def live_task_ids(task_ids: list[str | uuid.UUID]) -> set[uuid.UUID]:
    """Which of these tasks have not ended yet."""
    return set(
        Task.objects.filter(id__in=task_ids, status__in=ACTIVE_STATUSES).values_list(
            "id", flat=True
        )
    )


def workflow_steps(run_id: str | uuid.UUID) -> dict[str, Task]:
    """A workflow run's step tasks, by step key."""
    return {t.step_key: t for t in Task.objects.filter(workflow_run_id=run_id)}


def workflow_run_status(run_id: str | uuid.UUID) -> str | None:
    """A workflow run's status (a ``taskhub.WorkflowStatus``), or None if there is no such run."""
    return WorkflowRun.objects.filter(id=run_id).values_list("status", flat=True).first()


def shared_redis() -> redis.Redis:
    """The Redis client taskhub coordinates through (REDIS_URL, or the embedded server), for an
    app's own small, short-lived keys; name them with :func:`redis_key`."""
    return get_redis()


def redis_key(*parts: object) -> str:
    """A Redis key under taskhub's KEY_PREFIX, so an app's keys share taskhub's namespace."""
    return key(*parts)
