"""The engine's durable state: task rows are the source of truth; the broker only carries them."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class TaskStatus(models.TextChoices):
    PENDING = "pending"  # committed, waiting for its time, its queue and a free slot
    QUEUED = "queued"  # handed to the broker for the current attempt
    RUNNING = "running"  # an attempt is executing on a worker
    RETRYING = "retrying"  # an attempt failed; the next one is due at scheduled_at
    COMPLETED = "completed"  # finished successfully; result holds the return value
    FAILED = "failed"  # out of attempts or failed permanently; a DeadLetter records it
    CANCELLED = "cancelled"  # cancelled before it finished; never starts again
    BLOCKED = "blocked"  # a workflow step (or a parent) waiting for the steps it depends on
    SKIPPED = "skipped"  # a workflow step whose dependencies ended so that it must not run


#: States a task can still leave on its own: the engine owes it work.
ACTIVE_STATUSES = (
    TaskStatus.PENDING,
    TaskStatus.QUEUED,
    TaskStatus.RUNNING,
    TaskStatus.RETRYING,
    TaskStatus.BLOCKED,
)
#: States the dispatcher picks ready work from.
READY_STATUSES = (TaskStatus.PENDING, TaskStatus.RETRYING)
#: States that hold a slot of their queue's concurrency cap.
IN_FLIGHT_STATUSES = (TaskStatus.QUEUED, TaskStatus.RUNNING)
FINISHED_STATUSES = (
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
    TaskStatus.SKIPPED,
)


#: The operator roles as permissions (``taskhub.role_viewer`` …): each names what its role may
#: do, and includes the roles before it. taskhub/console/roles.py checks them; they sit on Task
#: because a permission needs a model, and the console is mostly about tasks.
ROLE_PERMISSIONS = [
    ("role_viewer", "Viewer: read tasks, queues, workflows, schedules and webhooks"),
    ("role_operator", "Operator: also schedule, retry and cancel tasks, pause and resume queues"),
    ("role_admin", "Admin: also clear queues, remove tasks and edit schedules and webhooks"),
]


class Task(models.Model):
    """One unit of background work and the state of its latest attempt."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    #: what kind of work it is, as its definition declares (taskhub.definitions.task_types):
    #: written once, when the row is inserted. The database default lets a process still running
    #: the previous version insert rows while a deployment migrates.
    task_type = models.CharField(max_length=32, default="other", db_default="other")
    queue = models.CharField(max_length=100, default="default")
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    payload = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    priority = models.SmallIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    timeout = models.FloatField(default=300.0)
    scheduled_at = models.DateTimeField()
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds of the last attempt")
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    progress = models.PositiveSmallIntegerField(default=0)
    correlation_id = models.CharField(max_length=200, blank=True, default="")
    user_id = models.CharField(max_length=200, blank=True, default="")
    dedup_key = models.CharField(max_length=255, null=True, blank=True)
    worker_id = models.CharField(max_length=200, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # -- workflow steps (taskhub.workflows); empty for a standalone task ----------------------
    # Indexed by task_workflow_idx / task_workflow_step_unique (partial: most rows have none).
    workflow_run = models.ForeignKey(
        "WorkflowRun",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="steps",
        db_index=False,
    )
    step_key = models.CharField(max_length=200, blank=True, default="")
    step_kind = models.CharField(max_length=16, blank=True, default="")  # forward | compensation
    #: when a blocked step may run once every dependency has ended (taskhub.workflows.rules)
    trigger_rule = models.CharField(max_length=16, blank=True, default="")
    #: a failure of this step counts as success for its dependents (they see it in ctx.results)
    allow_failure = models.BooleanField(default=False)
    #: dependencies not yet resolved; the step leaves ``blocked`` when this reaches 0
    deps_remaining = models.IntegerField(default=0)
    compensation = models.CharField(max_length=200, blank=True, default="")
    #: compensate this step even if it failed (its remote effect may have happened anyway)
    compensate_failed = models.BooleanField(default=False)
    compensates = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="compensations",
        db_index=False,  # task_compensates_idx
    )
    #: the task that spawned this one and waits for it (parent / child)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        db_index=False,  # task_parent_idx
    )

    class Meta:
        ordering = ["-created_at"]
        permissions = ROLE_PERMISSIONS
        indexes = [
            # What the dispatcher scans: ready rows of a queue in priority order.
            models.Index(
                fields=["queue", "-priority", "scheduled_at"],
                condition=Q(status__in=READY_STATUSES),
                name="task_ready_idx",
            ),
            # When the next delayed row is due (the dispatcher's sleep).
            models.Index(
                fields=["scheduled_at"],
                condition=Q(status__in=READY_STATUSES),
                name="task_due_idx",
            ),
            # What concurrency caps, the lifeline and health checks count.
            models.Index(
                fields=["queue", "status"],
                condition=Q(status__in=IN_FLIGHT_STATUSES),
                name="task_in_flight_idx",
            ),
            models.Index(fields=["-created_at"], name="task_created_idx"),
            models.Index(fields=["status", "-created_at"], name="task_status_created_idx"),
            models.Index(fields=["queue", "-created_at"], name="task_queue_created_idx"),
            models.Index(fields=["name", "-created_at"], name="task_name_created_idx"),
            # ?type= in the API and the admin, newest first; never updated after the insert.
            models.Index(fields=["task_type", "-created_at"], name="task_type_created_idx"),
            models.Index(fields=["status", "completed_at"], name="task_finished_idx"),
            models.Index(fields=["correlation_id"], name="task_correlation_idx"),
            # Partial where most rows hold nothing: every row version written (insert, dispatch,
            # outcome) skips these indexes, measured +12 % on bulk scheduling. A lookup by a
            # value (user_id = 'u1', parent_id = …) implies the condition, so it still uses them.
            models.Index(fields=["user_id"], condition=Q(user_id__gt=""), name="task_user_idx"),
            models.Index(
                fields=["dedup_key", "-completed_at"],
                condition=Q(dedup_key__isnull=False),
                name="task_dedup_idx",
            ),
            models.Index(
                fields=["parent"], condition=Q(parent__isnull=False), name="task_parent_idx"
            ),
            models.Index(
                fields=["compensates"],
                condition=Q(compensates__isnull=False),
                name="task_compensates_idx",
            ),
            models.Index(
                fields=["workflow_run", "status"],
                condition=Q(workflow_run__isnull=False),
                name="task_workflow_idx",
            ),
        ]
        constraints = [
            # Deduplication is a constraint, not check-then-insert: racing callers can't both win.
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(dedup_key__isnull=False) & Q(status__in=ACTIVE_STATUSES),
                name="task_active_dedup_key_unique",
            ),
            models.UniqueConstraint(
                fields=["workflow_run", "step_key"],
                condition=Q(workflow_run__isnull=False),
                name="task_workflow_step_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class EventKind(models.TextChoices):
    CREATED = "created"
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    COMPLETED = "completed"
    RETRYING = "retrying"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    RECOVERED = "recovered"  # the lifeline returned a lost attempt or message to the queue
    REQUEUED = "requeued"  # an operator sent a finished task around again
    BLOCKED = "blocked"  # a workflow step waits for its dependencies (or a parent for children)
    RELEASED = "released"  # a blocked step's dependencies are met: it may run
    SKIPPED = "skipped"  # a blocked step will not run: its trigger rule was not met


class TaskEvent(models.Model):
    """The audit trail: one row per transition, in the order it happened."""

    # No database constraint: events are written only by the engine, in the transaction that
    # writes their task, and deleted with it (Django's cascade). The constraint's check locked
    # the task row for every event, and its cached plan could degrade to a sequential scan per
    # event (a 20,000-task schedule_many committed in 11 s on a freshly emptied table).
    task = models.ForeignKey(
        Task,
        on_delete=models.CASCADE,
        related_name="events",
        db_constraint=False,
        db_index=False,  # taskevent_task_idx (task, id) serves every lookup by task
    )
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    attempt = models.PositiveIntegerField(default=0)
    at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "id"], name="taskevent_task_idx")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.attempt} of {self.task_id}"


