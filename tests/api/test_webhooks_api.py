"""``/api/webhooks/…``: each endpoint by role, secrets write-only, bad input writing nothing."""

import uuid

import pytest

from taskhub.models import OperatorAction, Task
from tests.api.role_matrix import assert_answers_by_role, by_role
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.com/in"


def endpoint() -> WebhookEndpoint:
    return services.create_endpoint(HOOK, ["order.*"])[0]


def failed_delivery() -> WebhookDelivery:
    [delivery] = services.publish("order.paid", {"order": 1}, endpoints=[endpoint()])
    WebhookDelivery.objects.filter(id=delivery.id).update(status=DeliveryStatus.FAILED, attempts=1)
    Task.objects.filter(id=delivery.task_id).update(status="failed")
    return delivery


def endpoints():
    return [
        ("get", lambda: "/api/webhooks/endpoints", None, "viewer"),
        ("post", lambda: "/api/webhooks/endpoints", {"url": HOOK, "event_types": ["*"]}, "admin"),
        ("get", lambda: f"/api/webhooks/endpoints/{endpoint().id}", None, "viewer"),
        ("patch", lambda: f"/api/webhooks/endpoints/{endpoint().id}", {"active": False}, "admin"),
        ("delete", lambda: f"/api/webhooks/endpoints/{endpoint().id}", None, "admin"),
        ("post", lambda: f"/api/webhooks/endpoints/{endpoint().id}/rotate-secret", {}, "admin"),
        ("get", lambda: "/api/webhooks/deliveries", None, "viewer"),
        ("get", lambda: f"/api/webhooks/deliveries/{failed_delivery().id}", None, "viewer"),
        (
            "post",
            lambda: f"/api/webhooks/deliveries/{failed_delivery().id}/redeliver",
            None,
            "operator",
        ),
        ("post", lambda: "/api/webhooks/retry-all", None, "operator"),
    ]


@by_role(endpoints())
def test_each_webhook_endpoint_answers_by_role(as_role, method, url, body, least, role):
    response = getattr(as_role(role), method)(url(), body, format="json")
    assert_answers_by_role(response, role, least)


def test_the_secret_is_returned_once_at_creation_and_never_again(admin):
    # Given an admin creates an endpoint
    created = admin.post(
        "/api/webhooks/endpoints", {"url": HOOK, "event_types": ["order.*"]}, format="json"
    )
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    endpoint_id = created.json()["id"]
    # When anyone reads, lists or changes it, or reads its deliveries
    services.publish("order.paid", {"order": 1})
    delivery = WebhookDelivery.objects.get(endpoint_id=endpoint_id)
    seen = [
        admin.get("/api/webhooks/endpoints"),
        admin.get(f"/api/webhooks/endpoints/{endpoint_id}"),
        admin.patch(f"/api/webhooks/endpoints/{endpoint_id}", {"description": "x"}, format="json"),
        admin.get("/api/webhooks/deliveries"),
        admin.get(f"/api/webhooks/deliveries/{delivery.id}"),
    ]
    # Then the secret is nowhere, nor in the audit log
    for response in seen:
        assert response.status_code == 200
        assert secret not in response.content.decode() and "whsec_" not in response.content.decode()
    assert not any(secret in str(a.details) for a in OperatorAction.objects.all())


