"""kill -9 of the worker in the middle of a Safe execution: it executes exactly once."""

from __future__ import annotations

import pytest
from eth_account import Account

from payments import safe
from payments.chain.client import EXECUTION_SUCCESS, SafeOnChain
from payments.chain.safe_tx import parse_safe_tx, safe_tx_hash
from payments.models import SafeTransaction
from taskhub.models import Task
from tests.support import Stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FINAL = ["executed", "failed"]


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, provider_settings):
    # The worker stalls 20 s right after sending execTransaction, before recording it.
    env = {**provider_settings, "TASKHUB_TEST_PAUSE_AFTER_SUBMIT": "20"}
    running = Stack(processes=1, threads=2, env=env)
    with django_db_blocker.unblock():
        try:
            running.start()
        except BaseException:
            running.stop()  # never leave processes behind on the test database
            raise
    yield running
    running.stop()


def test_a_worker_killed_after_sending_exec_transaction_never_executes_twice(e2e, chain):
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    nonce = on_chain.nonce()
    fields = {"to": "0x000000000000000000000000000000000000c0De", "value": 12345, "nonce": nonce}
    tx_hash = safe_tx_hash(parse_safe_tx(fields), chain.chain_id, chain.safe_address)
    signature = bytes(Account.unsafe_sign_hash(tx_hash, chain.user_key).signature)
    row, _ = safe.create_safe_transaction(
        {
            "safe_address": chain.safe_address,
            "chain_id": chain.chain_id,
            "transaction": fields,
            "user_signature": "0x" + signature.hex(),
            "user_id": "user-9",
        }
    )
    wait_for(
        lambda: on_chain.find_execution(row.safe_tx_hash, 0),
        timeout=30,
        message="execTransaction to be mined",
    )
    assert SafeTransaction.objects.get(id=row.id).status != "submitted"  # still in the window

    e2e.kill9_worker_process()
    e2e.start_worker()

    done = wait_for(
        lambda: SafeTransaction.objects.filter(id=row.id, status__in=FINAL).first(),
        timeout=60,
        message="the Safe transaction to finish",
    )
    assert done.status == "executed"
    logs = chain.w3.eth.get_logs(
        {
            "address": chain.safe_address,
            "fromBlock": 0,
            "topics": [EXECUTION_SUCCESS, row.safe_tx_hash],
        }
    )
    assert len(logs) == 1
    assert on_chain.nonce() == nonce + 1
    assert Task.objects.get(id=row.execute_task_id).attempt >= 2
