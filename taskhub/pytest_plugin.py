"""pytest fixtures for projects that use taskhub (docs/testing.md). Load them from the
project's top-level ``conftest.py``::

    pytest_plugins = ["taskhub.pytest_plugin"]

Fixtures only — no hooks, nothing autouse — so loading the plugin changes no test that does
not ask for one. Each fixture sets ``TASKHUB["TESTING"]`` for its test and yields a
:class:`TaskhubTesting` (``drain``, ``scheduled``, ``assert_scheduled``, ``refute_scheduled``).
Database access is the test's own choice (pytest-django's ``db`` / ``transactional_db`` or
``django_db`` mark); immediate mode runs tasks when a transaction commits, see docs/testing.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


class TaskhubTesting:
    """What the fixtures yield: taskhub.testing's helpers, and the mode the test runs in.
    Each method imports taskhub.testing on use, for the reason given in _in_mode."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def drain(self, queue: Any = None, **options: Any) -> Any:
        from taskhub.testing import drain

        return drain(queue, **options)

    def scheduled(self, name: Any = None, payload: Any = None, **criteria: Any) -> list:
        from taskhub.testing import scheduled_tasks

        return scheduled_tasks(name, payload, **criteria)

    def assert_scheduled(self, name: Any = None, payload: Any = None, **criteria: Any) -> list:
        from taskhub.testing import assert_scheduled

        return assert_scheduled(name, payload, **criteria)

    def refute_scheduled(self, name: Any = None, payload: Any = None, **criteria: Any) -> None:
        from taskhub.testing import refute_scheduled

        refute_scheduled(name, payload, **criteria)


def _in_mode(mode: str) -> Iterator[TaskhubTesting]:
    # Imported here: a conftest loads this plugin before Django is set up.
    from taskhub.testing import testing_mode

    with testing_mode(mode):
        yield TaskhubTesting(mode)


@pytest.fixture
def taskhub_manual() -> Iterator[TaskhubTesting]:
    """Manual mode: scheduled tasks are rows that wait; the test drains them."""
    yield from _in_mode("manual")


@pytest.fixture
def taskhub_immediate() -> Iterator[TaskhubTesting]:
    """Immediate mode: scheduled tasks run in-process after the transaction that scheduled
    them commits."""
    yield from _in_mode("immediate")
