"""Driving workflow runs by hand, without workers: end a step the way the worker's outcome
writer does (its final state and the coordinator in one transaction). Shared by the API, admin
and command-line tests of the workflow operations."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from taskhub.models import Task, TaskEvent, TaskStatus
from taskhub.workflows import coordinator
from taskhub.workflows.definitions import create_definition
from taskhub.workflows.models import WorkflowRun

#: charge → ship → notify, the first two undone by test.wf.undo if the run compensates.
SPEC = {
    "initialTask": {
        "key": "charge",
        "type": "test.wf.step",
        "payload": {"name": "$input.order"},
        "compensation": "test.wf.undo",
    },
    "transitions": {
        "ship": {
            "type": "test.wf.step",
            "after": "charge",
            "payload": {"name": "ship"},
            "compensation": "test.wf.undo",
        },
        "notify": {"type": "taskhub.ping", "after": "ship"},
    },
}


def store_orders(name: str = "orders", **options: Any):
    return create_definition(name=name, spec=SPEC, **options)


def step(run: WorkflowRun, key: str) -> Task:
    return Task.objects.get(workflow_run=run, step_key=key)


def end_step(
    run: WorkflowRun, key: str, status: str = TaskStatus.COMPLETED, result=None, error: str = ""
) -> None:
    """``key`` ran once and ended ``status``; the coordinator reacts as it would for a worker."""
    now = timezone.now()
    with transaction.atomic():
        task = step(run, key)
        Task.objects.filter(id=task.id).update(
            status=status,
            result=result,
            error=error,
            attempt=task.attempt + 1,
            started_at=now,
            completed_at=now,
            updated_at=now,
        )
        TaskEvent.objects.create(
            task_id=task.id,
            kind=status,
            attempt=task.attempt + 1,
            at=now,
            data={"error": error} if error else {},
        )
        coordinator.settle([task.id], now=now)


def statuses(run: WorkflowRun) -> dict[str, str]:
    return dict(Task.objects.filter(workflow_run=run).values_list("step_key", "status"))