class TaskLog(models.Model):
    """A line a handler logged through ``ctx.logger``."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="logs")
    attempt = models.PositiveIntegerField(default=0)
    level = models.CharField(max_length=10)
    message = models.TextField()
    at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "id"], name="tasklog_task_idx")]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class DeadLetter(models.Model):
    """A task that ran out of attempts or failed permanently, kept until an operator acts."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="dead_letters")
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["queue", "-created_at"], name="deadletter_queue_idx")]

    def __str__(self) -> str:
        return f"dead letter of {self.task_name} {self.task_id}"


class QueueState(models.Model):
    """Operator-controlled state of a queue; lives in the database so it survives restarts."""

    name = models.CharField(max_length=100, primary_key=True)
    paused = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The admin's "Queues" page is the dashboard of every declared queue.
        verbose_name, verbose_name_plural = "queue", "queues"

    def __str__(self) -> str:
        return f"{self.name} ({'paused' if self.paused else 'active'})"


class WorkerProcess(models.Model):
    """A live (or recently live) worker process and its heartbeat."""

    id = models.CharField(max_length=200, primary_key=True)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    threads = models.PositiveIntegerField(default=1)
    broker_id = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField()
    last_heartbeat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "worker processes"
        indexes = [models.Index(fields=["last_heartbeat_at"], name="worker_heartbeat_idx")]

    def __str__(self) -> str:
        return self.id


