"""A Safe transaction is marked failed only once the chain proves it did not execute.

The server's signature is visible before execution (the API lists the confirmations; the
transaction service publishes them), so the user can execute the SafeTx themselves while our
task is between steps or between attempts. These tests do exactly that on anvil — sign with the
owners, execute from another funded account — through an RPC proxy that refuses wide log
queries like hosted nodes do, then run our task (in-process) and look at what it recorded.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from eth_account import Account
from web3 import Web3

import taskhub
from payments import safe
from payments.chain import devchain
from payments.chain.client import SafeOnChain
from payments.chain.safe_tx import combine_signatures, parse_safe_tx, safe_tx_hash, sign_hash
from payments.models import SafeTransaction
from tests.payments.rpc_proxy import RpcProxy

pytestmark = pytest.mark.django_db

RECIPIENT = Web3.to_checksum_address("0x000000000000000000000000000000000000f00d")
#: the proxy refuses eth_getLogs over more blocks than this; taskhub searches in smaller ranges
PROXY_LOG_LIMIT = 2000
OTHER_ACCOUNT = Account.from_key(devchain.dev_key(5)).address


@pytest.fixture
def proxy(chain, provider_settings):
    """Our code talks to anvil through the proxy; the test acts on anvil directly."""
    with RpcProxy(chain.url, max_log_blocks=PROXY_LOG_LIMIT) as running:
        saved = settings.PAYMENTS["CHAIN_RPC_URL"]
        settings.PAYMENTS["CHAIN_RPC_URL"] = running.url
        try:
            yield running
        finally:
            settings.PAYMENTS["CHAIN_RPC_URL"] = saved


def fields_for(chain, value: int, nonce: int | None = None) -> dict:
    nonce = SafeOnChain(chain.w3, chain.safe_address).nonce() if nonce is None else nonce
    return {"to": RECIPIENT, "value": value, "nonce": nonce}


def accept(chain, fields: dict) -> SafeTransaction:
    """POST /api/safe-transactions' work: the user's signature, stored, execution scheduled."""
    tx_hash = safe_tx_hash(parse_safe_tx(fields), chain.chain_id, chain.safe_address)
    signature = Account.unsafe_sign_hash(tx_hash, chain.user_key).signature
    row, created = safe.create_safe_transaction(
        {
            "safe_address": chain.safe_address,
            "chain_id": chain.chain_id,
            "transaction": fields,
            "user_signature": "0x" + bytes(signature).hex(),
            "user_id": "user-proof",
        }
    )
    assert created
    return row


def execute_elsewhere(chain, fields: dict) -> str:
    """What the user can do once the server's signature is out: sign with the user and server
    owner keys and send execTransaction from another funded account, straight to anvil."""
    tx = parse_safe_tx(fields)
    tx_hash = safe_tx_hash(tx, chain.chain_id, chain.safe_address)
    signatures = combine_signatures(
        [sign_hash(chain.user_key, tx_hash), sign_hash(chain.server_key, tx_hash)]
    )
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    sent = on_chain.exec_call(tx.exec_args(), signatures).transact({"from": OTHER_ACCOUNT})
    receipt = chain.w3.eth.wait_for_transaction_receipt(sent, timeout=30)
    assert receipt["status"] == 1
    return "0x" + bytes(receipt["transactionHash"]).hex()


def mine(chain, blocks: int) -> None:
    for _ in range(0, blocks, 100):  # anvil mines one large batch much more slowly than many
        chain.w3.provider.make_request("anvil_mine", [hex(100)])


def assert_searched_in_bounded_ranges(proxy: RpcProxy, start: int) -> None:
    assert proxy.log_ranges, "the chain's logs were never searched"
    for low, high, _ in proxy.log_ranges:
        assert high - low + 1 <= PROXY_LOG_LIMIT
        assert low >= start


def test_executed_by_the_user_just_before_our_gas_estimate_is_recorded_as_executed(chain, proxy):
    fields = fields_for(chain, value=1_001)
    row = accept(chain, fields)
    nonce = fields["nonce"]
    balance = chain.w3.eth.get_balance(RECIPIENT)
    theirs: list[str] = []
    # Our task has just countersigned; the user executes before our gas estimate reaches the node.
    proxy.before["eth_estimateGas"] = lambda _: theirs.append(execute_elsewhere(chain, fields))

    assert safe.execute(row.id) == "submitted"
    assert safe.track(row.id) == "executed"

    row.refresh_from_db()
    assert theirs and row.eth_tx_hash == theirs[0]
    assert row.failure_reason == ""
    assert "eth_sendRawTransaction" not in proxy.methods  # our relayer never sent one
    assert SafeOnChain(chain.w3, chain.safe_address).nonce() == nonce + 1
    assert chain.w3.eth.get_balance(RECIPIENT) == balance + 1_001
    assert_searched_in_bounded_ranges(proxy, row.search_from_block)


def test_executed_between_our_attempts_long_ago_is_found_by_a_bounded_search(chain, proxy):
    fields = fields_for(chain, value=1_002)
    row = accept(chain, fields)
    proxy.failing.add("eth_estimateGas")  # the first attempt dies after countersigning

    with pytest.raises(Exception, match="unavailable"):
        safe.execute(row.id)
    assert SafeTransaction.objects.get(id=row.id).status == "confirmed"

    theirs = execute_elsewhere(chain, fields)
    mine(chain, PROXY_LOG_LIMIT + 500)  # the retry comes much later: a wide log query is refused
    proxy.failing.clear()

    assert safe.execute(row.id) == "submitted"
    assert safe.track(row.id) == "executed"
    row.refresh_from_db()
    assert row.eth_tx_hash == theirs
    assert row.search_from_block is not None
    assert_searched_in_bounded_ranges(proxy, row.search_from_block)


def test_a_nonce_taken_by_another_transaction_fails_only_once_the_search_proves_absence(
    chain, proxy
):
    fields = fields_for(chain, value=1_003)
    row = accept(chain, fields)
    nonce = fields["nonce"]
    other = {**fields, "value": 7}  # another SafeTx with the same nonce, executed by the user

    def take_the_nonce_then_lose_the_logs(_params):
        execute_elsewhere(chain, other)
        proxy.failing.add("eth_getLogs")  # the node cannot answer the search for a while

    proxy.before["eth_estimateGas"] = take_the_nonce_then_lose_the_logs

    with pytest.raises(Exception) as first:
        safe.execute(row.id)
    # No proof, no verdict: the task retries (not a permanent error) and nothing is failed.
    assert not isinstance(first.value, taskhub.PermanentError)
    assert SafeTransaction.objects.get(id=row.id).status == "confirmed"

    mine(chain, PROXY_LOG_LIMIT + 500)
    proxy.failing.clear()
    proxy.log_ranges.clear()
    with pytest.raises(taskhub.PermanentError, match="already used"):
        safe.execute(row.id)

    row.refresh_from_db()
    assert row.status == "failed"
    assert "already used" in row.failure_reason
    assert "not executed" in row.failure_reason and "so it never will" in row.failure_reason
    assert "eth_sendRawTransaction" not in proxy.methods
    assert SafeOnChain(chain.w3, chain.safe_address).nonce() == nonce + 1
    # The search covered every block from the recorded start to the head, in bounded ranges.
    assert_searched_in_bounded_ranges(proxy, row.search_from_block)
    covered = sorted((low, high) for low, high, _ in proxy.log_ranges)
    assert covered[0][0] == row.search_from_block
    assert covered[-1][1] >= chain.w3.eth.block_number - 1
    for (_, high), (low, _) in zip(covered, covered[1:], strict=False):
        assert low <= high + 1


def test_a_row_without_a_recorded_start_block_still_finds_the_execution(chain, proxy):
    fields = fields_for(chain, value=1_004)
    row = accept(chain, fields)
    theirs = execute_elsewhere(chain, fields)
    mine(chain, 300)  # within the past state anvil keeps, which the bisection reads
    # As for a row accepted before the start block was recorded, or while the node was down.
    SafeTransaction.objects.filter(id=row.id).update(search_from_block=None)

    assert safe.execute(row.id) == "submitted"
    assert safe.track(row.id) == "executed"
    row.refresh_from_db()
    assert row.eth_tx_hash == theirs
    assert_searched_in_bounded_ranges(proxy, 0)


def test_with_a_confirmation_depth_the_nonce_taker_must_be_that_deep_before_failing(chain, proxy):
    fields = fields_for(chain, value=1_005)
    row = accept(chain, fields)
    execute_elsewhere(chain, {**fields, "value": 9})  # another SafeTx takes the nonce
    saved = settings.PAYMENTS["CONFIRMATION_DEPTH"]
    settings.PAYMENTS["CONFIRMATION_DEPTH"] = 3
    try:
        with pytest.raises(safe.NotYetFinal, match="not 3 blocks deep"):
            safe.execute(row.id)
        assert SafeTransaction.objects.get(id=row.id).status == "proposed"

        mine(chain, 100)
        with pytest.raises(taskhub.PermanentError, match="already used"):
            safe.execute(row.id)
    finally:
        settings.PAYMENTS["CONFIRMATION_DEPTH"] = saved
    assert SafeTransaction.objects.get(id=row.id).status == "failed"
