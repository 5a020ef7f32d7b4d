"""``/api/workflow-definitions``: stored definitions in the transitions shape, checked before
anything is saved; operators create and change them, admins delete them."""

import pytest

from taskhub.models import OperatorAction
from taskhub.workflows.models import WorkflowDefinition
from tests.workflow_states import SPEC

pytestmark = pytest.mark.django_db

URL = "/api/workflow-definitions"
PING = {"type": "taskhub.ping"}


def create(client, **body):
    return client.post(URL, {"name": "orders", "spec": SPEC, **body}, format="json")


def test_an_operator_stores_a_definition_and_everyone_reads_it(operator, viewer):
    response = create(operator, description="charge, ship, notify", on_failure="compensate")

    assert response.status_code == 201, response.json()
    stored = response.json()
    assert (stored["name"], stored["version"], stored["is_active"]) == ("orders", 1, True)
    assert stored["on_failure"] == "compensate" and stored["spec"] == SPEC
    assert viewer.get(f"{URL}/{stored['id']}").json()["description"] == "charge, ship, notify"
    assert [d["name"] for d in viewer.get(URL).json()] == ["orders"]
    assert viewer.get(f"{URL}?name=other").json() == []
    action = OperatorAction.objects.get()
    assert (action.action, action.target_type, action.target_id) == (
        "workflow_definition.create",
        "workflow_definition",
        str(stored["id"]),
    )


def test_a_new_version_is_started_by_default_and_an_older_one_on_request(operator):
    create(operator)
    newer = {"initialTask": PING}
    create(operator, version=2, spec=newer)

    latest = operator.post("/api/workflows", {"definition": "orders"}, format="json").json()
    body = {"definition": "orders", "version": 1, "input": {"order": "o"}}
    older = operator.post("/api/workflows", body, format="json").json()

    assert latest["version"] == 2 and [s["key"] for s in latest["steps"]] == ["initial"]
    assert older["version"] == 1 and len(older["steps"]) == 3


@pytest.mark.parametrize(
    "spec,field,message",
    [
        ({"initialTask": {"type": "no.such.task"}}, "steps", "unknown task 'no.such.task'"),
        (
            {
                "initialTask": PING,
                "transitions": {"a": {**PING, "after": "b"}, "b": {**PING, "after": "a"}},
            },
            "steps",
            "the steps a, b depend on each other in a cycle",
        ),
        (
            {"initialTask": PING, "transitions": {"a": {**PING, "after": "ghost"}}},
            "steps",
            "step 'a' depends on 'ghost', which is not a step",
        ),
        (
            {
                "initialTask": PING,
                "transitions": {"a": {**PING, "after": "initial", "compensation": "no.undo"}},
            },
            "steps",
            "step 'a': unknown task 'no.undo'",
        ),
        ([1, 2], "spec", "a definition must be an object"),
        ({"initialTask": PING, "extra": 1}, "spec", "unknown definition fields: extra"),
        ({"transitions": {}}, "initialTask", "initialTask must be an object with a type"),
        (
            {"initialTask": PING, "transitions": {"a": {**PING}}},
            "transitions.a",
            "after must name the step(s) it follows",
        ),
        (
            {
                "initialTask": PING,
                "transitions": {"a": {**PING, "after": "initial", "on": "sometimes"}},
            },
            "transitions.a",
            "on must be",
        ),
    ],
)
def test_an_invalid_definition_is_400_with_the_reason_and_nothing_is_saved(
    operator, spec, field, message
):
    response = create(operator, spec=spec)

    assert response.status_code == 400, response.json()
    assert message in response.json()["error"]
    assert field in response.json()["errors"], response.json()
    assert not WorkflowDefinition.objects.exists() and not OperatorAction.objects.exists()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": ""}, "name"),
        ({"version": 0}, "version"),
        ({"on_failure": "maybe"}, "on_failure"),
        ({"spek": {}}, "spek"),
        ({"spec": None}, "spec"),
    ],
)
def test_a_malformed_body_is_400(operator, body, field):
    response = create(operator, **body)

    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert not WorkflowDefinition.objects.exists()


def test_the_same_name_and_version_twice_is_400(operator):
    create(operator)

    response = create(operator, spec={"initialTask": PING})

    assert response.status_code == 400 and "already exists" in response.json()["error"]
    assert WorkflowDefinition.objects.get().spec == SPEC
    assert OperatorAction.objects.count() == 1


def test_a_change_is_checked_as_a_whole_and_a_bad_one_leaves_the_definition_as_it_was(operator):
    stored = create(operator).json()
    url = f"{URL}/{stored['id']}"

    changed = operator.patch(url, {"description": "v1.1", "is_active": False}, format="json")
    cyclic = {"initialTask": PING, "transitions": {"a": {**PING, "after": "a"}}}
    refused = operator.patch(url, {"spec": cyclic, "description": "broken"}, format="json")

    assert changed.status_code == 200 and changed.json()["is_active"] is False
    assert refused.status_code == 400 and "cycle" in refused.json()["error"]
    row = WorkflowDefinition.objects.get()
    assert (row.description, row.spec, row.is_active) == ("v1.1", SPEC, False)
    assert [a.action for a in OperatorAction.objects.order_by("id")] == [
        "workflow_definition.create",
        "workflow_definition.update",
    ]
    inactive = operator.post("/api/workflows", {"definition": "orders"}, format="json")
    assert inactive.status_code == 400 and "unknown workflow" in inactive.json()["error"]


def test_only_an_admin_deletes_a_definition(operator, admin, viewer):
    stored = create(operator).json()
    url = f"{URL}/{stored['id']}"

    assert viewer.patch(url, {"description": "x"}, format="json").status_code == 403
    assert viewer.post(URL, {"name": "x", "spec": SPEC}, format="json").status_code == 403
    assert operator.delete(url).status_code == 403
    assert admin.delete(url).status_code == 204

    assert not WorkflowDefinition.objects.exists()
    assert OperatorAction.objects.order_by("-id").first().action == "workflow_definition.delete"
    assert viewer.get(url).status_code == 404
    assert admin.delete(url).status_code == 404
    assert operator.patch(f"{URL}/nope", {"description": "x"}, format="json").status_code == 404
