"""taskhub: durable background tasks for Django.

Public API::

    from taskhub import task, schedule, schedule_many, TaskContext, PermanentError
    from taskhub import Schedule, Exponential, Linear
    from taskhub import workflow, start_workflow, WorkflowBuilder
    from taskhub import TaskStatus, WorkflowStatus  # the states of a task and of a workflow run
    from taskhub import TaskType  # what kind of work a task is: @task(..., type=TaskType.DATA_SYNC)

Domain apps read tasks and runs through taskhub.console.services (the "seams" section there),
never through taskhub.models or the engine's modules (.importlinter).
"""

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "task",
    "schedule",
    "schedule_many",
    "TaskContext",
    "PermanentError",
    "TaskCancelled",
    "InvalidTaskRequest",
    "Schedule",
    "Exponential",
    "Linear",
    "workflow",
    "start_workflow",
    "WorkflowBuilder",
    "TaskStatus",
    "WorkflowStatus",
    "TaskType",
]

_EXPORTS = {
    "task": "taskhub.definitions.registry",
    "schedule": "taskhub.engine.enqueue",
    "schedule_many": "taskhub.engine.enqueue",
    "TaskContext": "taskhub.engine.context",
    "PermanentError": "taskhub.errors",
    "TaskCancelled": "taskhub.errors",
    "InvalidTaskRequest": "taskhub.errors",
    "Schedule": "taskhub.definitions.retry",
    "Exponential": "taskhub.definitions.retry",
    "Linear": "taskhub.definitions.retry",
    "workflow": "taskhub.workflows.builder",
    "start_workflow": "taskhub.workflows.start",
    "WorkflowBuilder": "taskhub.workflows.builder",
    "TaskStatus": "taskhub.models",
    "WorkflowStatus": "taskhub.models",
    "TaskType": "taskhub.definitions.task_types",
}

if TYPE_CHECKING:
    from .definitions.registry import task
    from .definitions.retry import Exponential, Linear, Schedule
    from .definitions.task_types import TaskType
    from .engine.context import TaskContext
    from .engine.enqueue import schedule, schedule_many
    from .errors import InvalidTaskRequest, PermanentError, TaskCancelled
    from .models import TaskStatus, WorkflowStatus
    from .workflows.builder import WorkflowBuilder, workflow
    from .workflows.start import start_workflow


def __getattr__(name: str) -> Any:
    # Lazy so that importing taskhub (e.g. from settings) doesn't import Django models early.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
