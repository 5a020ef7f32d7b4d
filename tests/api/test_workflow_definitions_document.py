"""``/api/workflow-definitions`` in the Queue Worker document's shape (issue 21, item 3):
``{"name", "definition": {"initialTask": "<step name>", "transitions": [...]}, "isActive"}``
beside today's ``spec`` / ``is_active``; a transition without ``after`` follows the step before
it; a compensation with its own payload, checked against its task's schema when it is saved."""

import pytest
from django.utils import timezone

from taskhub.models import OperatorAction, StepEdge, Task
from taskhub.workflows.models import WorkflowDefinition
from taskhub.workflows.stored import compile_stored
from tests.workflow_states import SPEC

pytestmark = pytest.mark.django_db

URL = "/api/workflow-definitions"
PING = {"type": "taskhub.ping"}
UNDO_ORDER = {
    "type": "http.request",
    "payload": {"method": "DELETE", "url": "https://shop.example/orders/42"},
}


def ping(name, **extra):
    return {"name": name, **PING, **extra}


def create(client, **body):
    return client.post(URL, {"name": "orders", **body}, format="json")


def chain_of(definition):
    """The dependencies the stored definition compiles to, as (step, its after) pairs."""
    graph = compile_stored(definition.name, definition.version, definition.spec)
    return [(key, step.after) for key, step in graph.steps.items()]


def graph_of(definition):
    """Everything the stored definition compiles to, step by step (whatever the key order)."""
    graph = compile_stored(definition.name, definition.version, definition.spec)
    return {key: {**vars(step), "after": sorted(step.after)} for key, step in graph.steps.items()}


def nothing_saved():
    return not WorkflowDefinition.objects.exists() and not OperatorAction.objects.exists()


# --- the document's shape ---------------------------------------------------------------------


def test_a_definition_in_the_documents_shape_is_stored_as_a_spec_and_echoed_in_both_shapes(
    operator, viewer
):
    document = {
        "initialTask": "reserve",
        "transitions": [
            {
                "name": "reserve",
                "type": "http.request",
                "payload": {"method": "POST", "url": "https://shop.example/orders/42/reserve"},
                "compensation": UNDO_ORDER,
            },
            {"name": "charge", "type": "test.wf.step", "payload": {"name": "$input.order"}},
            ping("notify", on="done"),
        ],
    }

    response = create(operator, definition=document, isActive=True)

    assert response.status_code == 201, response.json()
    shown = response.json()
    assert shown["definition"] == document
    assert shown["isActive"] is True and shown["is_active"] is True
    row = WorkflowDefinition.objects.get()
    assert row.spec == {
        "initialTask": {
            "key": "reserve",
            "type": "http.request",
            "payload": {"method": "POST", "url": "https://shop.example/orders/42/reserve"},
            "compensation": UNDO_ORDER,
        },
        "transitions": {
            "charge": {
                "type": "test.wf.step",
                "payload": {"name": "$input.order"},
                "after": "reserve",
            },
            "notify": {**PING, "on": "done", "after": "charge"},
        },
    }
    assert shown["spec"] == row.spec
    assert viewer.get(f"{URL}/{shown['id']}").json()["definition"] == document
    assert OperatorAction.objects.get().action == "workflow_definition.create"


def test_a_definition_in_todays_shape_is_also_shown_in_the_documents_shape(operator):
    response = create(operator, spec=SPEC, is_active=False)

    assert response.status_code == 201, response.json()
    shown = response.json()
    assert shown["isActive"] is False and shown["spec"] == SPEC
    assert shown["definition"] == {
        "initialTask": "charge",
        "transitions": [
            {"name": "charge", **{k: v for k, v in SPEC["initialTask"].items() if k != "key"}},
            {
                "name": "ship",
                **{k: v for k, v in SPEC["transitions"]["ship"].items() if k != "after"},
            },
            {"name": "notify", "type": "taskhub.ping"},
        ],
    }


