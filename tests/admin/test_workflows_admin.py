"""Workflows in the console: the run page draws the graph (our own SVG, coloured by status,
compensations set apart) with the steps and a merged timeline; operators act on runs after
confirming, every action audited; stored definitions are checked before they are saved."""

import json
import re

import pytest

from taskhub.console.admin_tools import STATUS_HUES
from taskhub.models import OperatorAction, TaskStatus
from taskhub.workflows.models import WorkflowDefinition, WorkflowRun
from taskhub.workflows.start import start_workflow
from tests.workflow_states import SPEC, end_step, step, store_orders

pytestmark = pytest.mark.django_db

COMPLETED, FAILED = TaskStatus.COMPLETED, TaskStatus.FAILED


@pytest.fixture
def orders():
    return store_orders()


def page(run) -> str:
    return f"/admin/taskhub/workflowrun/{run.id}/change/"


def nodes(body: str) -> dict[str, tuple[str, str, str]]:
    """step key → (kind, status, hue) of each node drawn in the SVG; the hue is the class the
    console's stylesheet colours it by."""
    found = re.findall(
        r'<g class="th-wf-node th-wf-(\w+) th-wf-status-\w+ th-hue-(\w+)" data-step="([^"]+)" '
        r'data-status="(\w+)"><title>[^<]*</title><rect ',
        body,
    )
    return {key: (kind, status, hue) for kind, hue, key, status in found}


def test_the_run_list_filters_by_status_and_searches_exact_ids(login, orders):
    running = start_workflow("orders", {"order": "1"}, correlation_id="order-7")
    failed = start_workflow("orders", {"order": "2"}, idempotency_key="idem-2")
    WorkflowRun.objects.filter(id=failed.id).update(status="failed")
    browser = login("viewer")

    def listed(query: str) -> set[str]:
        body = browser.get(f"/admin/taskhub/workflowrun/{query}").content.decode()
        return {i for i in (str(running.id)[:8], str(failed.id)[:8]) if i in body}

    assert listed("") == {str(running.id)[:8], str(failed.id)[:8]}
    assert listed("?status=failed") == {str(failed.id)[:8]}
    assert listed("?status=open") == {str(running.id)[:8]}
    assert listed("?q=order-7") == {str(running.id)[:8]}
    assert listed("?q=idem-2") == {str(failed.id)[:8]}
    assert listed(f"?q={running.id}") == {str(running.id)[:8]}


def test_the_run_page_draws_the_graph_coloured_by_step_status_with_steps_and_timeline(
    login, orders
):
    run = start_workflow("orders", {"order": "o-1"})
    end_step(run, "charge", COMPLETED, result={"charged": 42})

    response = login("viewer").get(page(run))

    body = response.content.decode()
    assert response.status_code == 200
    assert '<svg class="th-wf-graph"' in body and "cdn" not in body.lower()
    assert nodes(body) == {
        "charge": ("forward", "completed", STATUS_HUES[TaskStatus.COMPLETED]),
        "ship": ("forward", "pending", STATUS_HUES[TaskStatus.PENDING]),
        "notify": ("forward", "blocked", STATUS_HUES[TaskStatus.BLOCKED]),
    }
    assert body.count('class="th-wf-edge th-wf-edge-') == 2
    assert "th-wf-edge-satisfied" in body and "th-wf-edge-pending" in body
    # laid out by depth: charge, ship and notify left to right
    xs = [
        int(re.search(rf'data-step="{k}".*?<rect x="(\d+)"', body, re.S)[1])
        for k in ("charge", "ship", "notify")
    ]
    assert xs == sorted(xs) and len(set(xs)) == 3
    assert "th-wf-steps" in body and "{&quot;charged&quot;: 42}" in body
    timeline = body[body.index('<ol class="th-timeline">') :]
    assert "th-wf-run-event" in timeline and "<b>run</b> started" in timeline
    assert "<b>charge</b> completed" in timeline and "<b>ship</b> released" in timeline
    assert f"/admin/taskhub/workflowrun/{run.id}/do/" not in body  # a viewer can't act


