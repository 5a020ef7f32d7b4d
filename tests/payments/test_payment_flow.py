"""Payments end to end: real workers, the provider sandbox over HTTP, callbacks into the live
web server, and the Safe transaction executed on anvil."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from django.conf import settings
from eth_account import Account
from rest_framework.test import APIClient

import taskhub
from payments.chain.client import SafeOnChain
from payments.chain.safe_tx import parse_safe_tx, safe_tx_hash
from payments.models import Payment, ProviderEvent, SafeTransaction
from taskhub.console.roles import create_user
from taskhub.models import Task
from taskhub.workflows.models import WorkflowRun
from tests.support import wait_for, wait_status

pytestmark = pytest.mark.e2e
RECIPIENT = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
def api(e2e):
    client = APIClient()
    client.force_authenticate(create_user(f"op-{time.time_ns()}", "operator")[0])
    return client


def pay(api, amount: str, key: str, **extra):
    body = {
        "user_id": "user-7",
        "amount": amount,
        "currency": "USD",
        "payment_method_id": "pm_card",
        **extra,
    }
    return api.post("/api/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def wait_payment(payment_id, statuses, timeout=30) -> Payment:
    wanted = (statuses,) if isinstance(statuses, str) else statuses
    return wait_for(
        lambda: Payment.objects.filter(id=payment_id, status__in=wanted).first(),
        timeout=timeout,
        message=f"payment {payment_id} to be {wanted}",
    )


def signed_safe_tx(chain, value=10**15) -> dict:
    nonce = SafeOnChain(chain.w3, chain.safe_address).nonce()
    fields = {"to": RECIPIENT, "value": str(value), "nonce": nonce}
    tx_hash = safe_tx_hash(parse_safe_tx(fields), chain.chain_id, chain.safe_address)
    signature = bytes(Account.unsafe_sign_hash(tx_hash, chain.user_key).signature)
    return {
        "safe_address": chain.safe_address,
        "chain_id": chain.chain_id,
        "transaction": fields,
        "user_signature": "0x" + signature.hex(),
    }


def blockchain_tasks(payment: Payment):
    return Task.objects.filter(
        name="payments.execute_safe_transaction", correlation_id=payment.correlation_id
    )


def wait_run(run_id, status: str, timeout=60) -> WorkflowRun:
    def check():
        run = WorkflowRun.objects.get(id=run_id)
        if run.status in ("failed", "compensation_failed", "cancelled") and status != run.status:
            raise AssertionError(f"run ended {run.status}: {run.error}")
        return run if run.status == status else None

    return wait_for(check, timeout=timeout, message=f"run {run_id} to be {status}")


def steps_of(run) -> dict[str, Task]:
    return {t.step_key: t for t in Task.objects.filter(workflow_run_id=run.id)}


def completion_order(run) -> list[str]:
    rows = Task.objects.filter(workflow_run_id=run.id, status="completed")
    return [t.step_key for t in rows.order_by("completed_at", "started_at")]


def test_a_completed_payment_executes_its_safe_transaction_on_chain_once(api, chain):
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    nonce_before = on_chain.nonce()
    spec = signed_safe_tx(chain)

    first = pay(api, "25.00", "order-1001", safe_transaction=spec)
    again = pay(api, "25.00", "order-1001", safe_transaction=spec)
    conflict = pay(api, "25.01", "order-1001", safe_transaction=spec)

    assert (first.status_code, again.status_code, conflict.status_code) == (201, 200, 409)
    assert again.json()["id"] == first.json()["id"]
    payment = wait_payment(first.json()["id"], "completed")
    row = wait_for(
        lambda: SafeTransaction.objects.filter(payment=payment, status="executed").first(),
        timeout=40,
        message="the Safe transaction to be executed",
    )
    assert on_chain.nonce() == nonce_before + 1
    execution = on_chain.find_execution(row.safe_tx_hash, 0)
    assert execution.success and execution.eth_tx_hash == row.eth_tx_hash
    assert Payment.objects.filter(idempotency_key="order-1001").count() == 1
    assert blockchain_tasks(payment).count() == 1
    # The path ran as one settle workflow run, its steps in order, each once.
    run = wait_run(payment.workflow_run_id, "succeeded")
    assert run.name == "payments.settle"
    assert completion_order(run) == ["payment", "safe", "track", "notify"]
    steps = steps_of(run)
    assert all(t.status == "completed" and t.attempt >= 1 for t in steps.values())
    assert steps["safe"].attempt == 1
    assert str(steps["safe"].id) == str(payment.blockchain_task_id) == str(row.execute_task_id)
    assert steps["payment"].completed_at <= steps["safe"].started_at
    assert not Task.objects.filter(workflow_run_id=run.id, step_kind="compensation").exists()
    assert steps["notify"].result["channels"]["in_app"] == "sent"
    detail = api.get(f"/api/payments/{payment.id}").json()
    assert detail["safe_transaction"]["status"] == "executed"
    assert {t["name"] for t in detail["tasks"]} >= {
        "payments.process_dtr_payment",
        "payments.execute_safe_transaction",
        "payments.track_safe_transaction",
        "notifications.deliver",
    }
    # The callback the sandbox sent for the completion arrived and changed nothing more.
    wait_for(
        lambda: ProviderEvent.objects.filter(
            provider_payment_id=payment.provider_payment_id, processed_at__isnull=False
        ).exists()
    )
    assert blockchain_tasks(payment).count() == 1


def test_a_declined_payment_fails_and_its_safe_step_never_runs(api, chain):
    response = pay(api, "10.13", "order-decline", safe_transaction=signed_safe_tx(chain))

    payment = wait_payment(response.json()["id"], "failed")

    assert "declined" in payment.failure_reason
    # The run unwinds, but nothing had completed: no compensation runs, nothing is refunded.
    run = wait_run(payment.workflow_run_id, "compensated")
    assert "declined" in run.error
    steps = steps_of(run)
    assert steps["payment"].status == "failed"
    assert {k: (t.status, t.attempt) for k, t in steps.items() if k != "payment"} == {
        "safe": ("skipped", 0),
        "track": ("skipped", 0),
        "notify": ("skipped", 0),
    }
    assert blockchain_tasks(payment).get().started_at is None
    assert SafeTransaction.objects.get(payment=payment).status == "proposed"
    assert Payment.objects.get(id=payment.id).status == "failed"


def test_a_safe_execution_that_fails_for_good_refunds_the_payment_once(api, chain, sandbox):
    # More wei than the Safe holds, with safeTxGas 0: execTransaction reverts (GS013) whatever
    # is retried — a permanent failure, found after the payment completed.
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    nonce_before = on_chain.nonce()
    spec = signed_safe_tx(chain, value=10**30)

    response = pay(api, "40.00", "order-refund", safe_transaction=spec)

    payment = Payment.objects.get(id=response.json()["id"])
    run = wait_run(payment.workflow_run_id, "compensated")
    payment = Payment.objects.get(id=payment.id)
    assert payment.status == "refunded" and payment.refund_id.startswith("dtr_ref_")
    assert payment.completed_at <= payment.refunded_at
    steps = steps_of(run)
    assert (steps["payment"].status, steps["safe"].status) == ("completed", "failed")
    assert "would revert" in steps["safe"].error
    assert (steps["track"].status, steps["notify"].status) == ("skipped", "skipped")
    refunds = [t for t in steps.values() if t.step_kind == "compensation"]
    assert [(t.step_key, t.name, t.status, t.attempt) for t in refunds] == [
        ("compensate:payment", "payments.refund_dtr_payment", "completed", 1)
    ]
    assert refunds[0].compensates_id == steps["payment"].id
    assert refunds[0].result == {
        "payment_id": str(payment.id),
        "status": "refunded",
        "refund_id": payment.refund_id,
    }
    assert steps["payment"].completed_at <= steps["safe"].started_at
    assert steps["safe"].completed_at <= refunds[0].started_at
    # The provider refunded once, and the Safe never executed.
    at_provider = _dtr_get(f"/v1/payments/{payment.provider_payment_id}")
    assert at_provider["status"] == "refunded"
    assert at_provider["refund"]["id"] == payment.refund_id
    assert at_provider["refund"]["requests"] == 1
    assert SafeTransaction.objects.get(payment=payment).status == "failed"
    assert on_chain.nonce() == nonce_before
    # The provider's callback about the refund arrives and changes nothing more.
    wait_for(
        lambda: [c for c in _callbacks(sandbox, payment) if b"refunded" in c["body"].encode()],
        message="the refund callback",
    )
    time.sleep(1)
    assert Payment.objects.get(id=payment.id).status == "refunded"
    assert WorkflowRun.objects.get(id=run.id).status == "compensated"
    wait_quiet()


def wait_quiet(timeout=30) -> None:
    """Until no task is in flight or due, so the flush between tests never deletes rows a worker is
    still writing the outcome of (a missing row makes its outcome writer fail and retry)."""
    from django.utils import timezone

    active = Task.objects.filter(status__in=("queued", "running")) | Task.objects.filter(
        status__in=("pending", "retrying"), scheduled_at__lte=timezone.now()
    )
    try:
        wait_for(lambda: not active.exists(), timeout=timeout, message="every task to finish")
    except AssertionError:
        left = list(active.values_list("name", "status", "attempt", "error"))
        raise AssertionError(f"tasks still unfinished after {timeout}s: {left}") from None


def _dtr_get(path: str) -> dict:
    from payments.providers import get_provider

    return get_provider("dtr")._request("GET", path)


def test_a_payment_completed_only_by_a_later_callback_completes(api):
    response = pay(api, "10.42", "order-callback")
    payment = wait_payment(response.json()["id"], "processing")

    payment = wait_payment(payment.id, "completed")
    # The run's payment step waited for the callback's outcome, then the run went on.
    run = wait_run(payment.workflow_run_id, "succeeded")
    assert completion_order(run) == ["payment", "notify"]

    event = ProviderEvent.objects.get(
        provider_payment_id=payment.provider_payment_id, raw_body__contains="completed"
    )
    assert event.signature_valid
    wait_for(lambda: ProviderEvent.objects.get(id=event.id).processed_at)


def test_a_payment_stuck_in_processing_is_reconciled_from_the_provider(api):
    response = pay(api, "10.77", "order-stuck")
    payment = wait_payment(response.json()["id"], "processing")
    time.sleep(1.5)  # the sandbox completes it silently after 0.5 s
    assert Payment.objects.get(id=payment.id).status == "processing"

    assert WorkflowRun.objects.get(id=payment.workflow_run_id).status == "running"

    task = taskhub.schedule("payments.reconcile_stuck", {"older_than": 0})
    wait_status(task.id, "completed")

    assert Payment.objects.get(id=payment.id).status == "completed"
    assert Task.objects.get(id=task.id).result["changed"] >= 1
    # The run waited on the row (the payment step only reads it) and now goes on.
    run = wait_run(payment.workflow_run_id, "succeeded", timeout=60)
    assert completion_order(run) == ["payment", "notify"]


def _callbacks(sandbox, payment: Payment) -> list[dict]:
    sent = httpx.get(f"{sandbox}/_sandbox/callbacks").json()["callbacks"]
    return [c for c in sent if payment.provider_payment_id in c["body"]]


def test_bad_signature_replayed_and_stale_callbacks_change_nothing(api, sandbox, live_server):
    payment = wait_payment(pay(api, "12.00", "order-replay").json()["id"], "completed")
    captured = wait_for(lambda: _callbacks(sandbox, payment), message="the sandbox's callback")[0]
    wait_for(
        lambda: ProviderEvent.objects.filter(
            provider_payment_id=payment.provider_payment_id, processed_at__isnull=False
        ).exists()
    )
    url = f"{live_server.url}/api/payments/callbacks/dtr"
    events_before, tasks_before = ProviderEvent.objects.count(), Task.objects.count()

    replayed = httpx.post(url, content=captured["body"], headers=captured["headers"])
    tampered = httpx.post(
        url, content=captured["body"].replace("completed", "canceled"), headers=captured["headers"]
    )
    unsigned = httpx.post(url, content=captured["body"])
    stale_body = json.dumps(
        {
            "id": "evt_stale",
            "type": "payment.updated",
            "created_at": 1,
            "data": {"payment_id": payment.provider_payment_id, "status": "canceled"},
        }
    ).encode()
    stale = httpx.post(
        url,
        content=stale_body,
        headers={"X-DTR-Signature": _sign(stale_body, timestamp=int(time.time()) - 3600)},
    )

    assert replayed.status_code == 200 and replayed.json()["duplicate"] is True
    assert (tampered.status_code, unsigned.status_code, stale.status_code) == (401, 401, 400)
    assert "stale" in stale.json()["error"]
    assert ProviderEvent.objects.count() == events_before
    assert Task.objects.count() == tasks_before
    assert Payment.objects.get(id=payment.id).status == "completed"


def _sign(body: bytes, timestamp: int) -> str:
    import hashlib
    import hmac

    secret = settings.PAYMENTS["DTR_WEBHOOK_SECRET"].encode()
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def test_no_secret_reaches_task_payloads_events_logs_or_the_api(api, chain):
    from taskhub.models import TaskEvent, TaskLog

    secrets = [
        chain.server_key[2:],
        chain.relayer_key[2:],
        settings.PAYMENTS["DTR_API_SECRET"],
        settings.PAYMENTS["DTR_WEBHOOK_SECRET"],
    ]
    payment = wait_payment(
        pay(api, "3.00", "order-secrets", safe_transaction=signed_safe_tx(chain)).json()["id"],
        "completed",
    )
    wait_for(
        lambda: SafeTransaction.objects.filter(payment=payment, status="executed").exists(),
        timeout=40,
    )

    stored = json.dumps(
        [
            list(Task.objects.values_list("payload", "result", "error", "traceback")),
            list(TaskEvent.objects.values_list("data", flat=True)),
            list(TaskLog.objects.values_list("message", flat=True)),
            api.get(f"/api/payments/{payment.id}").json(),
            api.get("/api/safe-transactions").json(),
        ],
        default=str,
    )
    for secret in secrets:
        assert secret not in stored
