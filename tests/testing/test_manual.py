"""Manual mode and the assertion helpers (taskhub.testing, docs/testing.md): scheduling writes
rows that wait; the test asserts what was scheduled and drains it when it chooses."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.db import transaction
from django.test import override_settings

from taskhub import schedule
from taskhub.conf import taskhub_settings
from taskhub.errors import UnknownTask
from taskhub.models import Task
from taskhub.testing import (
    assert_scheduled,
    drain,
    refute_scheduled,
    scheduled_tasks,
    testing_mode,
)

from .tasks import Greeting, calls

pytestmark = pytest.mark.django_db(transaction=True)


def test_scheduled_tasks_wait_until_the_test_drains_them(taskhub_manual):
    with transaction.atomic():
        task = schedule("testing.greet", {"to": "ada"})

    assert calls["testing.greet"] == []
    assert Task.objects.get(id=task.id).status == "pending"

    drained = taskhub_manual.drain()

    assert drained.counts == {"completed": 1}
    assert [(a.task_id, a.name, a.attempt) for a in drained.attempts] == [
        (str(task.id), "testing.greet", 1)
    ]
    assert Task.objects.get(id=task.id).status == "completed"
    assert len(taskhub_manual.drain()) == 0  # nothing left


def test_drain_of_one_queue_leaves_the_others(taskhub_manual):
    schedule("testing.greet", {"to": "ada"})
    schedule("testing.other", {"to": "bob"})

    assert drain("testing-other").counts == {"completed": 1}
    assert calls["testing.greet"] == [] and len(calls["testing.other"]) == 1
    assert drain(["testing", "testing-other"]).counts == {"completed": 1}


def test_drain_runs_what_the_drained_tasks_schedule(taskhub_manual):
    schedule("testing.chain", {"to": "bob"})

    drained = drain()

    assert [a.name for a in drained.attempts] == ["testing.chain", "testing.other"]
    assert_scheduled("testing.other", status="completed")


def test_raise_errors_reraises_a_handler_failure_once_it_is_recorded(taskhub_manual):
    task = schedule("testing.always_fails", {})

    with pytest.raises(RuntimeError, match="boom on attempt 1"):
        drain(raise_errors=True)

    task.refresh_from_db()
    assert (task.status, task.error) == ("retrying", "RuntimeError: boom on attempt 1")


def test_drain_refuses_to_run_inside_a_task_it_runs(taskhub_manual):
    from taskhub import task as define

    @define("testing.drains", queue="testing")
    def drains(payload: dict) -> None:
        drain()

    schedule("testing.drains", {})

    (attempt,) = drain().attempts
    assert attempt.status == "retrying"
    assert "cannot be called by a task that drain() is running" in attempt.error


def test_assert_scheduled_matches_name_payload_subset_count_and_fields(taskhub_manual):
    schedule("testing.greet", {"to": "ada"}, correlation_id="signup-1", user_id=1)
    schedule("testing.greet", {"to": "bob", "excited": True}, correlation_id="signup-2")
    schedule("testing.other", {"to": "ada"})

    found = assert_scheduled("testing.greet", count=2)
    assert [t.payload["to"] for t in found] == ["ada", "bob"]  # oldest first
    assert_scheduled("testing.greet", {"to": "ada"})  # the keys given, the rest ignored
    refute_scheduled("testing.greet", {"to": "ada", "excited": False})  # stored as given
    # A model is compared with the payload as the handler gets it, defaults filled in.
    assert_scheduled("testing.greet", Greeting(to="ada"), count=1)
    assert_scheduled("testing.greet", Greeting(to="bob", excited=True), count=1)
    refute_scheduled("testing.greet", Greeting(to="bob"))
    assert_scheduled("testing.greet", correlation_id="signup-2", count=1)
    assert_scheduled("testing.greet", user_id="1", count=1)
    assert_scheduled(queue="testing-other", count=1)
    assert_scheduled(count=3)
    refute_scheduled("testing.greet", {"to": "carol"})
    refute_scheduled("testing.greet", {"to": "ada", "excited": True})
    refute_scheduled("testing.chain")
    assert scheduled_tasks("testing.greet", {"nope": 1}) == []


def test_assertions_say_what_is_there_when_they_fail(taskhub_manual):
    schedule("testing.greet", {"to": "ada"})

    with pytest.raises(AssertionError) as wrong_payload:
        assert_scheduled("testing.greet", {"to": "bob"})
    message = str(wrong_payload.value)
    assert message.startswith(
        "expected at least 1 unfinished task 'testing.greet' with payload containing "
        "{'to': 'bob'}, found 0\n"
    )
    assert "  testing.greet [pending] queue=testing payload={'to': 'ada'}" in message

    with pytest.raises(AssertionError, match="expected exactly 2 .* found 1"):
        assert_scheduled("testing.greet", count=2)
    with pytest.raises(
        AssertionError, match="expected no unfinished task 'testing.greet', found 1"
    ):
        refute_scheduled("testing.greet")
    with pytest.raises(AssertionError, match="there are no such tasks at all"):
        assert_scheduled("testing.other")


def test_finished_tasks_are_not_scheduled_unless_a_status_is_asked_for(taskhub_manual):
    schedule("testing.greet", {"to": "ada"})
    assert_scheduled("testing.greet", count=1)

    drain()

    refute_scheduled("testing.greet")  # it ran: no longer waiting
    assert_scheduled("testing.greet", status="completed", count=1)
    assert_scheduled("testing.greet", status=["completed", "failed"], count=1)
    assert_scheduled("testing.greet", status="any", count=1)
    with pytest.raises(ValueError, match="unknown task status"):
        scheduled_tasks("testing.greet", status="done")


def test_a_misspelt_task_name_is_an_error_not_a_silent_pass(taskhub_manual):
    with pytest.raises(UnknownTask):
        refute_scheduled("testing.gret")


def test_a_rolled_back_task_is_never_scheduled(taskhub_manual):
    with pytest.raises(LookupError), transaction.atomic():
        schedule("testing.greet", {"to": "ada"})
        raise LookupError("the caller's work failed")

    refute_scheduled("testing.greet", status="any")


def test_the_fixtures_and_testing_mode_set_the_mode_and_restore_it():
    assert taskhub_settings.TESTING == ""
    with testing_mode("manual"):
        assert taskhub_settings.TESTING == "manual"
        with testing_mode("immediate"):
            assert taskhub_settings.TESTING == "immediate"
            assert taskhub_settings.KEY_PREFIX  # the other TASKHUB settings are kept
        assert taskhub_settings.TESTING == "manual"
    assert taskhub_settings.TESTING == ""
    with pytest.raises(ValueError, match="unknown testing mode"):
        testing_mode("eager")


@testing_mode("immediate")
def test_testing_mode_decorates_a_test():
    schedule("testing.greet", {"to": "ada"})
    assert len(calls["testing.greet"]) == 1


def test_the_fixtures_name_their_mode(taskhub_manual):
    assert taskhub_manual.mode == taskhub_settings.TESTING == "manual"


def test_a_wrong_testing_mode_in_settings_is_reported_by_the_system_check():
    with override_settings(TASKHUB={"TESTING": "eager"}):
        errors = [m for m in run_checks() if m.id == "taskhub.E002"]
    assert len(errors) == 1
    assert "'eager'" in errors[0].msg and "'immediate'" in errors[0].hint
    with override_settings(TASKHUB={"TESTING": "immediate"}):
        assert not [m for m in run_checks() if m.id.startswith("taskhub.")]


def test_a_django_tasks_enqueue_waits_for_the_drain(taskhub_manual):
    from .djtasks import add

    result = add.enqueue(2, 3)
    assert_scheduled("django_tasks.run", status="pending", count=1)

    assert drain().counts == {"completed": 1}
    result.refresh()
    assert (result.status, result.return_value) == ("SUCCESSFUL", 5)


@pytest.mark.parametrize("mode", ["", "manual"])
def test_wake_ups_go_to_redis_only_while_no_testing_mode_is_set(mode, monkeypatch):
    from taskhub.engine import broker

    sent = []
    monkeypatch.setattr(broker._waker, "wake", lambda queues: sent.append(queues))
    with testing_mode(mode):
        task = schedule("testing.greet", {"to": "ada"})

    assert sent == ([("testing",)] if mode == "" else [])
    assert calls["testing.greet"] == []  # neither mode runs anything by itself
    assert Task.objects.get(id=task.id).status == "pending"
