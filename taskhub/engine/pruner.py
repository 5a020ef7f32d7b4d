"""Retention: delete old completed and cancelled tasks, with their events and logs, in batches.

Failed tasks and dead letters stay until an operator removes them. A workflow's steps go with
their run (succeeded, cancelled or compensated before the cutoff), never one by one, and a
parent goes with its children. Each batch is its own short transaction so pruning millions of
rows never holds locks workers need.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from ..conf import taskhub_settings
from ..models import (
    DeadLetter,
    StepEdge,
    Task,
    TaskEvent,
    TaskLog,
    TaskStatus,
    WorkflowEvent,
    WorkflowRun,
    WorkflowStatus,
)

_PRUNED_RUNS = (WorkflowStatus.SUCCEEDED, WorkflowStatus.CANCELLED, WorkflowStatus.COMPENSATED)

logger = logging.getLogger(__name__)


def prune_finished_tasks(older_than_days: float | None = None, batch: int | None = None) -> int:
    """Delete completed/cancelled tasks finished before the retention cutoff; return the count."""
    days = taskhub_settings.RETENTION_DAYS if older_than_days is None else older_than_days
    size = batch or taskhub_settings.PRUNE_BATCH
    cutoff = timezone.now() - dt.timedelta(days=days)
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                Task.objects.filter(
                    status__in=(TaskStatus.COMPLETED, TaskStatus.CANCELLED),
                    completed_at__lt=cutoff,
                    workflow_run__isnull=True,
                    parent__isnull=True,
                ).values_list("id", flat=True)[:size]
            )
            if not ids:
                break
            total += _delete_tasks(_with_descendants(ids))
    total += prune_finished_runs(cutoff, size)
    logger.info("pruned %d finished tasks older than %s", total, cutoff.isoformat())
    return total


def prune_finished_runs(cutoff: dt.datetime, batch: int) -> int:
    """Delete workflow runs that ended well before ``cutoff``, with all of their steps."""
    total = 0
    runs_per_batch = max(1, batch // 100)
    while True:
        with transaction.atomic():
            runs = list(
                WorkflowRun.objects.filter(
                    status__in=_PRUNED_RUNS, finished_at__lt=cutoff
                ).values_list("id", flat=True)[:runs_per_batch]
            )
            if not runs:
                return total
            ids = list(Task.objects.filter(workflow_run_id__in=runs).values_list("id", flat=True))
            total += _delete_tasks(_with_descendants(ids))
            WorkflowEvent.objects.filter(run_id__in=runs)._raw_delete(WorkflowEvent.objects.db)
            WorkflowRun.objects.filter(id__in=runs)._raw_delete(WorkflowRun.objects.db)


def _with_descendants(ids: list) -> list:
    """The tasks and every child they spawned (children go with their parent)."""
    found, frontier = set(ids), list(ids)
    while frontier:
        frontier = list(
            Task.objects.filter(parent_id__in=frontier)
            .exclude(id__in=found)
            .values_list("id", flat=True)
        )
        found.update(frontier)
    return list(found)


def _delete_tasks(ids: list) -> int:
    # Raw deletes: the ORM's cascade would load every event into memory first.
    db = Task.objects.db
    StepEdge.objects.filter(upstream_id__in=ids)._raw_delete(db)
    StepEdge.objects.filter(downstream_id__in=ids)._raw_delete(db)
    TaskEvent.objects.filter(task_id__in=ids)._raw_delete(db)
    TaskLog.objects.filter(task_id__in=ids)._raw_delete(db)
    DeadLetter.objects.filter(task_id__in=ids)._raw_delete(db)
    Task.objects.filter(compensates_id__in=ids).exclude(id__in=ids).update(compensates=None)
    Task.objects.filter(id__in=ids)._raw_delete(db)
    return len(ids)
