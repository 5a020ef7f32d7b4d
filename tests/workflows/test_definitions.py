"""Definitions and the coordinator without workers: what is refused (and writes nothing), and
that resolving a step's edges twice changes nothing."""

import pytest
from django.db import transaction
from django.utils import timezone

from taskhub import start_workflow
from taskhub.models import StepEdge, Task, TaskEvent, WorkflowRun
from taskhub.workflows import coordinator
from taskhub.workflows.builder import WorkflowBuilder, workflow
from taskhub.workflows.graph import InvalidWorkflow
from taskhub.workflows.stored import compile_stored

pytestmark = pytest.mark.django_db(transaction=True)


def nothing_written():
    return not (
        WorkflowRun.objects.exists()
        or Task.objects.exists()
        or StepEdge.objects.exists()
        or TaskEvent.objects.exists()
    )


def graph(*steps):
    wf = WorkflowBuilder("t")
    for key, after in steps:
        wf.step(key, "test.wf.step", {"name": key}, after=after)
    return wf.graph


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: graph(("a", ["c"]), ("b", ["a"]), ("c", ["b"])), "cycle"),
        (lambda: graph(("a", None), ("b", ["nope"])), "'nope', which is not a step"),
        (lambda: graph(("a", None), ("a", None)), "defined twice"),
        (lambda: WorkflowBuilder("t").graph, "has no steps"),
    ],
)
def test_a_bad_graph_is_refused_with_a_clear_error_and_nothing_written(build, message):
    with pytest.raises(InvalidWorkflow, match=message):
        start_workflow(build())
    assert nothing_written()


def test_an_unknown_task_or_compensation_is_refused():
    wf = WorkflowBuilder("t")
    wf.step("a", "no.such.task")
    with pytest.raises(InvalidWorkflow, match="unknown task 'no.such.task'"):
        start_workflow(wf.graph)
    wf = WorkflowBuilder("t")
    wf.step("a", "test.wf.step", compensation="no.undo")
    with pytest.raises(InvalidWorkflow, match="unknown task 'no.undo'"):
        start_workflow(wf.graph)
    assert nothing_written()


def test_an_invalid_step_payload_is_refused_naming_the_step():
    wf = WorkflowBuilder("t")
    wf.step("a", "test.wf.step", {"name": "a"})
    wf.step("b", "test.sleep", {"seconds": "lots"}, after="a")
    with pytest.raises(InvalidWorkflow, match="step 'b'") as err:
        start_workflow(wf.graph)
    assert "steps.b.payload.seconds" in err.value.errors
    assert nothing_written()


def test_unknown_workflow_bad_input_and_bad_options_are_refused():
    with pytest.raises(InvalidWorkflow, match="unknown workflow 'nope'"):
        start_workflow("nope")
    with pytest.raises(InvalidWorkflow, match="input must be a JSON object"):
        start_workflow(graph(("a", None)), [1, 2])
    with pytest.raises(InvalidWorkflow, match="deadline"):
        start_workflow(graph(("a", None)), deadline=-1)
    with pytest.raises(InvalidWorkflow, match="on_failure"):
        start_workflow(graph(("a", None)), on_failure="explode")
    assert nothing_written()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"transitions": {}}, "initialTask"),
        (
            {
                "initialTask": {"type": "test.wf.step"},
                "transitions": {"b": {"type": "test.wf.step"}},
            },
            "after must name",
        ),
        (
            {
                "initialTask": {"type": "test.wf.step"},
                "transitions": {"b": {"type": "test.wf.step", "after": "ghost"}},
            },
            "not a step",
        ),
        (
            {
                "initialTask": {"type": "test.wf.step"},
                "transitions": {
                    "b": {"type": "test.wf.step", "after": ["initial", "c"]},
                    "c": {"type": "test.wf.step", "after": "b"},
                },
            },
            "cycle",
        ),
        ({"initialTask": {"type": "nope"}}, "unknown task"),
        (
            {
                "initialTask": {"type": "test.wf.step"},
                "transitions": {"b": {"type": "test.wf.step", "after": "initial", "on": "maybe"}},
            },
            "on must be",
        ),
        ({"initialTask": {"type": "test.wf.step", "colour": 1}}, "unknown fields colour"),
    ],
)
def test_a_bad_stored_definition_is_refused(spec, message):
    with pytest.raises(InvalidWorkflow, match=message):
        compile_stored("d", 1, spec)


def test_input_references_are_filled_and_a_missing_one_is_refused():
    spec = {"initialTask": {"type": "test.wf.step", "payload": {"u": "$input.user.id"}}}
    graph_ = compile_stored("d", 1, spec, {"user": {"id": 7}})
    assert graph_.steps["initial"].payload == {"u": 7}
    with pytest.raises(InvalidWorkflow, match="no 'user.id'"):
        compile_stored("d", 1, spec, {})


