"""Safe transactions against a real chain (anvil), run in-process: hashing, owners, execution."""

import pytest
from eth_account import Account
from web3 import Web3

from payments import safe
from payments.chain.client import SafeOnChain
from payments.chain.safe_tx import parse_safe_tx, safe_tx_hash
from payments.models import SafeTransaction

pytestmark = pytest.mark.django_db

RECIPIENT = "0x000000000000000000000000000000000000bEEF"


def user_signed(chain, nonce=None, value=10**15, key=None):
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    fields = {
        "to": RECIPIENT,
        "value": value,
        "nonce": on_chain.nonce() if nonce is None else nonce,
    }
    tx_hash = safe_tx_hash(parse_safe_tx(fields), chain.chain_id, chain.safe_address)
    signature = Account.unsafe_sign_hash(tx_hash, key or chain.user_key).signature
    return {
        "safe_address": chain.safe_address,
        "chain_id": chain.chain_id,
        "transaction": fields,
        "user_signature": "0x" + bytes(signature).hex(),
        "user_id": "user-1",
    }


def test_our_safe_tx_hash_is_the_one_the_safe_contract_computes(chain):
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    tx = parse_safe_tx({"to": RECIPIENT, "value": 5, "data": "0x1234", "nonce": 7})

    expected = on_chain.contract.functions.getTransactionHash(*tx.exec_args(), 7).call()

    assert safe_tx_hash(tx, chain.chain_id, chain.safe_address) == bytes(expected)


def test_a_signature_from_someone_who_is_not_an_owner_is_refused(chain, provider_settings):
    stranger = "0x" + bytes(Account.create().key).hex()

    with pytest.raises(safe.SafeRequestError) as refused:
        safe.create_safe_transaction(user_signed(chain, key=stranger))

    assert "user_signature" in refused.value.errors
    assert SafeTransaction.objects.count() == 0


def test_a_safe_transaction_executes_once_and_is_tracked_to_executed(chain, provider_settings):
    on_chain = SafeOnChain(chain.w3, chain.safe_address)
    nonce_before = on_chain.nonce()
    balance_before = chain.w3.eth.get_balance(RECIPIENT)
    row, created = safe.create_safe_transaction(user_signed(chain))

    assert created
    assert safe.execute(row.id) == "submitted"
    assert safe.execute(row.id) == "submitted"  # a duplicate run changes nothing
    assert safe.track(row.id) == "executed"

    row.refresh_from_db()
    assert on_chain.nonce() == nonce_before + 1
    assert chain.w3.eth.get_balance(RECIPIENT) == balance_before + 10**15
    execution = on_chain.find_execution(row.safe_tx_hash, 0)
    assert execution.success and execution.eth_tx_hash == row.eth_tx_hash
    assert sorted(c.owner for c in row.confirmation_set.all()) == sorted(
        Web3.to_checksum_address(Account.from_key(k).address)
        for k in (chain.user_key, chain.server_key)
    )


def test_a_used_nonce_is_reconciled_from_the_chain_not_resubmitted(chain, provider_settings):
    row, _ = safe.create_safe_transaction(user_signed(chain))
    safe.execute(row.id)
    # As after a crash that lost the record of the submission:
    SafeTransaction.objects.filter(id=row.id).update(
        status="confirmed", eth_tx_hash="", raw_transaction="", block_number=None
    )
    nonce = SafeOnChain(chain.w3, chain.safe_address).nonce()

    assert safe.execute(row.id) == "submitted"
    assert safe.track(row.id) == "executed"
    assert SafeOnChain(chain.w3, chain.safe_address).nonce() == nonce


def test_a_nonce_taken_by_another_transaction_fails_permanently(chain, provider_settings):
    first, _ = safe.create_safe_transaction(user_signed(chain, value=5))
    safe.execute(first.id)
    used = SafeOnChain(chain.w3, chain.safe_address).nonce() - 1
    row, _ = safe.create_safe_transaction(user_signed(chain, nonce=used, value=7))

    with pytest.raises(Exception, match="already used"):
        safe.execute(row.id)
    row.refresh_from_db()
    assert row.status == "failed"
    assert "already used" in row.failure_reason
