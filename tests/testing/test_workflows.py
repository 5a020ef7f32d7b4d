"""Workflows in immediate and manual mode (taskhub.testing, docs/testing.md): supported. A step's
outcome is settled by the coordinator in the outcome writer's transaction, as on a worker, and
the steps that releases run next in the same drain."""

from __future__ import annotations

import pytest
from django.db import transaction

from taskhub import schedule, start_workflow
from taskhub.models import StepEdge, Task, WorkflowEvent, WorkflowRun
from taskhub.testing import assert_scheduled, drain, refute_scheduled
from taskhub.workflows.builder import WorkflowBuilder

from .tasks import calls

pytestmark = pytest.mark.django_db(transaction=True)


def step(run, key: str) -> Task:
    return Task.objects.get(workflow_run=run, step_key=key)


def statuses(run) -> dict[str, str]:
    return dict(Task.objects.filter(workflow_run=run).values_list("step_key", "status"))


def ran() -> list[str]:
    return [payload["name"] for payload, _, _ in calls["testing.value"]]


def test_a_chain_and_a_fan_out_with_its_fan_in_run_to_success_after_the_commit(
    taskhub_immediate,
):
    wf = WorkflowBuilder("testing.pipeline")
    root = wf.step("root", "testing.value", {"name": "root", "value": 1})
    group = wf.fan_out(
        "item", "testing.value", [{"name": f"item{i}", "value": i} for i in range(4)], after=root
    )
    total = wf.fan_in("total", "testing.total", {"group": "item"}, after=group)
    wf.step("report", "testing.value", {"name": "report"}, after=total)
    with transaction.atomic():
        run = start_workflow(wf.graph)
        assert ran() == []

    run = WorkflowRun.objects.get(id=run.id)
    assert run.status == "succeeded"
    assert set(statuses(run).values()) == {"completed"}
    assert ran()[0] == "root" and ran()[-1] == "report"
    assert sorted(ran()[1:-1]) == ["item0", "item1", "item2", "item3"]
    assert step(run, "total").result == 6
    assert step(run, "report").result["read"] == {"total": 6}
    assert not StepEdge.objects.filter(run=run, resolved_at__isnull=True).exists()
    kinds = list(WorkflowEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds == ["started", "succeeded"]


def test_a_failed_step_compensates_the_completed_ones_in_reverse(taskhub_immediate):
    wf = WorkflowBuilder("testing.saga")
    wf.chain(
        wf.step("reserve", "testing.value", {"name": "reserve"}, compensation="testing.undo"),
        wf.step("charge", "testing.value", {"name": "charge"}, compensation="testing.undo"),
        wf.step("ship", "testing.value", {"name": "ship", "fail": True}),
    )
    run = start_workflow(wf.graph, on_failure="compensate")

    run = WorkflowRun.objects.get(id=run.id)
    assert run.status == "compensated"
    assert statuses(run)["ship"] == "failed"
    assert [ctx.forward.step for _, _, ctx in calls["testing.undo"]] == ["charge", "reserve"]


def test_a_parent_completes_after_the_children_it_spawned(taskhub_immediate):
    with transaction.atomic():
        parent = schedule("testing.parent", {"children": 3})

    parent.refresh_from_db()
    assert parent.status == "completed"
    children = Task.objects.filter(parent=parent)
    assert sorted(children.values_list("status", flat=True)) == ["completed"] * 3
    assert sorted(ran()) == ["child-0", "child-1", "child-2"]


def test_in_manual_mode_a_run_waits_for_drain_step_by_step(taskhub_manual):
    wf = WorkflowBuilder("testing.manual-chain")
    wf.chain(
        wf.step("a", "testing.value", {"name": "a"}),
        wf.step("b", "testing.value", {"name": "b"}),
    )
    run = start_workflow(wf.graph)

    assert_scheduled("testing.value", {"name": "a"}, status="pending", workflow_run=run)
    assert_scheduled("testing.value", {"name": "b"}, status="blocked", workflow_run=run)
    refute_scheduled("testing.value", status=["completed"])

    assert drain().counts == {"completed": 2}
    assert ran() == ["a", "b"]
    assert WorkflowRun.objects.get(id=run.id).status == "succeeded"
