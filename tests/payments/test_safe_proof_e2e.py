"""The settle workflow with real workers when the user executes the SafeTx themselves.

The worker reaches the chain through an RPC proxy (tests/payments/rpc_proxy.py); just before our
gas estimate arrives, the test signs with the user and server owner keys and executes from
another funded account, straight on anvil: the same SafeTx (the payment must end completed and
the Safe transaction executed, never refunded) or another SafeTx with the same nonce (ours
can then never execute: failed, and the payment refunded — only after the log search).
"""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from payments.chain.client import SafeOnChain
from payments.models import Payment, SafeTransaction
from taskhub.console.roles import create_user
from taskhub.models import Task
from tests.payments.rpc_proxy import RpcProxy
from tests.payments.test_payment_flow import signed_safe_tx, steps_of, wait_quiet, wait_run
from tests.payments.test_safe_execution_proof import execute_elsewhere
from tests.support import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def proxy(chain):
    with RpcProxy(chain.url) as running:
        yield running


@pytest.fixture(scope="module")
def stack_env(provider_settings, proxy):
    """The workers reach the chain through the proxy (bounded log ranges, acts on the chain)."""
    return {**provider_settings, "TASKHUB_CHAIN_RPC_URL": proxy.url}


@pytest.fixture
def api(e2e):
    client = APIClient()
    client.force_authenticate(create_user(f"op-{time.time_ns()}", "operator")[0])
    return client


def pay_with_safe_tx(api, amount: str, key: str, spec: dict) -> Payment:
    body = {
        "user_id": "user-8",
        "amount": amount,
        "currency": "USD",
        "payment_method_id": "pm_card",
        "safe_transaction": spec,
    }
    response = api.post("/api/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.content
    return Payment.objects.get(id=response.json()["id"])


def test_the_user_executing_it_first_ends_executed_and_the_payment_is_not_refunded(
    api, chain, proxy
):
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    nonce = on_chain.nonce()
    spec = signed_safe_tx(chain, value=2_001)
    theirs: list[str] = []
    proxy.before["eth_estimateGas"] = lambda _: theirs.append(
        execute_elsewhere(chain, spec["transaction"])
    )

    payment = pay_with_safe_tx(api, "27.00", "order-user-executes", spec)

    run = wait_run(payment.workflow_run_id, "succeeded")
    row = SafeTransaction.objects.get(payment=payment)
    assert row.status == "executed" and row.failure_reason == ""
    assert theirs and row.eth_tx_hash == theirs[0]
    payment.refresh_from_db()
    assert payment.status == "completed" and payment.refund_id == ""
    steps = steps_of(run)
    assert [steps[k].status for k in ("payment", "safe", "track", "notify")] == ["completed"] * 4
    assert not Task.objects.filter(workflow_run_id=run.id, step_kind="compensation").exists()
    assert on_chain.nonce() == nonce + 1
    wait_quiet()


def test_a_nonce_taken_by_another_safe_tx_fails_and_refunds_only_after_the_search(
    api, chain, proxy
):
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    nonce = on_chain.nonce()
    spec = signed_safe_tx(chain, value=2_002)
    other = {**spec["transaction"], "value": "3"}
    taken: list[str] = []
    proxy.before["eth_estimateGas"] = lambda _: taken.append(execute_elsewhere(chain, other))
    proxy.log_ranges.clear()

    payment = pay_with_safe_tx(api, "28.00", "order-nonce-taken", spec)

    run = wait_run(payment.workflow_run_id, "compensated")
    row = SafeTransaction.objects.get(payment=payment)
    assert row.status == "failed"
    assert "not executed" in row.failure_reason and "so it never will" in row.failure_reason
    payment.refresh_from_db()
    assert payment.status == "refunded" and payment.refund_id
    steps = steps_of(run)
    refund = wait_for(
        lambda: Task.objects.filter(
            workflow_run_id=run.id, step_kind="compensation", status="completed"
        ).first()
    )
    assert steps["safe"].status == "failed"
    # The search that proved the absence reached the head after our nonce was taken, and it
    # ran before the refund started.
    taken_in = chain.w3.eth.get_transaction_receipt(taken[0])["blockNumber"]
    last_search = max(proxy.log_ranges, key=lambda r: r[1])
    assert last_search[1] >= taken_in
    assert last_search[2] < refund.started_at.timestamp()
    assert on_chain.nonce() == nonce + 1
    wait_quiet()
