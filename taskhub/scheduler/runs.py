"""The history of a schedule's slots: a ScheduleRun per fired (or missed) slot, recording the
task it scheduled and, brought up to date from the task, how that task ended. Written by the
scheduler process (taskhub.scheduler.runner) and by an operator's "run now"
(taskhub.scheduler.schedules).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..engine.enqueue import schedule
from ..errors import InvalidTaskRequest
from ..models import ACTIVE_STATUSES, RunStatus, ScheduleRun, Task, TaskSchedule

logger = logging.getLogger(__name__)


def record_run(row: TaskSchedule, slot: dt.datetime, trigger: str) -> ScheduleRun:
    """Insert the run for ``slot`` and schedule its task, in the caller's transaction.

    Raises IntegrityError if the slot already has a run (another scheduler fired it).
    """
    now = timezone.now()
    with transaction.atomic():
        run = ScheduleRun.objects.create(schedule=row, slot=slot, trigger=trigger, created_at=now)
    try:
        with transaction.atomic():
            task = schedule(row.task_name, row.payload, correlation_id=f"schedule:{row.name}")
        run.task_id, run.status = task.id, task.status
    except InvalidTaskRequest as exc:
        # The code changed under a stored schedule (task renamed, schema tightened): record it.
        run.status, run.error = RunStatus.ERROR, str(exc)
        logger.warning("schedule %s could not schedule %s: %s", row.name, row.task_name, exc)
    run.save(update_fields=["task_id", "status", "error"])
    row.last_run_at, row.last_task_id, row.last_status = slot, run.task_id, run.status
    row.save(update_fields=["last_run_at", "last_task_id", "last_status"])
    return run


def refresh_run_outcomes(runs: QuerySet[ScheduleRun] | None = None, limit: int = 2000) -> int:
    """Copy the outcome of each unfinished run's task onto the run (and its schedule)."""
    runs = ScheduleRun.objects.all() if runs is None else runs
    open_runs = list(
        runs.filter(status__in=ACTIVE_STATUSES)
        .exclude(task_id=None)
        .values_list("id", "task_id", "status")[:limit]
    )
    if not open_runs:
        return 0
    current = dict(
        Task.objects.filter(id__in=[t for _, t, _ in open_runs]).values_list("id", "status")
    )
    changed: dict[str, list[tuple[int, object]]] = {}
    for run_id, task_id, status in open_runs:
        new = current.get(task_id, RunStatus.PRUNED)
        if new != status:
            changed.setdefault(new, []).append((run_id, task_id))
    for status, pairs in changed.items():
        ScheduleRun.objects.filter(id__in=[r for r, _ in pairs]).update(status=status)
        TaskSchedule.objects.filter(last_task_id__in=[t for _, t in pairs]).update(
            last_status=status
        )
    return sum(len(p) for p in changed.values())


def prune_schedule_runs(older_than_days: float) -> int:
    """Delete run history older than the retention (the schedules themselves stay)."""
    cutoff = timezone.now() - dt.timedelta(days=older_than_days)
    count, _ = ScheduleRun.objects.filter(created_at__lt=cutoff).delete()
    return count
