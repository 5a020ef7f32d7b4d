"""``TaskhubBackend``: Django's Tasks framework on taskhub.

``@task`` + ``.enqueue()`` becomes one taskhub row (visible in the admin and API), run by the same
Dramatiq workers, retried by the alias's policy and dead-lettered like any taskhub task::

    TASKS = {
        "default": {
            "BACKEND": "taskhub.contrib.django_tasks.TaskhubBackend",
            "QUEUES": ["default", "email"],   # optional: default is every taskhub queue
            "OPTIONS": {"MAX_ATTEMPTS": 3, "RETRY": [1, 5, 15], "TIMEOUT": 60},
        }
    }

OPTIONS (each optional, falling back to taskhub's settings): ``MAX_ATTEMPTS`` (1–100; default
TASKHUB DEFAULT_MAX_ATTEMPTS), ``RETRY`` (a list of delays, or ``{"kind": "exponential",
"base": 2, "cap": 60}`` as in taskhub.definitions.retry.policy_from_config), ``TIMEOUT`` (seconds).

Priority −100…100 is taskhub's own range, so it is stored unchanged (higher runs first within a
queue). ``run_after`` becomes the row's ``scheduled_at``. The row is inserted in the caller's
transaction and only dispatched after commit: a task enqueued in a transaction that rolls back
never runs, and get_result inside the transaction already sees it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.apps import apps
from django.core import checks
from django.utils import timezone

from taskhub.definitions.payloads import validate_payload
from taskhub.definitions.registry import declared_queues
from taskhub.engine.enqueue import insert_rows
from taskhub.errors import InvalidTaskRequest
from taskhub.models import Task as TaskRow

from . import compat
from .results import load_result
from .runner import register_definition

APP_NAME = "taskhub.contrib.django_tasks"


class TaskhubBackend(compat.BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            self.queues = set()  # every queue taskhub declares (checked in validate_task)
        try:
            self.definition = register_definition(alias, self.options)
        except (TypeError, ValueError) as exc:
            message = f"TASKS[{alias!r}]['OPTIONS'] is invalid: {exc}"
            raise compat.InvalidTaskBackend(message) from exc

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        if task.queue_name not in declared_queues():
            raise compat.InvalidTask(
                f"Queue '{task.queue_name}' is not a taskhub queue: declare it in "
                "TASKHUB['QUEUES']."
            )

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        now = timezone.now()
        payload = {
            "module_path": task.module_path,
            "args": compat.normalize_json(args),
            "kwargs": compat.normalize_json(kwargs),
            "takes_context": task.takes_context,
            "backend": self.alias,
            "queue_name": task.queue_name,
            "priority": task.priority,
            "run_after": task.run_after.isoformat() if task.run_after else None,
            "enqueued_at": now.isoformat(),
        }
        definition = self.definition
        try:
            payload = validate_payload(definition, payload)
        except InvalidTaskRequest as exc:
            raise compat.InvalidTask(str(exc)) from exc
        row = TaskRow(
            id=uuid.uuid4(),
            name=definition.name,
            queue=task.queue_name,
            payload=payload,
            priority=task.priority,
            max_attempts=definition.effective_max_attempts,
            timeout=definition.effective_timeout,
            # run_after as given, even if past: equal priorities then start in run_after order.
            scheduled_at=task.run_after or now,
            created_at=now,
            updated_at=now,
        )
        insert_rows([row])  # in the caller's transaction; dispatched only after commit
        result = compat.TaskResult(
            task=task,
            id=str(row.id),
            status=compat.TaskResultStatus.READY,
            enqueued_at=now,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=payload["args"],
            kwargs=payload["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        compat.task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        return load_result(result_id)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = []
        if not apps.is_installed(APP_NAME):
            errors.append(
                checks.Error(
                    f"{APP_NAME} is not in INSTALLED_APPS",
                    hint="Workers register the task type that runs Django tasks from its ready().",
                    id="taskhub_django_tasks.E001",
                )
            )
        known = set(declared_queues())
        for queue in sorted(self.queues - known):
            errors.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] lists queue {queue!r}, which taskhub does not declare",
                    hint="Add it to TASKHUB['QUEUES'] so the dispatcher and workers serve it.",
                    id="taskhub_django_tasks.E002",
                )
            )
        return errors