def test_the_shown_document_stored_again_compiles_to_the_same_graph(operator):
    """What a client reads back is a definition it can send: nothing is lost in between."""
    spec = {
        "initialTask": {**PING, "key": "a"},
        "transitions": {
            "left": {**PING, "after": "a"},
            "right": {**PING, "after": "a", "on": {"result": {"pong": True}}},
            "join": {**PING, "after": ["left", "right"], "on": "done"},
            "tail": {**PING, "after": "join"},
        },
    }
    shown = create(operator, spec=spec).json()

    again = create(operator, version=2, definition=shown["definition"])

    assert again.status_code == 201, again.json()
    first, second = WorkflowDefinition.objects.order_by("version")
    assert graph_of(first) == graph_of(second)
    assert again.json()["definition"] == shown["definition"]
    assert [s["name"] for s in shown["definition"]["transitions"]][0] == "a"
    assert "after" not in shown["definition"]["transitions"][-1]  # tail follows join


# --- the linear default -----------------------------------------------------------------------


def test_transitions_without_after_form_a_chain_in_list_order(operator):
    response = create(
        operator, definition={"initialTask": "a", "transitions": [ping("a"), ping("b"), ping("c")]}
    )

    assert response.status_code == 201, response.json()
    assert chain_of(WorkflowDefinition.objects.get()) == [("a", []), ("b", ["a"]), ("c", ["b"])]
    started = operator.post("/api/workflows", {"definition": "orders"}, format="json").json()
    assert [(e["from"], e["to"]) for e in started["edges"]] == [("a", "b"), ("b", "c")]
    assert [s["status"] for s in started["steps"]] == ["pending", "blocked", "blocked"]


def test_the_initial_task_runs_first_and_the_rest_follow_in_list_order(operator):
    """The sequence is the initial step, then every other transition in list order: a
    transition without after follows the one just before it in that sequence."""
    response = create(
        operator, definition={"initialTask": "b", "transitions": [ping("a"), ping("b"), ping("c")]}
    )

    assert response.status_code == 201, response.json()
    assert chain_of(WorkflowDefinition.objects.get()) == [("b", []), ("a", ["b"]), ("c", ["a"])]


def test_without_initial_task_the_first_transition_starts(operator):
    response = create(operator, definition={"transitions": [ping("a"), ping("b")]})

    assert response.status_code == 201, response.json()
    assert chain_of(WorkflowDefinition.objects.get()) == [("a", []), ("b", ["a"])]


def test_an_explicit_after_branches_and_the_next_step_without_one_follows_the_step_before(
    operator,
):
    transitions = [
        ping("a"),
        ping("b"),
        ping("c", after="a"),  # a branch beside b
        ping("d"),  # follows c, the step before it
        ping("e", after=["b", "d"], on="done"),
    ]

    response = create(operator, definition={"initialTask": "a", "transitions": transitions})

    assert response.status_code == 201, response.json()
    assert chain_of(WorkflowDefinition.objects.get()) == [
        ("a", []),
        ("b", ["a"]),
        ("c", ["a"]),
        ("d", ["c"]),
        ("e", ["b", "d"]),
    ]


@pytest.mark.parametrize(
    "definition,field,message",
    [
        (
            {"initialTask": "ghost", "transitions": [ping("a")]},
            "definition.initialTask",
            "initialTask names 'ghost', which is not a step in transitions",
        ),
        (
            {"initialTask": {"type": "taskhub.ping"}, "transitions": [ping("a")]},
            "definition.initialTask",
            "initialTask must be the name of a step",
        ),
        (
            {"initialTask": "a", "transitions": [ping("a"), ping("b", after="ghost")]},
            "steps",
            "step 'b' depends on 'ghost', which is not a step",
        ),
        (
            {
                "initialTask": "a",
                "transitions": [ping("a"), ping("b", after="c"), ping("c", after="b")],
            },
            "steps",
            "the steps b, c depend on each other in a cycle",
        ),
        (
            {"initialTask": "a", "transitions": [ping("a", after="b"), ping("b")]},
            "definition.initialTask",
            "initialTask 'a' is the first step: it cannot have after",
        ),
        (
            {"initialTask": "a", "transitions": [ping("a"), ping("a")]},
            "definition.transitions[1]",
            "step 'a' is defined twice",
        ),
        ({"initialTask": "a", "transitions": []}, "definition.transitions", "non-empty list"),
        (
            {"initialTask": "a", "transitions": {"a": PING}},
            "definition.transitions",
            "non-empty list of steps",
        ),
        ({"transitions": [PING]}, "definition.transitions[0]", "name must name the step"),
        (
            {"transitions": [{**ping("a"), "key": "a"}]},
            "definition.transitions[0]",
            "unknown field key",
        ),
        (
            {"transitions": [ping("a", colour="red")]},
            "initialTask",
            "unknown fields colour",
        ),
        (
            {"transitions": [ping("a")], "steps": []},
            "definition",
            "definition: unknown fields steps",
        ),
        ([ping("a")], "definition", "definition must be an object"),
        (
            {"transitions": [ping("a"), {"name": "b", "type": "no.such.task"}]},
            "steps",
            "unknown task 'no.such.task'",
        ),
    ],
)
def test_a_malformed_document_is_400_naming_the_problem_and_nothing_is_saved(
    operator, definition, field, message
):
    response = create(operator, definition=definition)

    assert response.status_code == 400, response.json()
    assert message in response.json()["error"], response.json()
    assert field in response.json()["errors"], response.json()
    assert nothing_saved()


