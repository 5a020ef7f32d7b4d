"""Task definitions: what a task is called, where it runs, how its payload looks, how it retries."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..conf import taskhub_settings
from ..errors import InvalidTaskRequest, UnknownTask
from .priorities import parse_priority
from .retry import RetryPolicy, Schedule
from .task_types import TaskType, parse_task_type


@dataclass(frozen=True, kw_only=True)
class TaskDefinition:
    """A registered task. Created by the :func:`task` decorator; immutable."""

    name: str
    func: Callable[..., Any]
    queue: str = "default"
    #: what kind of work it is, stored on each of its rows (``Task.task_type``)
    task_type: TaskType = TaskType.OTHER
    schema: type[BaseModel] | None = None
    priority: int = 0
    max_attempts: int | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    #: at most this many starts per second across all workers (None: no limit)
    rate_limit: float | None = None
    #: payload fields never shown by the API, the admin or logs (e.g. tokens, keys)
    secret_fields: tuple[str, ...] = ()
    description: str = ""
    takes_context: bool = field(default=True)
    #: may be scheduled from outside the application (API, CLI, admin, stored schedules);
    #: False for steps only the owning code may start (money movement, workflow steps)
    external: bool = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling the definition calls the handler directly, in-process (handy in tests)."""
        return self.func(*args, **kwargs)

    @property
    def effective_max_attempts(self) -> int:
        return self.max_attempts or taskhub_settings.DEFAULT_MAX_ATTEMPTS

    @property
    def effective_timeout(self) -> float:
        return self.timeout or taskhub_settings.DEFAULT_TIMEOUT

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.retry or Schedule(tuple(taskhub_settings.DEFAULT_RETRY_SCHEDULE))


_registry: dict[str, TaskDefinition] = {}


def task(
    name: str,
    *,
    queue: str = "default",
    type: TaskType | str | None = None,  # the name the API and the document use
    schema: type[BaseModel] | None = None,
    priority: str | int = 0,
    max_attempts: int | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    rate_limit: float | None = None,
    secret_fields: tuple[str, ...] = (),
    external: bool = True,
) -> Callable[[Callable[..., Any]], TaskDefinition]:
    """Register a handler as a task.

    ``type`` says what kind of work it is (:class:`TaskType`: ``payment_processing``,
    ``blockchain_transaction``, ``kyc_verification``, ``notification_delivery``,
    ``data_sync``); a task that declares none is ``other``. An unknown type is a ValueError
    here, when the module declaring the task is imported.

    ``external=False`` makes it internal: the API, the CLI and the admin refuse to schedule it
    (see :func:`get_external_definition`); the application's own code schedules it as usual.

    The handler is called as ``handler(payload, ctx)`` — or ``handler(payload)`` if it takes one
    argument — where ``payload`` is an instance of ``schema`` (or the raw dict without one) and
    ``ctx`` is a :class:`taskhub.engine.context.TaskContext`. What it returns is stored as the
    result.
    """

    task_type = parse_task_type(type)

    def register(func: Callable[..., Any]) -> TaskDefinition:
        params = inspect.signature(func).parameters
        definition = TaskDefinition(
            name=name,
            func=func,
            queue=queue,
            task_type=task_type,
            schema=schema,
            priority=parse_priority(priority),
            max_attempts=max_attempts,
            retry=retry,
            timeout=timeout,
            rate_limit=rate_limit,
            secret_fields=tuple(secret_fields),
            description=inspect.getdoc(func) or "",
            takes_context=len(params) >= 2,
            external=external,
        )
        existing = _registry.get(name)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"task name {name!r} is already registered by {existing.func!r}")
        _registry[name] = definition
        return definition

    return register


def get_definition(ref: str | TaskDefinition) -> TaskDefinition:
    """Look a task up by name (or pass a definition through); raise UnknownTask if absent."""
    if isinstance(ref, TaskDefinition):
        return ref
    try:
        return _registry[ref]
    except (KeyError, TypeError):
        raise UnknownTask(f"unknown task {ref!r}", field="task") from None


class InternalTask(InvalidTaskRequest):
    """The task may only be scheduled by the application's own code, not from outside."""


def get_external_definition(ref: str | TaskDefinition) -> TaskDefinition:
    """The definition, for a caller acting for someone outside the application (the API, the
    CLI, the admin, a stored schedule). InternalTask for a task declared ``external=False``: its
    payload names rows (a payment, a Safe transaction) that only the owning code may act on."""
    definition = get_definition(ref)
    if not definition.external:
        raise InternalTask(
            f"task {definition.name!r} is internal: the application schedules it itself; "
            "it cannot be scheduled from the API, the CLI or the admin",
            field="task",
        )
    return definition


def all_definitions() -> dict[str, TaskDefinition]:
    return dict(_registry)


def unregister(name: str) -> None:
    """Remove a task (tests and reloads only)."""
    _registry.pop(name, None)


def declared_queues() -> list[str]:
    """Queues from settings plus any a registered task names."""
    names = set(taskhub_settings.QUEUES) | {d.queue for d in _registry.values()}
    return sorted(names)
