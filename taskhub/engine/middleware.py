"""Dramatiq middleware that owns each attempt's state machine around the one taskhub actor.

before_process_message takes the attempt's claim — made when a Redis consumer fetched the
message (taskhub.engine.worker.WorkerRuntime.claim_fetched), or now — and drops a duplicate or
cancelled message and hands back a paused one; the actor runs the handler;
after_process_message asks the task's retry policy and hands the outcome to the process's
outcome writer. Handlers never loop on retries.

django_dramatiq loads middleware while Django's app registry is still filling, so everything
that touches models is imported on first use (taskhub.engine.worker).
"""

from __future__ import annotations

from dramatiq.middleware import Middleware


class TaskTrackingMiddleware(Middleware):
    """Tracks every taskhub attempt run by this worker process."""

    def __init__(self) -> None:
        self._runtime = None

    @property
    def runtime(self):
        if self._runtime is None:
            # Imported on use: django_dramatiq builds the broker, and this middleware, before
            # Django's models load (see the module docstring).
            from .worker import WorkerRuntime

            self._runtime = WorkerRuntime()
        return self._runtime

    def before_worker_boot(self, broker, worker) -> None:
        self.runtime.before_worker_boot(broker, worker)

    def before_worker_shutdown(self, broker, worker) -> None:
        self.runtime.before_worker_shutdown(broker, worker)

    def after_worker_shutdown(self, broker, worker) -> None:
        self.runtime.after_worker_shutdown(broker, worker)

    def before_process_message(self, broker, message) -> None:
        self.runtime.before_process_message(broker, message)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self.runtime.after_process_message(broker, message, result=result, exception=exception)