def test_compensation_steps_and_their_chain_are_drawn_apart(login, orders):
    run = start_workflow("orders", {"order": "1"}, on_failure="compensate")
    end_step(run, "charge", COMPLETED)
    end_step(run, "ship", COMPLETED)
    end_step(run, "notify", FAILED, error="smtp down")

    body = login("viewer").get(page(run)).content.decode()

    drawn = nodes(body)
    assert drawn["compensate:ship"] == (
        "compensation",
        "pending",
        STATUS_HUES[TaskStatus.PENDING],
    )
    assert drawn["compensate:charge"][:2] == ("compensation", "blocked")
    assert drawn["notify"] == ("forward", "failed", STATUS_HUES[TaskStatus.FAILED])
    assert body.count("th-wf-edge-compensation") == 1  # compensate:ship → compensate:charge
    assert body.count('class="th-wf-undoes"') == 2
    assert "compensating" in body


@pytest.mark.parametrize(
    "verb,status,shown",
    [
        ("cancel", "cancelled", ("cancel", "cancel-compensate")),
        ("cancel-compensate", "compensated", ("cancel", "cancel-compensate")),
    ],
)
def test_an_operator_cancels_a_run_from_its_page_after_confirming(
    login, orders, verb, status, shown
):
    run = start_workflow("orders", {"order": "1"})
    browser = login("operator")
    body = browser.get(page(run)).content.decode()
    for offered in shown:
        assert f"/admin/taskhub/workflowrun/{run.id}/do/{offered}/" in body
    assert "/do/retry/" not in body and "/do/compensation-" not in body

    confirm = browser.get(f"/admin/taskhub/workflowrun/{run.id}/do/{verb}/")
    assert "Are you sure" in confirm.content.decode()
    assert WorkflowRun.objects.get(id=run.id).status == "running"  # nothing yet
    browser.post(f"/admin/taskhub/workflowrun/{run.id}/do/{verb}/")

    assert WorkflowRun.objects.get(id=run.id).status == status
    action = OperatorAction.objects.get()
    assert (action.username, action.source, action.action, action.target_id) == (
        "operator-person",
        "admin",
        "workflow.cancel",
        str(run.id),
    )


def test_retry_from_the_run_page_reruns_the_failed_step(login, orders):
    run = start_workflow("orders", {"order": "1"})
    end_step(run, "charge", COMPLETED)
    end_step(run, "ship", FAILED)
    browser = login("operator")
    assert "/do/retry/" in browser.get(page(run)).content.decode()

    response = browser.post(f"/admin/taskhub/workflowrun/{run.id}/do/retry/", follow=True)

    assert "Retry from failure: done." in response.content.decode()
    assert WorkflowRun.objects.get(id=run.id).status == "running"
    assert step(run, "ship").status == "pending" and step(run, "charge").status == "completed"
    assert OperatorAction.objects.get().action == "workflow.retry"


@pytest.fixture
def stuck(orders):
    run = start_workflow("orders", {"order": "1"}, on_failure="compensate")
    end_step(run, "charge", COMPLETED)
    end_step(run, "ship", COMPLETED)
    end_step(run, "notify", FAILED)
    end_step(run, "compensate:ship", FAILED, error="cannot undo ship")
    return run


@pytest.mark.parametrize(
    "verb,run_status,audit",
    [
        ("compensation-retry", "compensating", "workflow.compensation_retry"),
        ("compensation-skip", "compensating", "workflow.compensation_skip"),
        ("compensation-resolve", "compensated", "workflow.compensation_resolve"),
    ],
)
def test_the_ways_out_of_a_failed_compensation_from_the_run_page(
    login, stuck, verb, run_status, audit
):
    browser = login("operator")
    body = browser.get(page(stuck)).content.decode()
    assert "compensation_failed" in body
    for offered in ("compensation-retry", "compensation-skip", "compensation-resolve"):
        assert f"/do/{offered}/" in body
    assert "/do/cancel/" not in body

    browser.post(f"/admin/taskhub/workflowrun/{stuck.id}/do/{verb}/")

    assert WorkflowRun.objects.get(id=stuck.id).status == run_status
    assert OperatorAction.objects.get().action == audit


def test_a_refused_action_is_a_warning_and_leaves_no_audit_row(login, orders):
    run = start_workflow("orders", {"order": "1"})
    browser = login("operator")

    response = browser.post(f"/admin/taskhub/workflowrun/{run.id}/do/retry/", follow=True)

    assert "only failed or cancelled runs retry" in response.content.decode()
    assert WorkflowRun.objects.get(id=run.id).status == "running"
    assert not OperatorAction.objects.exists()


