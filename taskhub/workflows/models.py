"""Workflow state in rows: a run, its steps (ordinary task rows), the edges between them, stored
definitions and the run's own events. Nothing about a workflow lives in the broker."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class WorkflowStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"  # cancel asked: waiting steps cancelled, running ones stopping
    CANCELLED = "cancelled"
    COMPENSATING = "compensating"  # undoing completed steps, newest first
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"  # a compensation failed for good; operator acts


#: Runs the coordinator still drives (the reconciler looks at these).
OPEN_RUN_STATUSES = (
    WorkflowStatus.RUNNING,
    WorkflowStatus.CANCELLING,
    WorkflowStatus.COMPENSATING,
)
FINAL_RUN_STATUSES = (
    WorkflowStatus.SUCCEEDED,
    WorkflowStatus.FAILED,
    WorkflowStatus.CANCELLED,
    WorkflowStatus.COMPENSATED,
)


class FailurePolicy(models.TextChoices):
    FAIL = "fail"  # a failed step cancels the rest; the run fails
    COMPENSATE = "compensate"  # ... then every completed step is compensated, newest first
    CONTINUE = "continue"  # independent branches run on; the run fails at the end


class WorkflowRun(models.Model):
    """One execution of a workflow definition."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=24, choices=WorkflowStatus.choices, default=WorkflowStatus.RUNNING
    )
    input = models.JSONField(default=dict, blank=True)
    #: shared, read-only for steps (ctx.workflow.context)
    context = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    on_failure = models.CharField(
        max_length=16, choices=FailurePolicy.choices, default=FailurePolicy.FAIL
    )
    #: cancel asked with compensation (status goes cancelling → compensating)
    compensate_on_cancel = models.BooleanField(default=False)
    #: why the run did not succeed (the first step that failed, a deadline, an operator)
    error = models.TextField(blank=True, default="")
    user_id = models.CharField(max_length=200, blank=True, default="")
    correlation_id = models.CharField(max_length=200, blank=True, default="")
    #: the compiled graph the run was started from (steps and edges), for retries and drawing
    graph = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="wfrun_status_idx"),
            models.Index(fields=["name", "-created_at"], name="wfrun_name_idx"),
            models.Index(
                fields=["deadline_at"],
                condition=Q(deadline_at__isnull=False) & Q(status="running"),
                name="wfrun_deadline_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} {self.id} ({self.status})"


class StepEdge(models.Model):
    """``downstream`` depends on ``upstream``. Resolved exactly once, when upstream has ended.

    ``when`` narrows a success edge to results matching it (a branch on a result value).
    """

    run = models.ForeignKey(
        WorkflowRun, null=True, blank=True, on_delete=models.CASCADE, related_name="edges"
    )
    upstream = models.ForeignKey("taskhub.Task", on_delete=models.CASCADE, related_name="+")
    downstream = models.ForeignKey("taskhub.Task", on_delete=models.CASCADE, related_name="+")
    when = models.JSONField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    #: how upstream ended: completed | failed | cancelled | skipped
    upstream_status = models.CharField(max_length=16, blank=True, default="")
    #: upstream counts as succeeded for this edge (completed and ``when`` matched, or an
    #: allowed failure)
    satisfied = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["upstream", "downstream"], name="edge_unique"),
        ]
        indexes = [
            models.Index(
                fields=["upstream"], condition=Q(resolved_at__isnull=True), name="edge_open_idx"
            ),
            models.Index(fields=["downstream"], name="edge_downstream_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.upstream_id} → {self.downstream_id}"


class WorkflowDefinition(models.Model):
    """A definition stored in the database, in the ``initialTask`` / ``transitions`` shape."""

    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True, default="")
    spec = models.JSONField()
    is_active = models.BooleanField(default=True)
    on_failure = models.CharField(
        max_length=16, choices=FailurePolicy.choices, default=FailurePolicy.FAIL
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="wfdef_name_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class WorkflowEvent(models.Model):
    """A run's own transitions (started, failed, compensating, …); steps have TaskEvents."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "id"], name="wfevent_run_idx")]

    def __str__(self) -> str:
        return f"{self.kind} of {self.run_id}"
