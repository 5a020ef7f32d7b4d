"""``manage.py taskhub workflow-*``: start prints only the run id, show prints JSON, and bad
input exits 2 with a message on stderr and nothing written."""

import json
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from taskhub.models import OperatorAction, Task
from taskhub.workflows.models import WorkflowRun
from tests.workflow_states import end_step, statuses, store_orders

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def orders():
    return store_orders()


def taskhub(capsys, *args) -> str:
    call_command("taskhub", *args)
    return capsys.readouterr().out


def test_workflow_start_prints_only_the_run_id_and_show_prints_it_as_json(capsys):
    out = taskhub(
        capsys,
        "workflow-start",
        "orders",
        "--input",
        '{"order": "o-1"}',
        "--idempotency-key",
        "k-1",
        "--deadline",
        "300",
    )

    run_id = out.strip()
    assert out == f"{run_id}\n" and WorkflowRun.objects.get(id=run_id).deadline_at
    shown = json.loads(taskhub(capsys, "workflow-show", run_id))
    assert shown["id"] == run_id and shown["status"] == "running"
    assert {s["key"]: s["status"] for s in shown["steps"]} == {
        "charge": "pending",
        "ship": "blocked",
        "notify": "blocked",
    }
    for field in ("task_id", "attempts", "result", "task"):
        assert field in shown["steps"][0]
    assert shown["edges"][0]["from"] == "charge" and shown["events"][0]["kind"] == "started"
    assert (
        taskhub(
            capsys,
            "workflow-start",
            "orders",
            "--input",
            '{"order": "o-1"}',
            "--idempotency-key",
            "k-1",
        )
        == out
    )
    assert WorkflowRun.objects.count() == 1
    action = OperatorAction.objects.order_by("id").first()
    assert (action.source, action.action, action.target_id) == ("cli", "workflow.start", run_id)


@pytest.mark.parametrize(
    "args,message",
    [
        (["workflow-start", "nope"], "unknown workflow 'nope'"),
        (["workflow-start", "orders", "--input", "{not json"], "--input is not valid JSON"),
        (["workflow-start", "orders", "--input", "[1]"], "input must be a JSON object"),
        (["workflow-start", "orders", "--input", "{}"], "the input has no 'order'"),
        (
            ["workflow-start", "orders", "--input", '{"order": 1}', "--deadline", "-5"],
            "deadline must be a positive number",
        ),
        (["workflow-show", "not-a-uuid"], "no workflow run"),
        (["workflow-show", str(uuid.uuid4())], "no workflow run"),
        (["workflow-cancel", str(uuid.uuid4())], "no workflow run"),
        (["workflow-retry", "nope"], "no workflow run"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(args, message):
    with pytest.raises(CommandError) as caught:
        call_command("taskhub", *args)

    assert caught.value.returncode == 2
    assert message in str(caught.value)
    assert not WorkflowRun.objects.exists() and not Task.objects.exists()
    assert not OperatorAction.objects.exists()


def test_list_cancel_and_retry_from_the_command_line(capsys):
    first = taskhub(capsys, "workflow-start", "orders", "--input", '{"order": "1"}').strip()
    second = taskhub(capsys, "workflow-start", "orders", "--input", '{"order": "2"}').strip()

    # nothing had completed, so there is nothing to undo: the run ends compensated at once
    assert taskhub(capsys, "workflow-cancel", first, "--compensate").strip() == (
        f"{first} compensated"
    )
    listed = taskhub(capsys, "workflow-list").splitlines()
    assert [line.split()[:2] for line in listed] == [[second, "running"], [first, "compensated"]]
    only = json.loads(taskhub(capsys, "workflow-list", "--status", "compensated", "--json"))
    assert [r["id"] for r in only] == [first]

    run = WorkflowRun.objects.get(id=second)
    end_step(run, "charge")
    end_step(run, "ship", "failed")
    assert taskhub(capsys, "workflow-retry", second).strip() == f"{second} running"
    assert statuses(run) == {"charge": "completed", "ship": "pending", "notify": "blocked"}
    with pytest.raises(CommandError) as caught:
        call_command("taskhub", "workflow-retry", second)
    assert caught.value.returncode == 2 and "only failed or cancelled runs retry" in str(
        caught.value
    )
    actions = list(OperatorAction.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["workflow.start", "workflow.start", "workflow.cancel", "workflow.retry"]
