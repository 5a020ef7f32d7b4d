"""What a handler gets besides its payload: who it is, which attempt, and ways to report."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import TaskCancelled
from ..safety.storable import storable_text
from . import hooks

if TYPE_CHECKING:
    from .outcomes import OutcomeWriter

structured_logger = logging.getLogger("taskhub.task")


class TaskLogger:
    """Writes a handler's log lines as TaskLog rows and as structured log records."""

    def __init__(self, ctx: TaskContext):
        self._ctx = ctx

    def _log(self, level: int, message: str, *args: Any) -> None:
        # The same text in the task's log rows and in the process's log (taskhub.safety.storable).
        text = storable_text(str(message % args if args else message))
        self._ctx._writer.record_log(
            self._ctx.task_id, self._ctx.attempt, logging.getLevelName(level), text
        )
        structured_logger.log(
            level,
            text,
            extra={
                "task_id": self._ctx.task_id,
                "task_name": self._ctx.name,
                "attempt": self._ctx.attempt,
                "correlation_id": self._ctx.correlation_id,
            },
        )

    def debug(self, message: str, *args: Any) -> None:
        self._log(logging.DEBUG, message, *args)

    def info(self, message: str, *args: Any) -> None:
        self._log(logging.INFO, message, *args)

    def warning(self, message: str, *args: Any) -> None:
        self._log(logging.WARNING, message, *args)

    def error(self, message: str, *args: Any) -> None:
        self._log(logging.ERROR, message, *args)


@dataclass(kw_only=True)
class TaskContext:
    """Handed to every handler as ``ctx``.

    ``idempotency_key`` is stable across every attempt of the task: pass it to providers so a
    retried call is not applied twice.
    """

    task_id: str
    name: str
    queue: str
    attempt: int
    max_attempts: int
    correlation_id: str
    user_id: str
    _writer: OutcomeWriter = field(repr=False)
    _cancel_checked_at: float = field(default=0.0, repr=False)
    cancel_seen: bool = field(default=False, repr=False)
    #: children spawned by this attempt, inserted with its outcome (see :meth:`spawn`)
    spawned: list = field(default_factory=list, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.logger = TaskLogger(self)

    def _load(self, name: str, loader: Any) -> Any:
        if name not in self._cache:
            self._cache[name] = loader(self.task_id)
        return self._cache[name]

    @property
    def workflow(self) -> Any:
        """The run this step belongs to (name, input, shared context), or None."""
        return self._load("workflow", hooks.workflow_info)

    @property
    def results(self) -> dict[str, Any]:
        """Results of the steps this one depends on, by step key (a fan-out's as a list)."""
        return self._load("results", hooks.dependency_results)

    @property
    def child_results(self) -> list[Any]:
        """Results of the children this task spawned (in a later attempt or a dependent)."""
        return self._load("children", hooks.child_results)

    @property
    def forward(self) -> Any:
        """In a compensation: the step being undone (payload, result, idempotency key)."""
        return self._load("forward", hooks.forward_step)

    def spawn(self, task: Any, payload: dict[str, Any] | None = None, **options: Any) -> None:
        """Start a child task when this attempt succeeds; this task then waits, ``blocked``,
        until every child has ended, and completes (or fails, if a child failed) after them.

        The payload is checked now (InvalidTaskRequest); if the attempt fails, nothing is
        spawned — a retry spawns afresh. One attempt may spawn at most ``MAX_CHILDREN``
        children: one more raises InvalidTaskRequest, which fails the task at once.
        """
        self.spawned.append(hooks.prepare_child(task, payload, options, spawned=len(self.spawned)))

    @property
    def idempotency_key(self) -> str:
        return self.task_id

    @property
    def task_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.task_id)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def set_progress(self, percent: float) -> None:
        """Report progress, 0 to 100; the latest value is written within the flush window."""
        value = max(0, min(100, int(percent)))
        self._writer.record_progress(self.task_id, self.attempt, value)

    @property
    def cancelled(self) -> bool:
        """True once an operator asked this running task to stop (checked at most every 0.2 s)."""
        if self.cancel_seen:
            return True
        now = time.monotonic()
        if now - self._cancel_checked_at >= 0.2:
            # Imported on use: TaskContext stays importable before Django's models load
            # (claims reaches them through taskhub.engine.pause).
            from .claims import is_cancel_requested

            self._cancel_checked_at = now
            self.cancel_seen = is_cancel_requested(self.task_id, self.attempt)
        return self.cancel_seen

    def check_cancelled(self) -> None:
        """A checkpoint: raise TaskCancelled if the task was cancelled."""
        if self.cancelled:
            raise TaskCancelled(f"task {self.task_id} was cancelled")