# --- one shape or the other -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,fields",
    [
        ({"spec": SPEC, "definition": {"transitions": [ping("a")]}}, {"spec", "definition"}),
        ({"spec": SPEC, "is_active": True, "isActive": True}, {"is_active", "isActive"}),
        ({}, {"non_field_errors"}),
        ({"is_active": True}, {"non_field_errors"}),
        ({"spec": SPEC, "isactive": True}, {"isactive"}),
        ({"definition": {"transitions": [ping("a")]}, "IsActive": False}, {"IsActive"}),
    ],
)
def test_both_shapes_at_once_neither_or_an_unknown_key_is_400(operator, body, fields):
    response = create(operator, **body)

    assert response.status_code == 400, response.json()
    assert fields <= set(response.json()["errors"]), response.json()
    assert response.json()["error"]
    assert nothing_saved()


def test_both_shapes_message_says_which_to_give(operator):
    response = create(operator, spec=SPEC, definition={"transitions": [ping("a")]})

    assert "give spec or definition (the document's shape), not both" in response.json()["error"]


def test_a_change_in_the_documents_shape_replaces_the_steps_and_a_mixed_one_changes_nothing(
    operator,
):
    stored = create(operator, spec=SPEC).json()
    url = f"{URL}/{stored['id']}"

    changed = operator.patch(
        url,
        {"definition": {"transitions": [ping("x"), ping("y")]}, "isActive": False},
        format="json",
    )
    mixed = operator.patch(
        url, {"definition": {"transitions": [ping("z")]}, "spec": SPEC}, format="json"
    )
    replaced = operator.put(url, {"definition": {"transitions": [ping("p")]}}, format="json")

    assert changed.status_code == 200, changed.json()
    assert changed.json()["isActive"] is False
    assert changed.json()["definition"] == {
        "initialTask": "x",
        "transitions": [ping("x"), ping("y")],
    }
    assert mixed.status_code == 400
    assert replaced.status_code == 200, replaced.json()
    row = WorkflowDefinition.objects.get()
    assert (row.spec, row.is_active) == (
        {"initialTask": {**PING, "key": "p"}, "transitions": {}},
        False,
    )
    assert OperatorAction.objects.filter(action="workflow_definition.update").count() == 2


# --- a compensation with its own payload ------------------------------------------------------


def saga(compensation):
    return {
        "transitions": [
            {
                "name": "reserve",
                "type": "http.request",
                "payload": {"method": "POST", "url": "https://shop.example/orders/42/reserve"},
                "compensation": compensation,
            },
            ping("charge"),
        ]
    }


@pytest.mark.parametrize(
    "compensation",
    [
        UNDO_ORDER,
        {"type": "http.request", "payload": {"method": "DELETE", "url": "$input.order_url"}},
        {
            "type": "http.request",
            "payload": {
                "method": "DELETE",
                "url": "https://shop.example/orders/42",
                "headers": "$input.h",
            },
        },
        "http.request",
    ],
)
def test_a_compensation_is_a_task_name_or_a_task_with_its_own_payload(operator, compensation):
    response = create(operator, on_failure="compensate", definition=saga(compensation))

    assert response.status_code == 201, response.json()
    assert WorkflowDefinition.objects.get().spec["initialTask"]["compensation"] == compensation