def test_a_given_secret_is_accepted_but_not_echoed_back_beyond_creation(admin):
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    created = admin.post(
        "/api/webhooks/endpoints",
        {"url": HOOK, "event_types": ["*"], "secret": secret},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert WebhookEndpoint.objects.get(id=created.json()["id"]).secret == secret


def test_rotating_a_secret_shows_the_new_one_once(admin):
    row = endpoint()
    response = admin.post(f"/api/webhooks/endpoints/{row.id}/rotate-secret", {}, format="json")
    assert response.status_code == 200
    row.refresh_from_db()
    assert response.json()["secret"] == row.secret != row.previous_secret


def test_redeliver_sends_a_failed_delivery_again_and_is_audited(operator):
    delivery = failed_delivery()
    response = operator.post(f"/api/webhooks/deliveries/{delivery.id}/redeliver")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "pending"
    assert Task.objects.filter(name="webhooks.deliver", status="pending").count() == 1
    assert OperatorAction.objects.filter(
        action="webhook_delivery.redeliver", target_id=str(delivery.id)
    ).exists()


def test_retry_all_redelivers_every_failed_delivery(operator):
    failed = [failed_delivery() for _ in range(3)]
    response = operator.post("/api/webhooks/retry-all")
    assert response.status_code == 200
    assert response.json() == {
        "count": 3,
        "message": "3 failed deliveries queued for redelivery",
        "redelivered": 3,
    }
    assert set(
        WebhookDelivery.objects.filter(id__in=[d.id for d in failed]).values_list(
            "status", flat=True
        )
    ) == {"pending"}


def test_deliveries_filter_by_status_and_endpoint(viewer):
    failed = failed_delivery()
    services.publish("order.new", {}, endpoints=[endpoint()])
    listed = viewer.get("/api/webhooks/deliveries?status=failed").json()["results"]
    assert [d["id"] for d in listed] == [str(failed.id)]
    by_endpoint = viewer.get(f"/api/webhooks/deliveries?endpoint={failed.endpoint_id}")
    assert [d["id"] for d in by_endpoint.json()["results"]] == [str(failed.id)]


def test_redelivering_to_a_disabled_endpoint_is_409(operator):
    delivery = failed_delivery()
    services.disable_endpoint(delivery.endpoint_id)
    assert operator.post(f"/api/webhooks/deliveries/{delivery.id}/redeliver").status_code == 409


@pytest.fixture
def nothing_written():
    def counts():
        return (
            WebhookEndpoint.objects.count(),
            WebhookDelivery.objects.count(),
            Task.objects.count(),
            OperatorAction.objects.count(),
        )

    before = counts()
    yield
    assert counts() == before, "a refused request wrote rows"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"event_types": ["*"]}, "url"),
        ({"url": "ftp://example.com/x", "event_types": ["*"]}, "url"),
        ({"url": "not a url", "event_types": ["*"]}, "url"),
        ({"url": HOOK}, "event_types"),
        ({"url": HOOK, "event_types": []}, "event_types"),
        ({"url": HOOK, "event_types": ["bad type!"]}, "event_types"),
        ({"url": HOOK, "event_types": ["*"], "secret": "short"}, "secret"),
        ({"url": HOOK, "event_types": ["*"], "colour": "red"}, "colour"),
    ],
)
def test_a_bad_endpoint_is_400_naming_the_field(admin, nothing_written, body, field):
    response = admin.post("/api/webhooks/endpoints", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()


def test_bad_filters_and_unknown_ids_write_nothing(admin, nothing_written):
    assert admin.get("/api/webhooks/deliveries?status=weird").status_code == 400
    assert admin.get("/api/webhooks/deliveries?limit=0").status_code == 400
    assert admin.get("/api/webhooks/deliveries?cursor=zzz").status_code == 400
    for url in (
        f"/api/webhooks/endpoints/{uuid.uuid4()}",
        "/api/webhooks/endpoints/nope",
        f"/api/webhooks/deliveries/{uuid.uuid4()}",
    ):
        assert admin.get(url).status_code == 404
    assert admin.post(f"/api/webhooks/deliveries/{uuid.uuid4()}/redeliver").status_code == 404
    assert (
        admin.patch(
            f"/api/webhooks/endpoints/{uuid.uuid4()}", {"active": False}, format="json"
        ).status_code
        == 404
    )


def test_retry_all_with_nothing_failed_answers_a_count_of_zero(operator):
    response = operator.post("/api/webhooks/retry-all")
    assert response.status_code == 200
    assert response.json()["count"] == 0 and response.json()["redelivered"] == 0
