"""Django's Tasks framework (``django.tasks`` on Django 6, the ``django_tasks`` backport on 5.2)
on taskhub. Add ``"taskhub.contrib.django_tasks"`` to INSTALLED_APPS and name
``taskhub.contrib.django_tasks.TaskhubBackend`` as a TASKS backend; see backend.py.

Imports are lazy: Django imports this package while its app registry is still loading.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "TaskhubBackend":
        from .backend import TaskhubBackend  # on use: see above

        return TaskhubBackend
    raise AttributeError(name)


__all__ = ["TaskhubBackend"]