@pytest.mark.parametrize(
    "compensation,field,message",
    [
        (
            {"type": "http.request", "payload": {"method": "ERASE", "url": "https://x.example/"}},
            "initialTask.compensation.payload.method",
            "invalid payload for http.request",
        ),
        (
            {"type": "http.request", "payload": {"method": "DELETE"}},
            "initialTask.compensation.payload.url",
            "Field required",
        ),
        (
            {"type": "http.request", "payload": {"method": "DELETE", "url": "not a url"}},
            "initialTask.compensation.payload.url",
            "URL",
        ),
        (
            {
                "type": "http.request",
                "payload": {"url": "https://x.example/", "json": {}, "body": "$input.body"},
            },
            "initialTask.compensation.payload",
            "give json or body, not both",
        ),
        ({"type": "http.request"}, "initialTask", "compensation must be a task name or"),
        ({"type": "http.request", "payload": [1]}, "initialTask", "compensation must be"),
        (
            {**UNDO_ORDER, "delay": 5},
            "initialTask",
            'compensation must be a task name or {"type": <task name>, "payload": {...}}',
        ),
        ({"type": "", "payload": {}}, "initialTask", "compensation must be"),
        ({"type": "no.undo", "payload": {}}, "steps", "unknown task 'no.undo'"),
        ({"type": "payments.refund_dtr_payment", "payload": {}}, "initialTask", "is internal"),
    ],
)
def test_a_compensation_payload_its_task_refuses_is_400_and_nothing_is_saved(
    operator, compensation, field, message
):
    response = create(operator, on_failure="compensate", definition=saga(compensation))

    assert response.status_code == 400, response.json()
    assert message in response.json()["error"], response.json()
    assert field in response.json()["errors"], response.json()
    assert nothing_saved()


def test_a_compensation_payload_is_checked_again_when_the_input_fills_it(operator):
    body = {"method": "DELETE", "url": "$input.order_url"}
    create(operator, definition=saga({"type": "http.request", "payload": body}))

    refused = operator.post(
        "/api/workflows",
        {"definition": "orders", "input": {"order_url": "not a url"}},
        format="json",
    )
    started = operator.post(
        "/api/workflows",
        {"definition": "orders", "input": {"order_url": "https://shop.example/orders/42"}},
        format="json",
    )

    assert refused.status_code == 400, refused.json()
    assert "compensation" in refused.json()["error"]
    assert "steps.reserve.compensation.payload.url" in refused.json()["errors"]
    assert started.status_code == 201, started.json()
    assert Task.objects.count() == 2 and StepEdge.objects.count() == 1


def test_a_compensations_own_payload_is_masked_by_its_tasks_secret_fields(operator, viewer):
    undo = {
        "type": "http.request",
        "payload": {
            "method": "DELETE",
            "url": "https://shop.example/orders/42?token=tok-123",
            "headers": {"X-Shop": "shop-key-789"},
        },
    }
    stored = create(operator, definition=saga(undo)).json()

    shown = viewer.get(f"{URL}/{stored['id']}").json()

    for text in ("tok-123", "shop-key-789"):
        assert text not in str(shown) and text not in str(stored)
    assert shown["spec"]["initialTask"]["compensation"]["payload"]["headers"] == "***"
    undo_shown = shown["definition"]["transitions"][0]["compensation"]["payload"]
    assert undo_shown["headers"] == "***" and undo_shown["method"] == "DELETE"


def test_a_row_written_by_hand_in_no_known_shape_is_shown_without_a_document(viewer):
    now = timezone.now()
    row = WorkflowDefinition.objects.create(
        name="legacy", version=1, spec=[1, 2], created_at=now, updated_at=now
    )

    shown = viewer.get(f"{URL}/{row.id}")

    assert shown.status_code == 200
    assert (shown.json()["spec"], shown.json()["definition"]) == ([1, 2], None)
