"""Retention: delete old completed and cancelled tasks, with their events and logs, in batches.

Failed tasks and dead letters stay until an operator removes them. Each batch is its own short
transaction so pruning millions of rows never holds locks workers need.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from .conf import taskhub_settings
from .models import Task, TaskEvent, TaskLog, TaskStatus

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
                Task.objects.filter(status__in=(TaskStatus.COMPLETED, TaskStatus.CANCELLED),
                                    completed_at__lt=cutoff)
                .values_list("id", flat=True)[:size]
            )  # fmt: skip
            if not ids:
                break
            # Raw deletes: the ORM's cascade would load every event into memory first.
            TaskEvent.objects.filter(task_id__in=ids)._raw_delete(TaskEvent.objects.db)
            TaskLog.objects.filter(task_id__in=ids)._raw_delete(TaskLog.objects.db)
            Task.objects.filter(id__in=ids)._raw_delete(Task.objects.db)
        total += len(ids)
    logger.info("pruned %d finished tasks older than %s", total, cutoff.isoformat())
    return total
