"""Workflows through real workers, a real dispatcher and the real database: chains, fan-outs,
failure policies, sagas, cancel, deadlines, retries, stored definitions, parent / child."""

import time

import pytest
from django.utils import timezone

from taskhub import start_workflow
from taskhub.engine.broker import get_redis, key
from taskhub.models import Task, TaskEvent, WorkflowDefinition, WorkflowEvent
from taskhub.workflows import operations
from taskhub.workflows.builder import WorkflowBuilder
from tests.support import override_taskhub, wait_for, wait_status

from .support import (
    assert_every_edge_resolved_once,
    clear_recorded,
    recorded,
    statuses_of,
    step,
    wait_run,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _clean_records():
    clear_recorded("runs", "undone", "parent")
    yield


def s(name, **extra):
    return {"name": name, **extra}


def test_a_chain_runs_in_order_and_each_step_reads_the_one_before(e2e):
    wf = WorkflowBuilder("chain")
    wf.chain(
        wf.step("charge", "test.wf.step", s("charge", value=5)),
        wf.step("execute", "test.wf.step", s("execute", value=6)),
        wf.step("notify", "test.wf.step", s("notify")),
    )
    run = start_workflow(wf.graph)

    run = wait_run(run.id, "succeeded")
    assert recorded() == ["charge", "execute", "notify"]
    assert step(run, "execute").result["read"] == {
        "charge": {"name": "charge", "value": 5, "read": {}}
    }
    assert step(run, "notify").result["read"]["execute"]["value"] == 6
    assert_every_edge_resolved_once(run)
    kinds = list(WorkflowEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds == ["started", "succeeded"]


@pytest.mark.parametrize("items", [0, 1, 1000])
def test_a_fan_out_of_n_items_then_a_fan_in_that_runs_once(e2e, items):
    wf = WorkflowBuilder(f"fan-{items}")
    root = wf.step("root", "test.wf.step", s("root"))
    group = wf.fan_out(
        "img", "test.wf.step", [s(f"img{i}", value=i) for i in range(items)], after=root
    )
    wf.fan_in("sum", "test.wf.sum", {"group": "img"}, after=group)
    run = start_workflow(wf.graph)

    run = wait_run(run.id, "succeeded", timeout=180)
    assert step(run, "sum").result == {"count": items, "total": sum(range(items))}
    runs = recorded()
    assert runs.count("sum") == 1 and runs.count("root") == 1
    assert len(runs) == items + 2
    assert runs[0] == "root" and runs[-1] == "sum"
    assert_every_edge_resolved_once(run)


def test_a_failure_mid_graph_skips_dependents_cancels_siblings_and_compensates_in_reverse(e2e):
    wf = WorkflowBuilder("saga")
    reserve = wf.step("reserve", "test.wf.step", s("reserve"), compensation="test.wf.undo")
    charge = wf.step(
        "charge", "test.wf.step", s("charge"), after=reserve, compensation="test.wf.undo"
    )
    ship = wf.step("ship", "test.wf.step", s("ship", fail=True), after=charge)
    slow = wf.step(
        "invoice",
        "test.wf.step",
        s("invoice", seconds=30),
        after=charge,
        compensation="test.wf.undo",
    )
    later = wf.step("later", "test.wf.step", s("later", seconds=30), after=charge)
    wf.step("notify", "test.wf.step", s("notify"), after=[ship, slow, later])
    wf.step("cleanup", "test.wf.step", s("cleanup"), after=[ship, slow], trigger="all_done")
    run = start_workflow(wf.graph, on_failure="compensate")

    run = wait_run(run.id, "compensated", timeout=60)
    states = statuses_of(run)
    assert states["ship"] == "failed"
    assert states["notify"] == "skipped"  # a dependent of the failed step
    assert states["invoice"] == "cancelled" and states["later"] == "cancelled"  # siblings
    assert states["cleanup"] == "completed"  # a finalizer (all_done) still runs
    # Each completed step with a compensation is undone exactly once, newest first; the
    # cancelled sibling never completed, so there is nothing to undo for it.
    assert recorded("undone") == ["charge", "reserve"]
    undo = step(run, "compensate:charge")
    assert undo.result["forward_result"]["name"] == "charge"
    assert undo.result["idempotency_key"] == str(step(run, "charge").id)
    assert "notify" not in recorded()
    assert run.error.startswith("step ship failed")
    assert_every_edge_resolved_once(run)


def test_a_failing_compensation_stops_the_unwind_until_an_operator_retries_it(e2e):
    wf = WorkflowBuilder("saga-stuck")
    wf.chain(
        wf.step("a", "test.wf.step", s("a"), compensation="test.wf.undo"),
        wf.step("b", "test.wf.step", s("b"), compensation="test.wf.undo"),
        wf.step("c", "test.wf.step", s("c", fail=True)),
    )
    get_redis().set(key("test", "wf", "undo-fails", "b"), 1)
    run = start_workflow(wf.graph, on_failure="compensate")

    run = wait_run(run.id, "compensation_failed")
    assert statuses_of(run)["compensate:b"] == "failed"
    assert statuses_of(run)["compensate:a"] == "blocked"  # later compensations not attempted
    time.sleep(1)
    assert recorded("undone") == []

    get_redis().delete(key("test", "wf", "undo-fails", "b"))
    operations.retry_compensation(run.id, actor="ops")
    run = wait_run(run.id, "compensated")
    assert recorded("undone") == ["b", "a"]


def test_a_compensation_failure_can_be_skipped_or_marked_resolved(e2e):
    def stuck_run(name):
        wf = WorkflowBuilder(name)
        wf.chain(
            wf.step("a", "test.wf.step", s("a"), compensation="test.wf.undo"),
            wf.step("b", "test.wf.step", s("b"), compensation="test.wf.undo"),
            wf.step("c", "test.wf.step", s("c", fail=True)),
        )
        return wait_run(start_workflow(wf.graph, on_failure="compensate").id, "compensation_failed")

    get_redis().set(key("test", "wf", "undo-fails", "b"), 1)
    skipped = stuck_run("saga-skip")
    operations.skip_compensation(skipped.id, actor="ops")
    wait_run(skipped.id, "compensated")
    assert recorded("undone") == ["a"]

    resolved = stuck_run("saga-resolve")
    operations.resolve_compensation(resolved.id, actor="ops", note="refunded by hand")
    resolved.refresh_from_db()
    assert resolved.status == "compensated" and "refunded by hand" in resolved.error
    assert statuses_of(resolved)["compensate:a"] == "cancelled"
    get_redis().delete(key("test", "wf", "undo-fails", "b"))


def test_cancel_while_a_step_runs_starts_nothing_new(e2e):
    wf = WorkflowBuilder("cancel")
    wf.chain(
        wf.step("long", "test.wf.step", s("long", seconds=30)),
        wf.step("next", "test.wf.step", s("next")),
    )
    run = start_workflow(wf.graph)
    wait_status(step(run, "long").id, "running")

    operations.cancel_run(run.id, actor="ops")
    run = wait_run(run.id, "cancelled", timeout=20)
    assert statuses_of(run) == {"long": "cancelled", "next": "cancelled"}
    time.sleep(1)
    assert recorded() == ["long"]


def test_a_cancelled_run_that_is_retried_runs_its_cancelled_steps_again(e2e):
    """The cancel covered the attempts it stopped, not the ones the retry starts."""
    wf = WorkflowBuilder("cancel-retry")
    wf.chain(
        wf.step("long", "test.wf.step", s("long", seconds=2)),
        wf.step("next", "test.wf.step", s("next")),
    )
    run = start_workflow(wf.graph)
    wait_status(step(run, "long").id, "running")
    operations.cancel_run(run.id, actor="ops")
    wait_run(run.id, "cancelled", timeout=20)

    operations.retry_run(run.id, actor="ops")

    run = wait_run(run.id, "succeeded", timeout=30)
    assert recorded() == ["long", "long", "next"]
    assert step(run, "long").attempt == 2
    assert_every_edge_resolved_once(run)


def test_a_run_past_its_deadline_is_cancelled(e2e):
    wf = WorkflowBuilder("deadline")
    wf.chain(
        wf.step("long", "test.wf.step", s("long", seconds=30)),
        wf.step("next", "test.wf.step", s("next")),
    )
    run = start_workflow(wf.graph, deadline=1.5)

    run = wait_run(run.id, "cancelled", timeout=30)
    assert run.error == "deadline passed"
    assert "next" not in recorded()


def test_retry_from_failure_reruns_only_failed_and_skipped_steps(e2e):
    get_redis().set(key("test", "wf", "fail", "b"), 1)
    wf = WorkflowBuilder("retry")
    a = wf.step("a", "test.wf.step", s("a"))
    b = wf.step("b", "test.wf.step", s("b", fail_while="b"), after=a)
    side = wf.step("side", "test.wf.step", s("side"), after=a)
    wf.step("c", "test.wf.step", s("c"), after=[b, side])
    run = start_workflow(wf.graph, on_failure="continue")
    run = wait_run(run.id, "failed")
    assert statuses_of(run) == {
        "a": "completed",
        "b": "failed",
        "side": "completed",
        "c": "skipped",
    }

    get_redis().delete(key("test", "wf", "fail", "b"))
    operations.retry_run(run.id, actor="ops")
    run = wait_run(run.id, "succeeded")
    runs = recorded()
    assert runs.count("a") == 1 and runs.count("side") == 1  # completed steps never re-run
    assert runs.count("b") == 2 and runs.count("c") == 1
    assert_every_edge_resolved_once(run)


def test_a_stored_definition_in_the_transitions_shape_runs_end_to_end(e2e):
    now = timezone.now()
    WorkflowDefinition.objects.create(
        name="kyc-stored",
        version=1,
        created_at=now,
        updated_at=now,
        spec={
            "initialTask": {
                "type": "test.wf.step",
                "payload": {"name": "check", "value": "$input.level"},
            },
            "transitions": {
                "approve": {
                    "type": "test.wf.step",
                    "after": "initial",
                    "on": {"result": {"value": "high"}},
                    "payload": {"name": "approve"},
                },
                "review": {
                    "type": "test.wf.step",
                    "after": "initial",
                    "on": {"result": {"value": "low"}},
                    "payload": {"name": "review"},
                },
                "notify": {
                    "type": "test.wf.step",
                    "after": ["approve", "review"],
                    "on": "done",
                    "payload": {"name": "notify", "value": "$input.user"},
                },
            },
        },
    )
    run = start_workflow("kyc-stored", {"level": "high", "user": "u-7"})

    run = wait_run(run.id, "succeeded")
    assert statuses_of(run) == {
        "initial": "completed",
        "approve": "completed",
        "review": "skipped",
        "notify": "completed",
    }
    assert recorded() == ["check", "approve", "notify"]
    assert step(run, "notify").payload == {"name": "notify", "value": "u-7"}


def test_a_parent_waits_blocked_for_its_children_then_completes(e2e):
    wf = WorkflowBuilder("parent")
    parent = wf.step("parent", "test.wf.parent", {"children": 3})
    wf.step("after", "test.wf.step", s("after"), after=parent)
    run = start_workflow(wf.graph)

    run = wait_run(run.id, "succeeded")
    children = Task.objects.filter(parent=step(run, "parent")).order_by("step_key")
    assert [c.status for c in children] == ["completed"] * 3
    assert sorted(recorded()) == ["after", "child-0", "child-1", "child-2"]
    assert recorded()[-1] == "after"  # the dependent waited for the children too
    assert step(run, "parent").result == {"spawned": 3}


def test_a_standalone_parent_fails_when_a_child_fails(e2e):
    from taskhub import schedule

    parent = schedule("test.wf.parent", {"children": 2, "failing": [1]})
    parent = wait_status(parent.id, ("completed", "failed"), timeout=30)
    assert parent.status == "failed" and parent.error == "a child failed"
    assert sorted(c.status for c in Task.objects.filter(parent=parent)) == [
        "completed",
        "failed",
    ]


@pytest.mark.slow
def test_every_message_duplicated_resolves_each_edge_once(make_stack):
    stack = make_stack(processes=2, threads=4, env={"TASKHUB_TEST_DUPLICATE_MESSAGES": "1"})
    stack.start()
    wf = WorkflowBuilder("dup")
    a = wf.step("a", "test.wf.step", s("a"))
    left = wf.step("left", "test.wf.step", s("left"), after=a)
    right = wf.step("right", "test.wf.step", s("right"), after=a)
    group = wf.fan_out(
        "f", "test.wf.step", [s(f"f{i}", value=i) for i in range(50)], after=[left, right]
    )
    wf.fan_in("sum", "test.wf.sum", {"group": "f"}, after=group)
    run = start_workflow(wf.graph)

    run = wait_run(run.id, "succeeded", timeout=120)
    runs = recorded()
    assert sorted(runs) == sorted(["a", "left", "right", "sum", *[f"f{i}" for i in range(50)]])
    assert step(run, "sum").result == {"count": 50, "total": sum(range(50))}
    assert_every_edge_resolved_once(run)


@pytest.mark.slow
def test_kill_9_of_a_worker_and_flushall_mid_run_the_run_still_completes(make_stack, private_redis):
    with override_taskhub(REDIS_URL=private_redis):
        # Two worker groups: Dramatiq stops a whole group when one of its processes dies.
        stack = make_stack(processes=1, threads=4, env={"REDIS_URL": private_redis})
        victim = stack.start_worker()
        stack.start_worker()
        stack.start_dispatcher()
        stack.wait_for_workers(2)
        wf = WorkflowBuilder("crash")
        root = wf.step("root", "test.wf.step", s("root"))
        group = wf.fan_out(
            "f", "test.wf.step", [s(f"f{i}", value=1, seconds=0.2) for i in range(120)], after=root
        )
        wf.fan_in("sum", "test.wf.sum", {"group": "f"}, after=group)
        run = start_workflow(wf.graph)
        wait_for(
            lambda: Task.objects.filter(workflow_run=run, status="completed").count() >= 20,
            timeout=60,
            message="a part of the fan-out done",
        )
        stack.kill9_worker_process(victim)
        get_redis().flushall()

        run = wait_run(run.id, "succeeded", timeout=120)
        assert step(run, "sum").result == {"count": 120, "total": 120}
        # The fan-in started once, however many members were recovered and re-run.
        assert step(run, "sum").attempt == 1
        assert_every_edge_resolved_once(run)
        recovered = TaskEvent.objects.filter(task__workflow_run=run, kind="recovered").count()
        print(
            f"\nworkflow crash drill: run succeeded after kill -9 + FLUSHALL; "
            f"{recovered} step attempts/messages recovered"
        )


def test_taskhub_watch_follows_a_run_to_its_end_with_its_outcome_as_exit_code(e2e):
    import json
    import subprocess
    import sys

    from tests.support import ROOT, child_env

    def watch(run_id):
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "taskhub",
                "watch",
                str(run_id),
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=90,
        )
        return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]

    wf = WorkflowBuilder("watched")
    wf.chain(wf.step("a", "test.wf.step", s("a")), wf.step("b", "test.wf.step", s("b")))
    run = start_workflow(wf.graph)
    code, events = watch(run.id)
    assert code == 0
    ids = {str(step(run, "a").id), str(step(run, "b").id)}
    assert {e["task"] for e in events} == ids
    assert [e["type"] for e in events].count("task.completed") == 2
    assert events[-1]["type"] == "task.completed" and events[-1]["task"] == str(step(run, "b").id)

    wf = WorkflowBuilder("watched-fail")
    wf.chain(wf.step("a", "test.wf.step", s("a", fail=True)), wf.step("b", "test.wf.step", s("b")))
    code, events = watch(start_workflow(wf.graph).id)
    assert code == 1
    assert "task.skipped" in [e["type"] for e in events]
