"""``/api/workflows``: start (idempotent), list, show, cancel, retry and the ways out of a
failed compensation — each refused request changes nothing, each mutation is audited."""

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from taskhub.models import OperatorAction, Task, TaskEvent, TaskStatus
from taskhub.workflows.models import StepEdge, WorkflowDefinition, WorkflowEvent, WorkflowRun
from taskhub.workflows.start import start_workflow
from tests.workflow_states import end_step, statuses, step, store_orders

pytestmark = pytest.mark.django_db

COMPLETED, FAILED = TaskStatus.COMPLETED, TaskStatus.FAILED


@pytest.fixture
def orders():
    return store_orders()


@pytest.fixture
def nothing_written():
    tables = (WorkflowRun, Task, StepEdge, TaskEvent, WorkflowEvent, OperatorAction)
    before = [model.objects.count() for model in tables]
    yield
    assert [model.objects.count() for model in tables] == before, "a refused request wrote rows"


def start(client, **body):
    return client.post(
        "/api/workflows", {"definition": "orders", "input": {"order": "o-1"}, **body}, format="json"
    )


def test_an_operator_starts_a_stored_definition_and_gets_the_run_with_steps_and_edges(
    operator, orders
):
    response = start(operator, correlation_id="c-1", context={"tenant": "t1"})

    assert response.status_code == 201, response.json()
    run = response.json()
    assert run["definition"] == "orders" and run["status"] == "running"
    assert run["input"] == {"order": "o-1"} and run["context"] == {"tenant": "t1"}
    steps = {s["key"]: s for s in run["steps"]}
    assert {k: s["status"] for k, s in steps.items()} == {
        "charge": "pending",
        "ship": "blocked",
        "notify": "blocked",
    }
    assert steps["charge"]["task"] == "test.wf.step" and steps["charge"]["attempts"] == 0
    assert Task.objects.get(id=steps["charge"]["task_id"]).payload == {"name": "o-1"}
    assert [(e["from"], e["to"]) for e in run["edges"]] == [("charge", "ship"), ("ship", "notify")]
    assert [e["kind"] for e in run["events"]] == ["started"]
    action = OperatorAction.objects.get()
    assert (action.action, action.source, action.target_id) == ("workflow.start", "api", run["id"])
    assert action.username == "operator-user" and action.details["created"] is True


def test_the_same_idempotency_key_returns_the_first_run_with_200(operator, orders):
    first = start(operator, idempotency_key="order-1")
    again = start(operator, idempotency_key="order-1", input={"order": "other"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert WorkflowRun.objects.count() == 1 and Task.objects.count() == 3


def test_a_deadline_and_a_failure_policy_are_kept_on_the_run(operator, orders):
    before = timezone.now()
    run = start(operator, deadline_seconds=60, on_failure="compensate").json()

    deadline = dt.datetime.fromisoformat(run["deadline_at"])
    assert before + dt.timedelta(seconds=59) < deadline < timezone.now() + dt.timedelta(seconds=61)
    assert run["on_failure"] == "compensate"


@pytest.mark.parametrize(
    "body,field,message",
    [
        ({"definition": "nope"}, "definition", "unknown workflow 'nope'"),
        ({"input": [1, 2]}, "input", "input must be a JSON object"),
        ({"input": {}}, "input", "the input has no 'order'"),
        ({"deadline_seconds": -1}, "deadline_seconds", ""),
        ({"on_failure": "explode"}, "on_failure", ""),
        ({"idempotency_key": "k" * 300}, "idempotency_key", ""),
        ({"inputs": {}}, "inputs", "Unknown field"),
        ({"context": "shared"}, "context", "context must be a JSON object"),
        ({"version": 7}, "definition", "unknown workflow"),
    ],
)
def test_an_invalid_start_is_400_naming_the_problem_and_writes_nothing(
    operator, orders, nothing_written, body, field, message
):
    response = start(operator, **body)

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"initialTask": {"type": "no.such.task"}}, "unknown task 'no.such.task'"),
        (
            {
                "initialTask": {"type": "taskhub.ping"},
                "transitions": {
                    "a": {"type": "taskhub.ping", "after": "b"},
                    "b": {"type": "taskhub.ping", "after": "a"},
                },
            },
            "depend on each other in a cycle",
        ),
        (
            {
                "initialTask": {"type": "taskhub.ping"},
                "transitions": {"a": {"type": "taskhub.ping", "after": "ghost"}},
            },
            "depends on 'ghost', which is not a step",
        ),
    ],
)
def test_a_stored_definition_broken_behind_the_apis_back_is_refused_at_start(
    operator, nothing_written, spec, message
):
    now = timezone.now()
    WorkflowDefinition.objects.create(name="broken", spec=spec, created_at=now, updated_at=now)
    before = WorkflowDefinition.objects.count()

    response = operator.post("/api/workflows", {"definition": "broken"}, format="json")

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert WorkflowDefinition.objects.count() == before