def test_a_viewer_cannot_act_and_unknown_runs_or_verbs_are_404(login, orders):
    run = start_workflow("orders", {"order": "1"})

    assert (
        login("viewer").post(f"/admin/taskhub/workflowrun/{run.id}/do/cancel/").status_code == 403
    )
    browser = login("operator")
    assert browser.get(f"/admin/taskhub/workflowrun/{run.id}/do/explode/").status_code == 404
    assert browser.get("/admin/taskhub/workflowrun/nope/do/cancel/").status_code == 404
    assert WorkflowRun.objects.get(id=run.id).status == "running"
    assert not OperatorAction.objects.exists()


def test_the_list_action_cancels_selected_runs_after_confirming(login, orders):
    runs = [start_workflow("orders", {"order": str(i)}) for i in range(2)]
    browser = login("operator")
    selected = {"action": "cancel_runs", "_selected_action": [str(r.id) for r in runs]}

    confirm = browser.post("/admin/taskhub/workflowrun/", selected)
    assert "Cancel — 2 rows" in confirm.content.decode()
    browser.post("/admin/taskhub/workflowrun/", {**selected, "confirmed": "yes"})

    assert set(WorkflowRun.objects.values_list("status", flat=True)) == {"cancelled"}
    assert OperatorAction.objects.filter(action="workflow.cancel").count() == 2


# -- stored definitions ----------------------------------------------------------------------
def form(**fields):
    return {
        "name": "orders",
        "version": "1",
        "description": "",
        "spec": json.dumps(SPEC),
        "is_active": "on",
        "on_failure": "fail",
        **fields,
    }


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"initialTask": {"type": "no.such.task"}}, "unknown task &#x27;no.such.task&#x27;"),
        (
            {
                "initialTask": {"type": "taskhub.ping"},
                "transitions": {"a": {"type": "taskhub.ping", "after": "a"}},
            },
            "in a cycle",
        ),
        (
            {
                "initialTask": {"type": "taskhub.ping"},
                "transitions": {"a": {"type": "taskhub.ping", "after": "ghost"}},
            },
            "which is not a step",
        ),
        ({"transitions": {}}, "initialTask must be an object with a type"),
    ],
)
def test_a_definition_that_does_not_compile_is_a_form_error_and_not_saved(login, spec, message):
    response = login("operator").post(
        "/admin/taskhub/workflowdefinition/add/", form(spec=json.dumps(spec))
    )

    assert response.status_code == 200  # the form again, with the error
    body = response.content.decode()
    assert "errorlist" in body and message in body
    assert not WorkflowDefinition.objects.exists() and not OperatorAction.objects.exists()


def test_an_operator_adds_and_changes_a_definition_and_an_admin_deletes_it(login):
    operator = login("operator")
    assert operator.post("/admin/taskhub/workflowdefinition/add/", form()).status_code == 302
    row = WorkflowDefinition.objects.get()
    assert row.spec == SPEC and row.created_at is not None

    changed = operator.post(
        f"/admin/taskhub/workflowdefinition/{row.pk}/change/",
        form(description="v1.1", is_active=""),
    )
    assert changed.status_code == 302
    row.refresh_from_db()
    assert (row.description, row.is_active) == ("v1.1", False)
    url = f"/admin/taskhub/workflowdefinition/{row.pk}/delete/"
    assert operator.post(url, {"post": "yes"}).status_code == 403
    assert login("admin").post(url, {"post": "yes"}).status_code == 302
    assert not WorkflowDefinition.objects.exists()
    assert list(OperatorAction.objects.order_by("id").values_list("action", "source")) == [
        ("workflow_definition.create", "admin"),
        ("workflow_definition.update", "admin"),
        ("workflow_definition.delete", "admin"),
    ]


def test_a_viewer_reads_definitions_but_cannot_add_them(login, orders):
    viewer = login("viewer")
    assert viewer.get("/admin/taskhub/workflowdefinition/").status_code == 200
    assert viewer.post("/admin/taskhub/workflowdefinition/add/", form(name="x")).status_code == 403
    assert WorkflowDefinition.objects.count() == 1
