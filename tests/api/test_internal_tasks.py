"""Internal tasks (``@task(..., external=False)``) cannot be scheduled from outside.

The money-moving and workflow-step tasks of payments, kyc and the task that runs Django Tasks
name rows (a payment, a Safe transaction, a module path) that only the owning code may act on:
the API answers 400 and stores nothing, the CLI exits 2, the admin shows a form error, stored
schedules are refused. The application's own code still schedules them.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from taskhub.definitions.registry import all_definitions
from taskhub.engine.enqueue import schedule
from taskhub.models import Task, TaskSchedule

pytestmark = pytest.mark.django_db

#: task -> a payload it would accept
INTERNAL = {
    "payments.process_dtr_payment": {"payment_id": "p-1"},
    "payments.refund_dtr_payment": {"payment_id": "p-1"},
    "payments.refresh_dtr_payment": {"provider_payment_id": "dtr-1"},
    "payments.execute_safe_transaction": {"safe_transaction_id": "s-1"},
    "payments.track_safe_transaction": {"safe_transaction_id": "s-1"},
    "kyc.process_document": {"case_id": "c-1"},
    "kyc.notify_decision": {"case_id": "c-1", "submission": 1},
    "kyc.refresh_case": {"provider": "p", "external_id": "e-1"},
    "django_tasks.run": {"module_path": "tests.contrib.djtasks.noop_task"},
}


def test_the_money_moving_and_workflow_step_tasks_are_declared_internal():
    definitions = all_definitions()
    assert {name for name in INTERNAL if definitions[name].external} == set()
    # plain tasks stay schedulable from outside by default
    assert definitions["taskhub.ping"].external and definitions["http.request"].external


@pytest.mark.parametrize("name", sorted(INTERNAL))
def test_the_api_refuses_an_internal_task_with_400_and_stores_nothing(operator, name):
    response = operator.post("/api/tasks", {"task": name, "payload": INTERNAL[name]}, format="json")

    assert response.status_code == 400, response.content
    assert "internal" in response.json()["error"]
    assert "task" in response.json()["errors"]
    assert not Task.objects.exists()


def test_bulk_scheduling_refuses_the_whole_batch_if_one_item_is_internal(operator):
    body = {
        "tasks": [
            {"task": "taskhub.ping"},
            {"task": "payments.refund_dtr_payment", "payload": {"payment_id": "p"}},
        ]
    }

    response = operator.post("/api/tasks/bulk", body, format="json")

    assert response.status_code == 400, response.content
    assert "internal" in response.json()["error"]
    assert not Task.objects.exists()


def test_an_external_task_is_still_scheduled_through_the_api(operator):
    response = operator.post("/api/tasks", {"task": "taskhub.ping"}, format="json")

    assert response.status_code == 201
    assert Task.objects.get().name == "taskhub.ping"


@pytest.mark.parametrize("from_file", [False, True], ids=["payload", "from-file"])
def test_the_cli_refuses_an_internal_task_with_exit_code_2(tmp_path, from_file):
    args = ["taskhub", "enqueue", "payments.execute_safe_transaction"]
    if from_file:
        lines = tmp_path / "payloads.jsonl"
        lines.write_text('{"safe_transaction_id": "s-1"}\n')
        args += ["--from-file", str(lines)]
    else:
        args += ["--payload", '{"safe_transaction_id": "s-1"}']

    with pytest.raises(CommandError) as refused:
        call_command(*args)

    assert refused.value.returncode == 2 and "internal" in str(refused.value)
    assert not Task.objects.exists()


def test_the_cli_refuses_a_stored_schedule_of_an_internal_task_with_exit_code_2():
    with pytest.raises(CommandError) as refused:
        call_command(
            "taskhub",
            "schedule-add",
            "refund-all",
            "--task",
            "payments.refund_dtr_payment",
            "--cron",
            "* * * * *",
            "--payload",
            '{"payment_id": "p-1"}',
        )

    assert refused.value.returncode == 2 and "internal" in str(refused.value)
    assert not TaskSchedule.objects.exists()


def test_stored_schedules_of_an_internal_task_are_refused_through_the_api(admin):
    body = {
        "name": "refund-all",
        "task": "payments.refund_dtr_payment",
        "payload": {"payment_id": "p-1"},
        "cron": "* * * * *",
    }

    response = admin.post("/api/schedules", body, format="json")

    assert response.status_code == 400, response.content
    assert "internal" in response.json()["error"]
    assert not TaskSchedule.objects.filter(name="refund-all").exists()


def test_a_stored_schedule_cannot_be_changed_to_an_internal_task(admin):
    created = admin.post(
        "/api/schedules",
        {"name": "ping", "task": "taskhub.ping", "cron": "* * * * *"},
        format="json",
    )
    assert created.status_code == 201, created.content

    response = admin.patch(
        "/api/schedules/ping",
        {"task": "payments.refund_dtr_payment", "payload": {"payment_id": "p-1"}},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert TaskSchedule.objects.get(name="ping").task_name == "taskhub.ping"


def test_the_admin_refuses_a_schedule_of_an_internal_task_with_a_form_error(client):
    from taskhub.console.roles import create_user

    user, _, _ = create_user("admin-person", "admin")
    client.force_login(user)
    form = {
        "name": "refund-all",
        "task_name": "payments.refund_dtr_payment",
        "payload": '{"payment_id": "p-1"}',
        "cron": "* * * * *",
        "timezone": "UTC",
        "enabled": "on",
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
    }

    response = client.post("/admin/taskhub/taskschedule/add/", form)

    assert response.status_code == 200  # the form again, with the error
    assert "is internal" in response.content.decode()
    assert not TaskSchedule.objects.filter(name="refund-all").exists()


def test_the_application_code_still_schedules_internal_tasks():
    row = schedule("payments.execute_safe_transaction", {"safe_transaction_id": "s-1"})

    assert Task.objects.get(id=row.id).name == "payments.execute_safe_transaction"


@pytest.mark.parametrize(
    "spec",
    [
        {
            "initialTask": {
                "type": "payments.execute_safe_transaction",
                "payload": {"safe_transaction_id": "s-1"},
            }
        },
        {
            "initialTask": {"type": "taskhub.ping"},
            "transitions": {
                "pay": {
                    "type": "taskhub.ping",
                    "after": "initial",
                    "compensation": "payments.refund_dtr_payment",
                }
            },
        },
    ],
    ids=["step", "compensation"],
)
def test_a_stored_workflow_definition_cannot_run_an_internal_task(operator, spec):
    from taskhub.workflows.models import WorkflowDefinition

    response = operator.post(
        "/api/workflow-definitions", {"name": "sneaky", "spec": spec}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "internal" in response.json()["error"]
    assert not WorkflowDefinition.objects.exists()
