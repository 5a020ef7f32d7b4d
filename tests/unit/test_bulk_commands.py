"""``manage.py taskhub tasks retry|cancel|delete``: the count first, a question before acting
(``--yes`` skips it; no terminal and no ``--yes`` is exit 2), a progress bar, one audit record;
bad arguments exit 2 and change nothing."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from taskhub.engine.enqueue import schedule
from taskhub.models import OperatorAction, Task
from tests.support import statuses, task_in

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    """Standard input as a person at a terminal answers."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def failed_and_done():
    failed = [task_in("failed", correlation_id="emails") for _ in range(3)]
    task_in("completed", correlation_id="emails")
    task_in("failed", correlation_id="other")
    return failed


def test_yes_acts_without_asking_and_draws_a_progress_bar(capsys, failed_and_done):
    call_command("taskhub", "tasks", "retry", "--correlation-id", "emails", "--yes", "--batch", "2")

    out, err = capsys.readouterr()
    assert "4 tasks match; 3 can be retried" in out
    assert "retried 3 tasks; 1 skipped" in out
    assert err.count("\r[") == 2 and "4/4" in err  # one redraw per batch of 2
    assert statuses() == ["completed", "failed", "pending", "pending", "pending"]
    action = OperatorAction.objects.get()
    assert (action.source, action.action, action.username) == ("cli", "task.bulk_retry", "")
    assert action.details["filter"] == {"correlation_id": "emails"}
    assert action.details["acted"] == 3


def test_it_asks_at_a_terminal_and_a_no_changes_nothing(capsys, monkeypatch, failed_and_done):
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))

    with pytest.raises(SystemExit) as stopped:
        call_command("taskhub", "tasks", "retry", "--correlation-id", "emails")

    assert stopped.value.code == 1
    out = capsys.readouterr().out
    assert "Retry 3 tasks? [y/N]" in out and "nothing changed" in out
    assert statuses().count("failed") == 4 and not OperatorAction.objects.exists()


def test_a_yes_at_the_terminal_acts(capsys, monkeypatch, failed_and_done):
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))

    call_command("taskhub", "tasks", "retry", "--status", "failed", "--queue", "default")

    assert "retried 4 tasks; 0 skipped" in capsys.readouterr().out
    assert statuses().count("pending") == 4


def test_without_a_terminal_and_without_yes_it_exits_2_and_changes_nothing(
    monkeypatch, failed_and_done
):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped: not a person answering

    with pytest.raises(CommandError) as refused:
        call_command("taskhub", "tasks", "delete", "--status", "failed")

    assert refused.value.returncode == 2 and "--yes" in str(refused.value)
    assert Task.objects.count() == 5 and not OperatorAction.objects.exists()


def test_a_dry_run_only_counts(capsys, failed_and_done):
    call_command("taskhub", "tasks", "delete", "--name", "taskhub.ping", "--dry-run")

    assert "5 tasks match; 5 can be deleted" in capsys.readouterr().out
    assert Task.objects.count() == 5 and not OperatorAction.objects.exists()


def test_cancel_and_delete_follow_the_status_rules(capsys):
    waiting = schedule("taskhub.ping", {}, delay=600)
    running = task_in("running")
    done = task_in("completed")

    call_command("taskhub", "tasks", "cancel", "--queue", "default", "--yes")
    call_command("taskhub", "tasks", "delete", "--status", "cancelled,completed", "--yes")

    out = capsys.readouterr().out
    assert "cancelled 2 tasks; 1 skipped" in out and "deleted 2 tasks" in out
    assert list(Task.objects.values_list("id", flat=True)) == [running.id]
    assert Task.objects.get().cancel_requested
    assert not Task.objects.filter(id__in=[waiting.id, done.id]).exists()
    assert [a.action for a in OperatorAction.objects.order_by("id")] == [
        "task.bulk_cancel",
        "task.bulk_delete",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--all"),  # no filter: every task, only when said
        (["--status", "exploded"], "--status"),
        (["--created-after", "yesterday"], "--created-after"),
        (["--queue", "default", "--batch", "0"], "--batch"),
    ],
)
def test_bad_arguments_exit_2_and_change_nothing(failed_and_done, args, message):
    with pytest.raises(CommandError) as refused:
        call_command("taskhub", "tasks", "delete", "--yes", *args)

    assert refused.value.returncode == 2 and message in str(refused.value)
    assert Task.objects.count() == 5 and not OperatorAction.objects.exists()


def test_all_acts_on_every_task_when_said(capsys, failed_and_done):
    call_command("taskhub", "tasks", "delete", "--all", "--yes")

    assert "deleted 5 tasks" in capsys.readouterr().out and not Task.objects.exists()
    assert OperatorAction.objects.get().details["filter"] == {"all": True}
