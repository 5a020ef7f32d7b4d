"""The workflow reconciler, run by the lifeline: a bounded backstop, not the coordinator.

The coordinator resolves dependencies in the transaction that ends a step, so in normal
operation this finds nothing. It repairs what something outside those paths left behind (a
step ended by hand in the database, a bug) and enforces deadlines:
- an open edge whose upstream step has ended is resolved (coordinator.settle);
- a blocked step with no dependency left is decided;
- an open run with no step left to run is finalised;
- a running run past its deadline is cancelled (compensated if its policy says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..models import ACTIVE_STATUSES, Task, TaskStatus
from . import coordinator
from .models import OPEN_RUN_STATUSES, FailurePolicy, StepEdge, WorkflowRun, WorkflowStatus
from .operations import cancel_run

logger = logging.getLogger(__name__)
LIMIT = 500


@dataclass
class ReconcileReport:
    edges: int = 0
    blocked: int = 0
    runs: int = 0
    deadlines: int = 0

    def __bool__(self) -> bool:
        return bool(self.edges or self.blocked or self.runs or self.deadlines)


def reconcile() -> ReconcileReport:
    report = ReconcileReport()
    now = timezone.now()
    with transaction.atomic():
        ended = list(
            StepEdge.objects.filter(
                resolved_at__isnull=True, upstream__status__in=coordinator.ENDED
            )
            .exclude(upstream__step_kind=coordinator.COMPENSATION)
            .values_list("upstream_id", flat=True)
            .distinct()[:LIMIT]
        )
        coordinator.settle(ended, now=now)
        report.edges = len(ended)
    with transaction.atomic():
        stuck = list(
            Task.objects.filter(status=TaskStatus.BLOCKED, deps_remaining__lte=0).values(
                "id", "workflow_run_id"
            )[:LIMIT]
        )
        runs = coordinator._lock_runs({s["workflow_run_id"] for s in stuck} - {None})
        coordinator.evaluate_blocked([s["id"] for s in stuck], runs, now)
        report.blocked = len(stuck)
    with transaction.atomic():
        active = Task.objects.filter(workflow_run=OuterRef("pk"), status__in=ACTIVE_STATUSES)
        idle = list(
            WorkflowRun.objects.filter(status__in=OPEN_RUN_STATUSES)
            .filter(~Exists(active))
            .values_list("id", flat=True)[:LIMIT]
        )
        coordinator.finalize(idle, now=now)
        report.runs = len(idle)
    report.deadlines = _enforce_deadlines(now)
    if report:
        logger.info("workflow reconciler: %s", report)
    return report


def _enforce_deadlines(now) -> int:
    late = WorkflowRun.objects.filter(
        status=WorkflowStatus.RUNNING, deadline_at__lt=now
    ).values_list("id", "on_failure")[:LIMIT]
    count = 0
    for run_id, policy in late:
        try:
            cancel_run(
                run_id, compensate=policy == FailurePolicy.COMPENSATE, reason="deadline passed"
            )
            count += 1
        except Exception as exc:  # another process got there first: nothing to do
            logger.debug("deadline of %s: %s", run_id, exc)
    return count
