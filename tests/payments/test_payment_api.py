"""Creating payments over the API: validation, idempotency keys, one task per payment."""

import pytest
from rest_framework.test import APIClient

from payments.models import Payment
from taskhub.console.roles import create_user
from taskhub.models import Task
from taskhub.workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db

BODY = {"user_id": "user-1", "amount": "25.00", "currency": "USD", "payment_method_id": "pm_1"}


@pytest.fixture
def api():
    client = APIClient()
    client.force_authenticate(create_user("alice", "operator")[0])
    return client


def post(api, body, key="key-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post("/api/payments", body, format="json", **headers)


def test_a_new_payment_is_stored_with_its_settle_workflow_run(api):
    response = post(api, BODY)

    assert response.status_code == 201
    payment = Payment.objects.get()
    assert response.json()["id"] == str(payment.id)
    assert response.json()["amount"] == "25.00"
    assert payment.status == "created"
    run = WorkflowRun.objects.get(id=payment.workflow_run_id)
    assert (run.name, run.status, run.on_failure) == ("payments.settle", "running", "compensate")
    assert run.idempotency_key == f"payment:{payment.id}"
    task = Task.objects.get(name="payments.process_dtr_payment")
    assert (task.workflow_run_id, task.step_key, task.status) == (run.id, "payment", "pending")
    assert task.compensation == "payments.refund_dtr_payment"
    assert task.payload == {"payment_id": str(payment.id)}
    assert str(payment.processing_task_id) == str(task.id)
    # Without a Safe transaction the payment is followed by the notification only.
    notify = Task.objects.get(workflow_run=run, step_key="notify")
    assert (notify.name, notify.status) == ("notifications.deliver", "blocked")


def test_the_same_key_and_body_return_the_same_payment_and_write_nothing(api):
    first = post(api, BODY)
    again = post(api, {**BODY, "amount": 25})

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Payment.objects.count() == 1
    assert Task.objects.filter(name="payments.process_dtr_payment").count() == 1
    assert WorkflowRun.objects.count() == 1


def test_the_same_key_with_another_body_is_a_conflict(api):
    post(api, BODY)
    response = post(api, {**BODY, "amount": "26.00"})

    assert response.status_code == 409
    assert "idempotency_key" in response.json()["errors"]
    assert Payment.objects.get().amount == 25
    assert WorkflowRun.objects.count() == 1
    assert Task.objects.count() == 2  # the first payment's run: payment and notify steps


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"amount": "10.5", "currency": "JPY"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"currency": "ABC"}, "currency"),
        ({"currency": "usdollar"}, "currency"),
        ({"user_id": ""}, "user_id"),
        ({"payment_method_id": None}, "payment_method_id"),
        ({"metadata": ["x"]}, "metadata"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_nothing_is_written(api, change, field):
    response = post(api, {**BODY, **change})

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Payment.objects.count() == 0
    assert Task.objects.count() == 0


def test_three_decimal_currencies_accept_three_decimals(api):
    response = post(api, {**BODY, "amount": "1.125", "currency": "KWD"})

    assert response.status_code == 201
    assert response.json()["amount"] == "1.125"


def test_a_missing_idempotency_key_is_refused(api):
    response = post(api, BODY, key=None)

    assert response.status_code == 400
    assert "idempotency_key" in response.json()["errors"]
    assert Payment.objects.count() == 0


def test_a_malformed_safe_transaction_is_refused_before_anything_is_stored(api):
    body = {
        **BODY,
        "safe_transaction": {
            "safe_address": "0x123",
            "transaction": {},
            "user_signature": "0x00",
            "chain_id": 31337,
        },
    }
    response = post(api, body)

    assert response.status_code == 400
    assert "safe_address" in response.json()["errors"]
    assert Payment.objects.count() == 0
    assert Task.objects.count() == 0


def test_anonymous_callers_cannot_list_or_create_payments():
    client = APIClient()

    assert client.get("/api/payments").status_code in (401, 403)
    assert client.post("/api/payments", BODY, format="json").status_code in (401, 403)
    assert Payment.objects.count() == 0


def test_list_and_detail_show_the_payment_with_its_tasks(api):
    created = post(api, BODY).json()

    listing = api.get("/api/payments", {"status": "created"}).json()
    detail = api.get(f"/api/payments/{created['id']}").json()

    assert [p["id"] for p in listing["results"]] == [created["id"]]
    assert detail["safe_transaction"] is None
    assert sorted(t["name"] for t in detail["tasks"]) == [
        "notifications.deliver",
        "payments.process_dtr_payment",
    ]
