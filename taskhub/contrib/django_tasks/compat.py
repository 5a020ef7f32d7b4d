"""One import point for Django's Tasks framework: ``django.tasks`` (Django 6) when it exists,
else the ``django_tasks`` backport (Django 5.2).

The two differ in names — the backport 0.12 raises ``InvalidTaskError`` /
``InvalidTaskBackendError``, Django 6 and later backports ``InvalidTask`` / ``InvalidTaskBackend``
— so both spellings are exported here and the rest of the package uses only this module.
"""

from __future__ import annotations

import traceback as _traceback
from importlib.util import find_spec

from taskhub.errors import import_extra

if find_spec("django.tasks") is not None:  # Django >= 6.0
    from django.tasks import task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    try:
        from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
    except ImportError:  # pragma: no cover - pre-release spelling
        from django.tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
        from django.tasks.exceptions import InvalidTaskError as InvalidTask

    TASKS_APP = None  # part of Django itself: nothing to add to INSTALLED_APPS
else:  # the backport on Django 5.2: the [django52] extra
    import_extra(
        "django_tasks",
        extra="django52",
        needed_by="taskhub.contrib.django_tasks on Django 5.2",
        package="django-tasks",
    )
    from django_tasks import task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

    try:
        from django_tasks.exceptions import InvalidTask, InvalidTaskBackend
    except ImportError:  # backport 0.12.0
        from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
        from django_tasks.exceptions import InvalidTaskError as InvalidTask

    TASKS_APP = "django_tasks"

#: Both spellings, whichever this installation raises.
InvalidTaskError = InvalidTask
InvalidTaskBackendError = InvalidTaskBackend


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def exception_traceback(exc: BaseException) -> str:
    return "".join(_traceback.format_exception(exc))


__all__ = [
    "TASKS_APP",
    "BaseTaskBackend",
    "InvalidTask",
    "InvalidTaskBackend",
    "InvalidTaskBackendError",
    "InvalidTaskError",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "class_path",
    "exception_traceback",
    "normalize_json",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
