"""Payments, KYC and notifications follow the API's roles: viewers read, operators act."""

import uuid

import pytest

from notifications.services import notify_user
from payments import services as payments
from taskhub.models import OperatorAction
from tests.api.role_matrix import assert_answers_by_role, by_role

pytestmark = pytest.mark.django_db

PAYMENT = {"user_id": "u1", "amount": "5.00", "currency": "EUR", "payment_method_id": "pm"}


def a_payment():
    return payments.create_payment(idempotency_key=uuid.uuid4().hex, data=PAYMENT)[0]


def endpoints():
    return [
        ("get", lambda: "/api/payments", None, "viewer"),
        ("post", lambda: "/api/payments", PAYMENT, "operator"),
        ("get", lambda: f"/api/payments/{a_payment().id}", None, "viewer"),
        ("post", lambda: f"/api/payments/{a_payment().id}/retry", None, "operator"),
        ("get", lambda: "/api/safe-transactions", None, "viewer"),
        ("post", lambda: "/api/safe-transactions", {}, "operator"),
        ("get", lambda: "/api/kyc/cases", None, "viewer"),
        ("post", lambda: "/api/kyc/documents", {}, "operator"),
        ("get", lambda: "/api/kyc/users/u1", None, "viewer"),
        ("get", lambda: "/api/notifications?user_id=u1", None, "viewer"),
        (
            "post",
            lambda: f"/api/notifications/{notify_user('u1', 'x', 'hi').pk}/read",
            None,
            "operator",
        ),
    ]


@by_role(endpoints())
def test_each_domain_endpoint_answers_by_role(as_role, method, url, body, least, role):
    headers = {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex}
    response = getattr(as_role(role), method)(url(), body, format="json", **headers)
    # allowed: served, or refused for its body (an empty one here), never for the role
    assert_answers_by_role(response, role, least, served=lambda status: status not in (401, 403))


def test_creating_a_payment_and_retrying_it_are_audited(operator):
    created = operator.post("/api/payments", PAYMENT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert created.status_code == 201
    payment_id = created.json()["id"]
    operator.post(f"/api/payments/{payment_id}/retry")
    actions = OperatorAction.objects.filter(target_id=payment_id).values_list("action", flat=True)
    assert sorted(actions) == ["payment.create", "payment.retry"]


def test_a_refused_payment_leaves_no_audit_row(operator):
    response = operator.post(
        "/api/payments", {"amount": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert response.status_code == 400
    assert not OperatorAction.objects.exists()
