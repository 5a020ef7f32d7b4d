"""Log lines people can ship: a JSON formatter, and the running task's fields on every line.

While a worker runs an attempt, every record logged on that thread — by the handler, by a
library it calls, by Dramatiq about that message — carries the attempt's ``task_id``,
``task_name``, ``attempt``, ``queue``, ``correlation_id`` and ``user_id``: the engine binds them
here for the attempt (:func:`bind_task`, from ``taskhub.engine.worker``) and the formatter or
the filter reads them back. A context variable, not a thread-local, so that an async handler's
tasks (which copy the context) keep them too.

The project's ``LOGGING`` picks the formatter with ``LOG_FORMAT=json`` (config/settings.py); a
host project names the classes in its own ``LOGGING``::

    "formatters": {"json": {"()": "taskhub.logging.JsonFormatter"}},
    "filters": {"task": {"()": "taskhub.logging.TaskFieldsFilter"}},  # for %(task_id)s formats

This module imports nothing of taskhub or Django: ``LOGGING`` is configured before apps load.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

#: The fields a task's log lines carry, in the order they are written.
TASK_FIELDS = ("task_id", "task_name", "attempt", "queue", "correlation_id", "user_id")

_task: ContextVar[Mapping[str, Any] | None] = ContextVar("taskhub_log_task", default=None)

#: What every LogRecord has of its own; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime"}


def bind_task(fields: Mapping[str, Any]) -> Token:
    """Put a task's fields on the log lines of this context until :func:`unbind_task`."""
    return _task.set({name: fields.get(name) for name in TASK_FIELDS})


def unbind_task(token: Token) -> None:
    try:
        _task.reset(token)
    except ValueError:  # set in another context (never in the worker's flow): clear instead
        _task.set(None)


@contextmanager
def task_fields(**fields: Any) -> Iterator[None]:
    """The task's fields on the log lines written inside the ``with`` block."""
    token = bind_task(fields)
    try:
        yield
    finally:
        unbind_task(token)


def current_task_fields() -> dict[str, Any]:
    """The fields of the task running in this context ({} outside a task)."""
    return dict(_task.get() or {})


class TaskFieldsFilter(logging.Filter):
    """Sets the running task's fields as record attributes (``%(task_id)s`` in a format string);
    attributes a record already has (``extra=``) are kept. Passes every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_task.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``; inside a task its fields (:data:`TASK_FIELDS`, null when the task has none);
    ``extra=`` values; ``exception`` (the formatted traceback) and ``exception_type`` when the
    record carries one, ``stack`` for ``stack_info``. Text is ASCII-escaped JSON, so a newline or
    an unpaired surrogate cannot break the line or the stream's encoding."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        task = _task.get()
        if task is not None or hasattr(record, "task_id"):
            for name in TASK_FIELDS:
                value = getattr(record, name, None)
                if value is None and task is not None:
                    value = task.get(name)
                entry[name] = None if value == "" else value
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and name not in entry and not name.startswith("_"):
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception_type"] = record.exc_info[0].__name__
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=_fallback)


def _fallback(value: Any) -> str:
    """A value JSON has no type for (an ``extra=`` object) is written as its text."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 — a log line must never fail for one value
        return f"<unprintable {type(value).__name__}>"
