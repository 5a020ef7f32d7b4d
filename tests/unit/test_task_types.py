"""The task type: declared by the task, checked when it is declared, written on every row the
task gets (however it is inserted), and declared by the domain apps and built-in tasks."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.utils import timezone

from taskhub import TaskType, schedule, schedule_many, task
from taskhub.definitions import registry
from taskhub.definitions.registry import all_definitions, get_definition
from taskhub.engine.enqueue import (
    BULK_STATEMENT_THRESHOLD,
    COPY_THRESHOLD,
    ScheduleOptions,
    _row_factory,
    insert_rows,
)
from taskhub.models import Task

pytestmark = pytest.mark.django_db


def stored_types(rows) -> set[str]:
    return set(Task.objects.filter(id__in=[r.id for r in rows]).values_list("task_type", flat=True))


def test_a_task_declares_its_type_by_member_or_by_value_and_none_means_other():
    assert get_definition("test.typed.payment").task_type is TaskType.PAYMENT_PROCESSING
    assert get_definition("test.typed.kyc").task_type is TaskType.KYC_VERIFICATION
    assert get_definition("test.noop").task_type is TaskType.OTHER


def test_an_unknown_type_is_refused_when_the_task_is_declared_and_nothing_is_registered():
    with pytest.raises(ValueError, match="unknown task type 'payments'.*payment_processing"):

        @task("test.badly_typed", type="payments")
        def badly_typed(payload: dict) -> None:
            return None

    assert "test.badly_typed" not in all_definitions()


def test_a_scheduled_row_carries_its_tasks_type():
    typed, untyped = schedule("test.typed.payment", {}), schedule("test.noop", {})

    assert stored_types([typed]) == {"payment_processing"}
    assert stored_types([untyped]) == {"other"}
    assert typed.task_type == "payment_processing"  # the returned row says so too


@pytest.mark.parametrize("count", [3, BULK_STATEMENT_THRESHOLD])
def test_a_bulk_schedule_types_every_row_whichever_way_it_inserts(count):
    # Below the threshold rows go through the ORM; from it on (PostgreSQL) one statement.
    rows = schedule_many("test.typed.kyc", [{"n": i} for i in range(count)])

    assert stored_types(rows) == {"kyc_verification"}
    assert {r.task_type for r in rows} == {"kyc_verification"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
def test_rows_copied_in_bulk_keep_their_type():
    definition = get_definition("test.typed.payment")
    now = timezone.now()
    options = ScheduleOptions(
        priority=0,
        max_attempts=1,
        scheduled_at=now,
        correlation_id="",
        user_id="",
        timeout=10.0,
    )
    make_row = _row_factory(definition, options, now)
    rows = [make_row({"n": i}) for i in range(COPY_THRESHOLD)]

    insert_rows(rows)

    assert stored_types(rows) == {"payment_processing"}


# The type each task of this repository declares: the domain apps' and the built-in ones.
DECLARED = {
    "payments.process_dtr_payment": TaskType.PAYMENT_PROCESSING,
    "payments.refund_dtr_payment": TaskType.PAYMENT_PROCESSING,
    "payments.refresh_dtr_payment": TaskType.PAYMENT_PROCESSING,
    "payments.reconcile_stuck": TaskType.PAYMENT_PROCESSING,
    "payments.execute_safe_transaction": TaskType.BLOCKCHAIN_TRANSACTION,
    "payments.track_safe_transaction": TaskType.BLOCKCHAIN_TRANSACTION,
    "blockchain.index_subscriptions": TaskType.BLOCKCHAIN_TRANSACTION,
    "blockchain.handle_event": TaskType.BLOCKCHAIN_TRANSACTION,
    "kyc.process_document": TaskType.KYC_VERIFICATION,
    "kyc.refresh_case": TaskType.KYC_VERIFICATION,
    "kyc.notify_decision": TaskType.NOTIFICATION_DELIVERY,
    "notifications.deliver": TaskType.NOTIFICATION_DELIVERY,
    "notifications.operator_alert": TaskType.NOTIFICATION_DELIVERY,
    "webhooks.deliver": TaskType.NOTIFICATION_DELIVERY,
    "email.send": TaskType.NOTIFICATION_DELIVERY,
    "data.sync": TaskType.DATA_SYNC,
    "data.process_batch": TaskType.DATA_SYNC,
    # Maintenance and generic tasks declare none.
    "webhooks.retry_due": TaskType.OTHER,
    "webhooks.cleanup": TaskType.OTHER,
    "http.request": TaskType.OTHER,
    "taskhub.ping": TaskType.OTHER,
    "taskhub.prune": TaskType.OTHER,
}


def test_the_domain_apps_and_built_in_tasks_declare_their_types():
    definitions = all_definitions()
    assert {name: definitions[name].task_type for name in DECLARED} == DECLARED


def test_the_migration_gives_rows_written_before_it_their_tasks_type(monkeypatch):
    migration = importlib.import_module("taskhub.migrations.0009_task_type")
    typed = schedule("test.typed.payment", {})
    untyped = schedule("test.noop", {})
    gone = schedule("test.typed.kyc", {})
    Task.objects.filter(id__in=[typed.id, untyped.id, gone.id]).update(task_type="other")
    # A row of a task this code no longer declares keeps what it has.
    declared = {n: d for n, d in all_definitions().items() if n != "test.typed.kyc"}
    monkeypatch.setattr(registry, "all_definitions", lambda: declared)

    migration.type_existing_rows(django_apps, None)

    assert stored_types([typed]) == {"payment_processing"}
    assert stored_types([untyped]) == {"other"}
    assert stored_types([gone]) == {"other"}