def test_a_python_workflow_validates_its_input_schema():
    from pydantic import BaseModel

    class Order(BaseModel):
        order: int

    @workflow("tests.order", input_schema=Order)
    def order_flow(wf, data):
        wf.step("a", "test.wf.step", {"name": str(data.order)})

    with pytest.raises(InvalidWorkflow, match="invalid input"):
        start_workflow("tests.order", {"order": "x"})
    assert nothing_written()
    run = start_workflow("tests.order", {"order": 3})
    assert Task.objects.get(workflow_run=run).payload == {"name": "3"}


def test_the_same_idempotency_key_returns_the_first_run():
    first = start_workflow(graph(("a", None)), idempotency_key="k-1")
    again = start_workflow(graph(("a", None)), idempotency_key="k-1")
    assert (first.created, again.created) == (True, False)
    assert again.id == first.id and WorkflowRun.objects.count() == 1


def test_settling_a_step_twice_resolves_its_edges_once():
    wf = WorkflowBuilder("t")
    wf.step("a", "test.wf.step", {})
    wf.step("b", "test.wf.step", {})
    wf.step("join", "test.wf.step", {}, after=["a", "b"])
    run = start_workflow(wf.graph)
    a = Task.objects.get(workflow_run=run, step_key="a")
    Task.objects.filter(id=a.id).update(status="completed", completed_at=timezone.now())

    for _ in range(3):  # a duplicated outcome, a redelivery, the reconciler
        with transaction.atomic():
            coordinator.settle([a.id])
    join = Task.objects.get(workflow_run=run, step_key="join")
    assert (join.status, join.deps_remaining) == ("blocked", 1)

    b = Task.objects.get(workflow_run=run, step_key="b")
    Task.objects.filter(id=b.id).update(status="completed", completed_at=timezone.now())
    for _ in range(2):
        with transaction.atomic():
            coordinator.settle([b.id])
    join.refresh_from_db()
    assert (join.status, join.deps_remaining) == ("pending", 0)
    assert TaskEvent.objects.filter(task=join, kind="released").count() == 1


def test_pruning_takes_a_finished_run_with_all_its_steps_and_leaves_open_runs_alone():
    import datetime as dt

    from taskhub.engine.pruner import prune_finished_tasks

    old = timezone.now() - dt.timedelta(days=30)
    done = start_workflow(graph(("a", None), ("b", ["a"])))
    open_run = start_workflow(graph(("a", None), ("b", ["a"])))
    Task.objects.filter(workflow_run__in=[done, open_run]).update(
        status="completed", completed_at=old
    )
    WorkflowRun.objects.filter(id=done.id).update(status="succeeded", finished_at=old)

    prune_finished_tasks(older_than_days=7)

    assert not WorkflowRun.objects.filter(id=done.id).exists()
    assert not Task.objects.filter(workflow_run_id=done.id).exists()
    assert Task.objects.filter(workflow_run=open_run).count() == 2  # its run is still open
    assert StepEdge.objects.filter(run=open_run).count() == 1


def test_a_compensation_payload_is_kept_in_the_runs_graph_even_when_empty():
    """``{}`` is a payload of its own; only a missing one means "the forward step's"."""
    wf = WorkflowBuilder("t")
    wf.step(
        "a", "test.wf.step", {"name": "a"}, compensation="taskhub.ping", compensation_payload={}
    )
    wf.step("b", "test.wf.step", {"name": "b"}, after="a", compensation="test.wf.undo")

    run = start_workflow(wf.graph)

    steps = {s["key"]: s for s in run.graph["steps"]}
    assert steps["a"]["compensation_payload"] == {}
    assert "compensation_payload" not in steps["b"]


def test_a_compensation_payload_without_a_compensation_or_one_its_task_refuses_is_refused():
    wf = WorkflowBuilder("t")
    wf.step("a", "test.wf.step", {"name": "a"}, compensation_payload={"name": "undo"})
    with pytest.raises(InvalidWorkflow, match="given with the compensation task"):
        start_workflow(wf.graph)
    wf = WorkflowBuilder("t")
    wf.step(
        "a",
        "test.wf.step",
        {"name": "a"},
        compensation="test.sleep",
        compensation_payload={"seconds": "lots"},
    )
    with pytest.raises(InvalidWorkflow, match="step 'a': compensation: invalid payload") as err:
        start_workflow(wf.graph)
    assert "steps.a.compensation.payload.seconds" in err.value.errors
    assert nothing_written()


def test_a_stored_compensation_payload_is_filled_from_the_input_when_the_run_starts():
    undo = {"type": "test.wf.undo", "payload": {"order": "$input.order", "why": "saga"}}
    spec = {"initialTask": {"type": "test.wf.step", "compensation": undo}}

    as_saved = compile_stored("d", 1, spec)
    started = compile_stored("d", 1, spec, {"order": 42})

    assert as_saved.steps["initial"].compensation == "test.wf.undo"
    assert as_saved.steps["initial"].compensation_payload == undo["payload"]
    assert started.steps["initial"].compensation_payload == {"order": 42, "why": "saga"}