def test_a_payload_a_task_refuses_is_400_naming_the_step(operator, nothing_written):
    now = timezone.now()
    spec = {"initialTask": {"type": "test.sleep", "payload": {"seconds": "$input.s"}}}
    WorkflowDefinition.objects.create(name="sleepy", spec=spec, created_at=now, updated_at=now)

    response = operator.post(
        "/api/workflows", {"definition": "sleepy", "input": {"s": "long"}}, format="json"
    )

    assert response.status_code == 400
    assert "step 'initial'" in response.json()["error"]
    assert any(k.startswith("steps.initial.") for k in response.json()["errors"])


def test_runs_are_listed_newest_first_with_filters_and_cursor_pages(viewer, orders):
    early = start_workflow("orders", {"order": "1"}, correlation_id="c-1", user_id="u-1")
    WorkflowRun.objects.filter(id=early.id).update(created_at=timezone.now() - dt.timedelta(days=2))
    late = start_workflow("orders", {"order": "2"})
    WorkflowRun.objects.filter(id=late.id).update(status="failed")

    def ids(query):
        response = viewer.get(f"/api/workflows{query}")
        assert response.status_code == 200, response.json()
        return [r["id"] for r in response.json()["results"]]

    assert ids("") == [str(late.id), str(early.id)]
    assert ids("?status=failed") == [str(late.id)]
    assert ids("?status=running,failed") == [str(late.id), str(early.id)]
    assert ids("?definition=orders&correlation_id=c-1") == [str(early.id)]
    assert ids("?user_id=u-1") == [str(early.id)]
    yesterday = (timezone.now() - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"?created_after={yesterday}") == [str(late.id)]
    assert ids(f"?created_before={yesterday}") == [str(early.id)]
    assert ids("?definition=other") == []
    page = viewer.get("/api/workflows?limit=1").json()
    assert len(page["results"]) == 1 and page["next"]
    assert viewer.get(page["next"]).json()["results"][0]["id"] == str(early.id)
    assert viewer.get("/api/workflows?status=exploded").status_code == 400


def test_a_run_shows_its_steps_results_and_timeline(viewer, orders):
    run = start_workflow("orders", {"order": "o-9"})
    end_step(run, "charge", COMPLETED, result={"charged": 10})

    shown = viewer.get(f"/api/workflows/{run.id}").json()

    steps = {s["key"]: s for s in shown["steps"]}
    assert steps["charge"]["status"] == "completed" and steps["charge"]["attempts"] == 1
    assert steps["charge"]["result"] == {"charged": 10}
    assert steps["ship"]["status"] == "pending"
    assert shown["edges"][0] == {
        "from": "charge",
        "to": "ship",
        "resolved": True,
        "satisfied": True,
    }


@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "not-a-uuid"])
@pytest.mark.parametrize(
    "method,suffix",
    [
        ("get", ""),
        ("post", "/cancel"),
        ("post", "/retry"),
        ("post", "/compensation/retry"),
        ("post", "/compensation/skip"),
        ("post", "/compensation/resolve"),
    ],
)
def test_an_unknown_run_is_404(operator, nothing_written, run_id, method, suffix):
    response = getattr(operator, method)(f"/api/workflows/{run_id}{suffix}", {}, format="json")
    assert response.status_code == 404
    assert "no workflow run" in response.json()["error"]


