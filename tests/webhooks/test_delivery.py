"""Delivery attempts against a real HTTP server, made in-process (the workers run the same
function; tests/webhooks/test_e2e.py runs it through them)."""

import datetime as dt
import socket

import pytest
from django.test import override_settings
from django.utils import timezone

from taskhub.models import Task
from webhooks import services
from webhooks.delivery import attempt_delivery
from webhooks.models import DeliveryAttempt, WebhookDelivery
from webhooks.signing import verify

from .conftest import Answer

pytestmark = pytest.mark.django_db

SHORT = {"RETRY_SCHEDULE": [1, 2, 3], "TIMEOUT": 0.5}


def deliver_next(delivery):
    delivery.refresh_from_db()
    return attempt_delivery(str(delivery.id), delivery.attempts + 1)


def endpoint_for(receiver, events=("invoice.*",)):
    return services.create_endpoint(receiver.url, list(events))


def test_a_delivery_arrives_signed_and_verifies_with_the_endpoint_secret(receiver):
    endpoint, secret = endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {"invoice": 42})

    result = deliver_next(delivery)

    assert result["status"] == "succeeded"
    [request] = receiver.requests
    event = verify(request.body, request.headers, secret)
    assert event["type"] == "invoice.paid" and event["data"] == {"invoice": 42}
    assert request.headers["webhook-id"] == delivery.message_id.strip()
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.last_response_code == 200
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.response_body == "ok" and attempt.duration > 0
    assert secret not in str(attempt.request_headers)


def test_publish_fans_out_to_active_subscribed_endpoints_only(receiver):
    wildcard, _ = endpoint_for(receiver, ["invoice.*"])
    exact, _ = endpoint_for(receiver, ["invoice.paid"])
    everything, _ = endpoint_for(receiver, ["*"])
    endpoint_for(receiver, ["user.created"])
    inactive, _ = endpoint_for(receiver, ["*"])
    services.disable_endpoint(inactive.id)

    deliveries = services.publish("invoice.paid", {"n": 1})

    assert {d.endpoint_id for d in deliveries} == {wildcard.id, exact.id, everything.id}
    assert len({d.message_id for d in deliveries}) == 1  # one event, one webhook-id
    tasks = Task.objects.filter(id__in=[d.task_id for d in deliveries])
    assert {(t.name, t.queue) for t in tasks} == {("webhooks.deliver", "webhooks")}


@pytest.mark.parametrize("event_type", ["", "a..b", "task.*", "x" * 101])
def test_a_bad_event_type_is_refused_and_nothing_is_stored(receiver, event_type):
    endpoint_for(receiver, ["*"])
    with pytest.raises(services.InvalidWebhook):
        services.publish(event_type, {})
    assert not WebhookDelivery.objects.exists()


@override_settings(WEBHOOKS=SHORT)
def test_a_failing_endpoint_is_retried_on_the_schedule_then_permanently_failed(receiver):
    receiver.answer(Answer(status=500, body=b"boom"))
    endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {})

    gaps = []
    for _ in range(4):
        before = timezone.now()
        result = deliver_next(delivery)
        if result["next_attempt_at"]:
            gaps.append(
                (dt.datetime.fromisoformat(result["next_attempt_at"]) - before).total_seconds()
            )

    delivery.refresh_from_db()
    assert delivery.status == "permanently_failed" and delivery.attempts == 4
    assert [round(g) for g in gaps] == [1, 2, 3]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # stable across retries
    assert len({r.headers["webhook-timestamp"] for r in receiver.requests}) >= 1
    assert deliver_next(delivery).get("skipped")  # nothing more is sent
    assert len(receiver.requests) == 4


@override_settings(WEBHOOKS=SHORT)
def test_each_retry_is_a_delayed_task_with_a_stable_key(receiver):
    receiver.answer(Answer(status=503))
    endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {})

    deliver_next(delivery)

    delivery.refresh_from_db()
    task = Task.objects.get(id=delivery.task_id)
    assert task.payload == {"delivery_id": str(delivery.id), "attempt": 2}
    assert task.dedup_key == f"webhook:{delivery.id}:2"
    assert task.scheduled_at == delivery.next_attempt_at


@override_settings(WEBHOOKS=SHORT)
def test_retry_after_is_honoured(receiver):
    receiver.answer(Answer(status=429, headers={"Retry-After": "120"}))
    endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {})

    result = deliver_next(delivery)

    wait = dt.datetime.fromisoformat(result["next_attempt_at"]) - timezone.now()
    assert dt.timedelta(seconds=115) < wait <= dt.timedelta(seconds=120)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "succeeded"),
        (204, "succeeded"),
        (400, "permanently_failed"),
        (404, "permanently_failed"),
        (408, "failed"),
        (429, "failed"),
        (500, "failed"),
        (502, "failed"),
        (302, "failed"),
    ],
)
def test_each_kind_of_answer_has_its_outcome(receiver, status, outcome):
    receiver.answer(Answer(status=status, headers={"Location": "http://169.254.169.254/"}))
    endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {})

    assert deliver_next(delivery)["status"] == outcome
    assert len(receiver.requests) == 1  # a redirect is never followed


