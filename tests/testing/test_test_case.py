"""Tests that run inside one transaction rolled back at the end (Django's ``TestCase``,
pytest-django's ``db``): nothing ever commits there, so immediate mode runs tasks when Django's
``captureOnCommitCallbacks(execute=True)`` (pytest-django: ``django_capture_on_commit_callbacks``)
runs the commit callbacks; manual mode's drain needs no commit at all (docs/testing.md)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import TestCase

from taskhub import schedule
from taskhub.models import Task
from taskhub.testing import assert_scheduled, drain, testing_mode

from .tasks import calls


@pytest.mark.django_db
def test_without_a_commit_immediate_mode_runs_nothing(taskhub_immediate):
    with transaction.atomic():
        task = schedule("testing.greet", {"to": "ada"})

    assert calls["testing.greet"] == []  # the test's own transaction never commits
    assert Task.objects.get(id=task.id).status == "pending"


@pytest.mark.django_db
def test_captured_commit_callbacks_run_the_tasks(
    taskhub_immediate, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            task = schedule("testing.chain", {"to": "bob"})
        try:
            with transaction.atomic():
                schedule("testing.greet", {"to": "rolled back"})
                raise LookupError
        except LookupError:
            pass

    assert Task.objects.get(id=task.id).status == "completed"
    assert Task.objects.get(name="testing.other").status == "completed"  # what it scheduled
    assert calls["testing.greet"] == []  # the rolled-back savepoint's task never existed
    assert not Task.objects.filter(name="testing.greet").exists()


@pytest.mark.django_db
def test_manual_mode_drains_inside_the_test_transaction(taskhub_manual):
    schedule("testing.always_fails", {})

    assert drain("testing", include_delayed=True).counts == {"retrying": 2, "failed": 1}
    assert_scheduled("testing.always_fails", status="failed", attempt=3)


@testing_mode("immediate")
class ImmediateModeInATestCase(TestCase):
    def test_tasks_run_when_the_captured_callbacks_run(self):
        with self.captureOnCommitCallbacks(execute=True):
            task = schedule("testing.greet", {"to": "ada"})
            self.assertEqual(calls["testing.greet"], [])

        task.refresh_from_db()
        self.assertEqual((task.status, task.result["greeted"]), ("completed", "ada"))
        calls.clear()
