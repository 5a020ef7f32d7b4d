"""taskhub's lifecycle events reach subscribed endpoints; webhooks never report on themselves."""

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from taskhub.engine.outcomes import Outcome
from taskhub.models import TaskStatus
from webhooks import services
from webhooks.events import publish_task_events
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def outcome(name="reports.build", status=TaskStatus.COMPLETED, **extra):
    now = timezone.now()
    return Outcome(
        task_id="6f0c0000-0000-0000-0000-000000000001",
        attempt=1,
        name=name,
        queue="default",
        status=status,
        started_at=now,
        finished_at=now,
        **extra,
    )


def published():
    return sorted(WebhookDelivery.objects.values_list("event_type", flat=True))


def test_a_completed_task_is_published_as_task_completed_with_its_result():
    services.create_endpoint("http://127.0.0.1:9/hook", ["task.*"])

    publish_task_events(None, outcomes=[outcome(result={"rows": 3})])

    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "task.completed"
    assert delivery.payload["result"] == {"rows": 3} and delivery.payload["status"] == "completed"


def test_a_failed_task_is_published_as_failed_and_dead_lettered():
    services.create_endpoint("http://127.0.0.1:9/hook", ["task.*"])
    retry_at = timezone.now() + dt.timedelta(seconds=5)

    publish_task_events(
        None,
        outcomes=[
            outcome(status=TaskStatus.FAILED, error="boom"),
            outcome(status=TaskStatus.RETRYING, error="flaky", retry_at=retry_at),
            outcome(status=TaskStatus.CANCELLED),
        ],
    )

    assert published() == ["task.cancelled", "task.dead_lettered", "task.failed", "task.retrying"]


def test_webhook_delivery_tasks_are_never_published_so_nothing_loops():
    services.create_endpoint("http://127.0.0.1:9/hook", ["*"])

    publish_task_events(
        None, outcomes=[outcome(name="webhooks.deliver"), outcome(name="webhooks.cleanup")]
    )

    assert published() == []


def test_only_subscribed_endpoints_get_lifecycle_events():
    services.create_endpoint("http://127.0.0.1:9/a", ["task.failed"])
    services.create_endpoint("http://127.0.0.1:9/b", ["invoice.*"])

    publish_task_events(None, outcomes=[outcome(), outcome(status=TaskStatus.FAILED)])

    assert published() == ["task.failed"]


def test_a_new_endpoint_is_seen_by_the_next_batch(django_capture_on_commit_callbacks):
    publish_task_events(None, outcomes=[outcome()])
    with django_capture_on_commit_callbacks(execute=True):
        services.create_endpoint("http://127.0.0.1:9/hook", ["task.*"])

    publish_task_events(None, outcomes=[outcome()])

    assert published() == ["task.completed"]


def test_the_command_line_adds_an_endpoint_publishes_and_lists_deliveries(capsys):
    call_command(
        "taskhub", "webhook-add", "http://127.0.0.1:9/hook", "--events", "invoice.*,user.*"
    )
    lines = capsys.readouterr().out.splitlines()
    endpoint_id, secret = lines[0].split()[1], lines[1].split()[1]
    assert secret.startswith("whsec_")
    assert WebhookEndpoint.objects.get(id=endpoint_id).event_types == ["invoice.*", "user.*"]

    call_command("taskhub", "webhook-publish", "invoice.paid", "--payload", '{"id": 7}')
    [delivery_id] = capsys.readouterr().out.split()
    call_command("taskhub", "deliveries", "--json")
    listed = capsys.readouterr().out
    call_command("taskhub", "webhooks", "--json")
    endpoints = capsys.readouterr().out

    [row] = json.loads(listed)
    assert row["id"] == delivery_id and row["event_type"] == "invoice.paid"
    assert row["status"] == "pending"
    assert secret not in listed and secret not in endpoints  # shown once, at creation


def test_the_command_line_refuses_a_bad_secret_with_exit_code_2():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as caught:
        call_command(
            "taskhub", "webhook-add", "http://127.0.0.1:9/", "--events", "*", "--secret", "hunter2"
        )
    assert caught.value.returncode == 2 and not WebhookEndpoint.objects.exists()
