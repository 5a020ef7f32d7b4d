"""The admin pages: payments with their Safe transaction, audited actions, no secrets shown."""

import pytest
from django.contrib.auth import get_user_model

from payments import services
from taskhub.models import OperatorAction, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    return client


def test_payment_pages_render_and_show_no_secret(admin_client, settings):
    settings.PAYMENTS = {**settings.PAYMENTS, "SAFE_SERVER_KEY": "0x" + "ab" * 32}
    payment, _ = services.create_payment(
        idempotency_key="k-admin",
        data={"user_id": "u1", "amount": "5.00", "currency": "EUR", "payment_method_id": "pm"},
    )

    pages = [
        admin_client.get(url)
        for url in (
            "/admin/payments/payment/",
            f"/admin/payments/payment/{payment.id}/change/",
            "/admin/payments/safetransaction/",
            "/admin/payments/providerevent/",
            "/admin/kyc/kyccase/",
            "/admin/kyc/userkycstatus/",
            "/admin/kyc/kycproviderevent/",
        )
    ]

    assert [p.status_code for p in pages] == [200] * len(pages)
    html = b"".join(p.content for p in pages).decode()
    for secret in (
        "ab" * 32,
        settings.PAYMENTS["DTR_API_SECRET"],
        settings.PAYMENTS["DTR_WEBHOOK_SECRET"],
    ):
        assert secret not in html


def test_retrying_a_payment_from_the_admin_schedules_it_and_is_logged(admin_client):
    payment, _ = services.create_payment(
        idempotency_key="k-retry",
        data={"user_id": "u1", "amount": "5.00", "currency": "EUR", "payment_method_id": "pm"},
    )
    Task.objects.all().delete()

    response = admin_client.post(
        "/admin/payments/payment/",
        {"action": "retry_payment", "_selected_action": [str(payment.id)]},
    )

    assert response.status_code == 302
    assert Task.objects.filter(name="payments.process_dtr_payment").count() == 1
    entry = OperatorAction.objects.get(target_id=str(payment.id))
    assert (entry.action, entry.source, entry.username) == ("payment.retry", "admin", "root")