def test_410_gone_disables_the_endpoint(receiver):
    receiver.answer(Answer(status=410))
    endpoint, _ = endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {})

    deliver_next(delivery)

    endpoint.refresh_from_db()
    assert not endpoint.active and "410" in endpoint.disabled_reason
    assert services.publish("invoice.paid", {}) == []


@override_settings(WEBHOOKS=SHORT)
def test_a_timeout_is_a_failed_attempt_that_is_retried(receiver):
    receiver.answer(Answer(delay=2))
    endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {})

    result = deliver_next(delivery)

    assert result["status"] == "failed" and "timed out" in result["error"]


def test_a_refused_connection_is_retried():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    services.create_endpoint(f"http://127.0.0.1:{port}/", ["*"])
    [delivery] = services.publish("invoice.paid", {})

    result = deliver_next(delivery)

    assert result["status"] == "failed" and result["response_code"] is None


def test_the_response_body_kept_is_at_most_4_kib(receiver):
    receiver.answer(Answer(body=b"x" * 100_000))
    endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {})

    deliver_next(delivery)

    assert len(DeliveryAttempt.objects.get().response_body) == 4096


def test_redeliver_sends_again_now_with_the_same_webhook_id_and_a_fresh_schedule(receiver):
    receiver.answer(Answer(status=400), Answer(status=200))
    endpoint_for(receiver)
    [delivery] = services.publish("invoice.paid", {})
    deliver_next(delivery)
    delivery.refresh_from_db()
    assert delivery.status == "permanently_failed"

    services.redeliver(delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.retries_from == 1
    assert Task.objects.get(id=delivery.task_id).payload["attempt"] == 2
    deliver_next(delivery)

    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert ids[0] == ids[1]


def test_retry_all_failed_redelivers_every_failed_delivery(receiver):
    receiver.answer(Answer(status=400))
    endpoint_for(receiver)
    deliveries = services.publish("invoice.paid", {}) + services.publish("invoice.sent", {})
    ok = services.publish("invoice.void", {})
    for d in deliveries:
        deliver_next(d)
    WebhookDelivery.objects.filter(id=ok[0].id).update(status="succeeded")

    assert services.retry_all_failed() == 2
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"pending", "succeeded"}


def test_the_safety_net_reschedules_overdue_deliveries_whose_task_was_lost(receiver):
    from taskhub.console.services import cancel_task

    endpoint_for(receiver)
    lost, kept = services.publish("invoice.paid", {}) + services.publish("invoice.sent", {})
    cancel_task(lost.task_id)  # e.g. an operator cleared the queue
    past = timezone.now() - dt.timedelta(minutes=10)
    WebhookDelivery.objects.update(next_attempt_at=past)

    assert services.retry_due_deliveries() == 1

    lost.refresh_from_db()
    assert Task.objects.get(id=lost.task_id).status == "pending"
    assert WebhookDelivery.objects.get(id=kept.id).task_id == kept.task_id


def test_cleanup_removes_only_finished_deliveries_past_retention(receiver):
    endpoint_for(receiver)
    old_done, old_failed, old_open, recent = (
        services.publish("invoice.paid", {})[0] for _ in range(4)
    )
    for d in (old_done, old_failed, recent):
        deliver_next(d)
    WebhookDelivery.objects.filter(id=old_failed.id).update(status="permanently_failed")
    long_ago = timezone.now() - dt.timedelta(days=31)
    WebhookDelivery.objects.exclude(id=recent.id).update(created_at=long_ago)

    assert services.cleanup_deliveries(older_than_days=30) == 2

    assert set(WebhookDelivery.objects.values_list("id", flat=True)) == {old_open.id, recent.id}
    assert not DeliveryAttempt.objects.filter(delivery_id__in=[old_done.id, old_failed.id])


def test_rotating_a_secret_signs_with_both_until_the_overlap_ends(receiver):
    endpoint, old = endpoint_for(receiver)
    new = services.rotate_secret(endpoint.id, overlap_hours=1)
    [delivery] = services.publish("invoice.paid", {})

    deliver_next(delivery)

    request = receiver.requests[0]
    assert len(request.headers["webhook-signature"].split()) == 2
    assert verify(request.body, request.headers, old) and verify(request.body, request.headers, new)
