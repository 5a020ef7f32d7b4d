"""The ``tx_service`` Safe backend: proposed and confirmed through a (fake) Safe Transaction
Service over HTTP, its answer checked, then executed on anvil."""

import httpx
import pytest
from eth_account import Account

from payments import safe
from payments.chain.client import SafeOnChain
from payments.chain.safe_tx import parse_safe_tx, safe_tx_hash
from payments.models import SafeTransaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def tx_service(provider_settings, sandbox, settings):
    settings.PAYMENTS = {**settings.PAYMENTS, "SAFE_BACKEND": "tx_service"}
    yield sandbox
    httpx.post(f"{sandbox}/_sandbox/safe-tx-service/tamper", json={"tamper": False})


def create(chain, value):
    nonce = SafeOnChain(chain.w3, chain.safe_address).nonce()
    fields = {"to": "0x00000000000000000000000000000000000FeeD5", "value": value, "nonce": nonce}
    tx_hash = safe_tx_hash(parse_safe_tx(fields), chain.chain_id, chain.safe_address)
    signature = bytes(Account.unsafe_sign_hash(tx_hash, chain.user_key).signature)
    row, _ = safe.create_safe_transaction(
        {
            "safe_address": chain.safe_address,
            "chain_id": chain.chain_id,
            "transaction": fields,
            "user_signature": "0x" + signature.hex(),
            "user_id": "u-tx",
        }
    )
    return row


def test_a_transaction_confirmed_through_the_service_executes(chain, tx_service):
    row = create(chain, 777)

    assert row.backend == "tx_service"
    assert safe.execute(row.id) == "submitted"
    assert safe.track(row.id) == "executed"
    stored = httpx.get(
        f"{tx_service}/safe-tx-service/api/v1/multisig-transactions/{row.safe_tx_hash}/"
    ).json()
    assert len(stored["confirmations"]) == 2


def test_a_service_answer_that_does_not_hash_to_our_transaction_is_refused(chain, tx_service):
    httpx.post(f"{tx_service}/_sandbox/safe-tx-service/tamper", json={"tamper": True})
    nonce = SafeOnChain(chain.w3, chain.safe_address).nonce()
    row = create(chain, 888)

    with pytest.raises(Exception, match="hashes to"):
        safe.execute(row.id)

    assert SafeTransaction.objects.get(id=row.id).status == "failed"
    assert SafeOnChain(chain.w3, chain.safe_address).nonce() == nonce
