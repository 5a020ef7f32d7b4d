"""``django_tasks.run`` imports only Django Tasks of the installed apps' packages.

The payload's ``module_path`` comes from a stored row: a path outside those packages is refused
before anything is imported (importing runs a module's top level), and what a path names must be
a real Task defined there, not any object that looks like one.
"""

from __future__ import annotations

import sys

import pytest

from taskhub.contrib.django_tasks.results import resolve_task
from tests.contrib import djtasks


class LooksLikeATask:
    """Has what the old duck-typed check looked for, and is not a Task."""

    module_path = f"{__name__}.impostor"

    def func(self) -> None:
        pass

    def call(self) -> None:
        pass


impostor = LooksLikeATask()
#: a real Task re-exported under another name
alias_of_noop = djtasks.noop_task


@pytest.mark.parametrize("module", ["this", "tabnanny"])
def test_a_path_outside_the_installed_apps_is_refused_without_importing_it(module):
    sys.modules.pop(module, None)  # "this" prints the Zen of Python when imported

    with pytest.raises(ImportError, match="outside the installed apps"):
        resolve_task(f"{module}.anything")

    assert module not in sys.modules


@pytest.mark.parametrize("path", [f"{__name__}.impostor", f"{__name__}.alias_of_noop"])
def test_only_a_task_defined_at_that_path_resolves(path):
    with pytest.raises(ImportError, match="is not a Task"):
        resolve_task(path)


def test_a_task_of_an_installed_apps_package_still_resolves():
    assert resolve_task("tests.contrib.djtasks.noop_task") is djtasks.noop_task
