"""Exceptions callers and handlers use."""

from __future__ import annotations

import importlib
from types import ModuleType

from django.core.exceptions import ImproperlyConfigured


class TaskhubError(Exception):
    """Base class for taskhub's own errors."""


class InvalidTaskRequest(TaskhubError, ValueError):
    """A request to schedule work was refused; nothing was stored or sent.

    ``field`` names what was wrong (``task``, ``payload``, ``priority`` …) and ``errors`` holds
    field-level details for APIs that report them.
    """

    def __init__(self, message: str, *, field: str = "", errors: dict | None = None):
        super().__init__(message)
        self.field = field
        self.errors = errors or ({field: [message]} if field else {"non_field_errors": [message]})


class UnknownTask(InvalidTaskRequest):
    """No task is registered under that name."""


class TaskNotFound(TaskhubError, LookupError):
    """No task row has that id."""


class InvalidTransition(TaskhubError):
    """The task is not in a state that allows the requested operation."""


class PermanentError(TaskhubError):
    """Raised by a handler for a failure that retrying cannot fix: the task fails at once."""


class TaskCancelled(TaskhubError):
    """Raised at a handler's checkpoint when an operator cancelled the running task."""


class MissingExtra(ImproperlyConfigured, PermanentError):
    """An optional dependency is not installed: the message names the extra that brings it.

    Raised where the dependency is needed, never at import of the whole package. Also a
    :class:`PermanentError`: a handler that needs it fails at once, since retrying cannot
    install it.
    """

    def __init__(self, needed_by: str, package: str, extra: str) -> None:
        super().__init__(f"{needed_by} needs {package}: pip install 'django-taskhub[{extra}]'")
        self.package = package
        self.extra = extra


def import_extra(module: str, *, extra: str, needed_by: str, package: str = "") -> ModuleType:
    """Import ``module``, an optional dependency, or raise :class:`MissingExtra` naming the
    extra that installs it (``package``: its name on PyPI, when it differs from the module's)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only the module (or a parent package) missing means the extra is not installed; an
        # ImportError from inside an installed module is a broken installation, raised as is.
        if exc.name is not None and not _is_parent_or_self(exc.name, module):
            raise
        raise MissingExtra(needed_by, package or module, extra) from exc


def _is_parent_or_self(name: str, module: str) -> bool:
    return module == name or module.startswith(name + ".")