def test_cancelling_a_run_cancels_its_waiting_steps_and_is_audited(operator, orders):
    run = start_workflow("orders", {"order": "1"})

    response = operator.post(f"/api/workflows/{run.id}/cancel", {}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    assert set(statuses(run).values()) == {"cancelled"}
    assert [e["kind"] for e in response.json()["events"]] == ["started", "cancelling", "cancelled"]
    action = OperatorAction.objects.get()
    assert (action.action, action.target_id, action.details) == (
        "workflow.cancel",
        str(run.id),
        {"compensate": False},
    )
    again = operator.post(f"/api/workflows/{run.id}/cancel", {}, format="json")
    assert again.status_code == 409 and "not running" in again.json()["error"]
    assert OperatorAction.objects.count() == 1


def test_cancel_with_compensation_undoes_the_completed_steps(operator, orders):
    run = start_workflow("orders", {"order": "1"})
    end_step(run, "charge", COMPLETED)

    response = operator.post(f"/api/workflows/{run.id}/cancel", {"compensate": True}, format="json")

    assert response.json()["status"] == "compensating"
    compensation = {s["key"]: s for s in response.json()["steps"]}["compensate:charge"]
    assert compensation["status"] == "pending" and compensation["compensates"] == "charge"


def test_retry_reruns_only_what_did_not_complete(operator, orders):
    run = start_workflow("orders", {"order": "1"})
    end_step(run, "charge", COMPLETED)
    end_step(run, "ship", FAILED, error="carrier down")
    assert operator.get(f"/api/workflows/{run.id}").json()["status"] == "failed"

    response = operator.post(f"/api/workflows/{run.id}/retry")

    assert response.status_code == 200 and response.json()["status"] == "running"
    assert statuses(run) == {"charge": "completed", "ship": "pending", "notify": "blocked"}
    assert OperatorAction.objects.get().action == "workflow.retry"
    assert operator.post(f"/api/workflows/{run.id}/retry").status_code == 409


def failed_compensation(orders_run):
    """charge and ship completed, notify failed → compensating; undoing ship failed."""
    end_step(orders_run, "charge", COMPLETED)
    end_step(orders_run, "ship", COMPLETED)
    end_step(orders_run, "notify", FAILED)
    end_step(orders_run, "compensate:ship", FAILED, error="cannot undo ship")
    orders_run.refresh_from_db()
    assert orders_run.status == "compensation_failed"
    return orders_run


@pytest.fixture
def stuck(orders):
    return failed_compensation(start_workflow("orders", {"order": "1"}, on_failure="compensate"))


def test_retrying_a_failed_compensation_runs_it_again(operator, stuck):
    response = operator.post(f"/api/workflows/{stuck.id}/compensation/retry")

    assert response.status_code == 200 and response.json()["status"] == "compensating"
    assert step(stuck, "compensate:ship").status == "pending"
    assert OperatorAction.objects.get().action == "workflow.compensation_retry"


def test_skipping_a_failed_compensation_goes_on_with_the_next(operator, stuck):
    response = operator.post(f"/api/workflows/{stuck.id}/compensation/skip")

    assert response.json()["status"] == "compensating"
    assert step(stuck, "compensate:charge").status == "pending"
    end_step(stuck, "compensate:charge", COMPLETED)
    assert operator.get(f"/api/workflows/{stuck.id}").json()["status"] == "compensated"


def test_resolving_a_failed_compensation_ends_the_run_compensated(operator, stuck):
    response = operator.post(
        f"/api/workflows/{stuck.id}/compensation/resolve",
        {"note": "refunded by hand"},
        format="json",
    )

    assert response.json()["status"] == "compensated"
    assert "refunded by hand" in response.json()["error"]
    assert step(stuck, "compensate:charge").status == "cancelled"
    assert OperatorAction.objects.get().action == "workflow.compensation_resolve"


@pytest.mark.parametrize("verb", ["retry", "skip", "resolve"])
def test_compensation_actions_on_a_run_that_is_not_stuck_are_409(operator, orders, verb):
    run = start_workflow("orders", {"order": "1"})

    response = operator.post(f"/api/workflows/{run.id}/compensation/{verb}")

    assert response.status_code == 409
    assert "not compensation_failed" in response.json()["error"]
    assert not OperatorAction.objects.exists()


@pytest.mark.parametrize(
    "role,method,url,status",
    [
        (None, "get", "/api/workflows", 401),
        ("viewer", "get", "/api/workflows", 200),
        ("viewer", "post", "/api/workflows", 403),
        ("viewer", "post", "/api/workflows/{id}/cancel", 403),
        ("viewer", "post", "/api/workflows/{id}/retry", 403),
        ("viewer", "post", "/api/workflows/{id}/compensation/skip", 403),
        (None, "get", "/api/workflows/{id}", 401),
        ("viewer", "get", "/api/workflows/{id}", 200),
    ],
)
def test_reading_needs_viewer_and_steering_needs_operator(
    as_role, orders, role, method, url, status
):
    run = start_workflow("orders", {"order": "1"})
    before = (WorkflowRun.objects.count(), Task.objects.count(), OperatorAction.objects.count())

    body = {"definition": "orders", "input": {"order": "2"}}
    response = getattr(as_role(role), method)(url.format(id=run.id), body, format="json")

    assert response.status_code == status
    if status != 200:
        assert WorkflowRun.objects.get(id=run.id).status == "running"
        after = (WorkflowRun.objects.count(), Task.objects.count(), OperatorAction.objects.count())
        assert after == before


def test_the_schema_documents_the_workflow_endpoints(viewer):
    paths = viewer.get("/api/schema/?format=json").json()["paths"]
    for endpoint in (
        "/api/workflows",
        "/api/workflows/{run_id}",
        "/api/workflows/{run_id}/cancel",
        "/api/workflows/{run_id}/retry",
        "/api/workflows/{run_id}/compensation/retry",
        "/api/workflows/{run_id}/compensation/skip",
        "/api/workflows/{run_id}/compensation/resolve",
        "/api/workflow-definitions",
        "/api/workflow-definitions/{definition_id}",
    ):
        assert endpoint in paths, endpoint