class LeaderLease(models.Model):
    """Which process leads a role that runs once per deployment (the dispatcher and its
    lifeline), and until when: a leader that stops renewing loses it (taskhub.engine.leadership)."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200)
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder}"


class ScheduleKind(models.TextChoices):
    CRON = "cron"  # a cron expression (5 fields, or 6 with seconds)
    INTERVAL = "interval"  # every N seconds, counted from anchor_at
    ONCE = "once"  # one run at run_at


class ScheduleSource(models.TextChoices):
    CODE = "code"  # declared in code (taskhub.scheduler.cron); definition synced at scheduler start
    DATABASE = "database"  # created by an operator (admin, API, command line)


class TaskSchedule(models.Model):
    """Recurring (or one-off) work: which task to schedule, with what payload, and when."""

    name = models.CharField(max_length=200, unique=True)
    task_name = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    kind = models.CharField(max_length=16, choices=ScheduleKind.choices)
    cron = models.CharField(max_length=200, blank=True, default="")
    interval_seconds = models.FloatField(null=True, blank=True)
    run_at = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    anchor_at = models.DateTimeField(help_text="Interval slots are counted from here")
    enabled = models.BooleanField(default=True)
    source = models.CharField(
        max_length=16, choices=ScheduleSource.choices, default=ScheduleSource.DATABASE
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="Slot of the last run")
    last_task_id = models.UUIDField(null=True, blank=True)
    last_status = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(
                fields=["next_run_at"], condition=Q(enabled=True), name="schedule_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def when(self) -> str:
        """The definition in words: the cron expression, the interval, or the one-off time."""
        if self.kind == ScheduleKind.CRON:
            return self.cron
        if self.kind == ScheduleKind.INTERVAL:
            return f"every {self.interval_seconds:g}s"
        return f"once at {self.run_at.isoformat() if self.run_at else '?'}"


class RunStatus(models.TextChoices):
    # While its task lives, a run mirrors the task's status (pending … cancelled); besides:
    SKIPPED = "skipped"  # the slot was missed by more than the grace time; nothing scheduled
    ERROR = "error"  # the task could not be scheduled (unknown task, invalid payload)
    PRUNED = "pruned"  # the task row was pruned before its outcome was read


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual"  # "run now"


class ScheduleRun(models.Model):
    """One fired slot of a schedule and the task it scheduled.

    (schedule, slot) is unique and the row is inserted in the same transaction as the task, so
    however many scheduler processes race for a slot, or crash half-way, it fires exactly once.
    """

    schedule = models.ForeignKey(TaskSchedule, on_delete=models.CASCADE, related_name="runs")
    slot = models.DateTimeField()
    trigger = models.CharField(
        max_length=16, choices=RunTrigger.choices, default=RunTrigger.SCHEDULE
    )
    # Not a foreign key: the pruner deletes finished tasks with raw deletes, runs outlive them.
    task_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=16, default=TaskStatus.PENDING)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-slot"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "slot"], name="schedule_run_slot_unique")
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="schedule_run_status_idx")]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.slot.isoformat()} ({self.status})"


class OperatorAction(models.Model):
    """The operator audit log: who did what, when, through which surface.

    Written by every admin action and every mutating API call, in the same transaction as the
    change it records, so a rolled-back action leaves no audit row and a committed one always has.
    """

    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: the user's name as it was (kept when the user is deleted)
    username = models.CharField(max_length=150, blank=True, default="")
    source = models.CharField(max_length=16)  # admin | api | cli
    action = models.CharField(max_length=64)  # e.g. task.retry, queue.pause
    target_type = models.CharField(max_length=32, blank=True, default="")
    target_id = models.CharField(max_length=200, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="opaction_target_idx")]

    def __str__(self) -> str:
        who = self.username or "system"
        return f"{who} {self.action} {self.target_id} at {self.at:%Y-%m-%d %H:%M:%S}"


from .workflows.models import (  # noqa: E402, F401  (the workflows package's models, same app)
    StepEdge,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowRun,
    WorkflowStatus,
)
