"""Blockchain events on anvil: ERC-20 Transfer events indexed once, reorgs handled, reported
events stored and published."""

import json
from pathlib import Path

import pytest
from web3 import Web3

from blockchain.indexer import index_subscription, subscribe
from blockchain.models import EventSubscription, IndexedEvent, ReportedEvent
from taskhub import InvalidTaskRequest, schedule
from taskhub.engine.broker import get_redis, key
from tests.support import wait_status

pytestmark = [pytest.mark.e2e]

TOKEN = json.loads((Path(__file__).parent / "contracts" / "TestToken.json").read_text())
TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
CHAIN = 31337


@pytest.fixture
def w3(anvil, chain_settings):
    return Web3(Web3.HTTPProvider(anvil.url))


@pytest.fixture
def token(w3):
    deployer = w3.eth.accounts[0]
    tx = (
        w3.eth.contract(abi=TOKEN["abi"], bytecode=TOKEN["bytecode"])
        .constructor("Test", "TST", 10**24)
        .transact({"from": deployer})
    )
    address = w3.eth.wait_for_transaction_receipt(tx).contractAddress
    return w3.eth.contract(address=address, abi=TOKEN["abi"])


def transfer(w3, token, to_index: int, value: int) -> str:
    tx = token.functions.transfer(w3.eth.accounts[to_index], value).transact(
        {"from": w3.eth.accounts[0]}
    )
    return w3.eth.wait_for_transaction_receipt(tx).transactionHash.to_0x_hex()


def mine(w3, blocks: int) -> None:
    w3.provider.make_request("anvil_mine", [hex(blocks)])


def chain_events():
    return [json.loads(e) for e in get_redis().lrange(key("test", "chain-events"), 0, -1)]


def test_transfers_are_indexed_once_even_when_the_indexer_runs_twice(e2e, w3, token):
    start = w3.eth.block_number  # the deployment's mint
    sub = subscribe(CHAIN, token.address, TRANSFER, start_block=start, confirmations=2)
    hashes = [transfer(w3, token, 1, 100), transfer(w3, token, 2, 250)]
    mine(w3, 2)

    first = schedule("blockchain.index_subscriptions", {"subscriptionIds": [sub.pk]})
    first_done = wait_status(first.id, "completed", timeout=60)
    again = schedule("blockchain.index_subscriptions", {"subscriptionIds": [sub.pk]})
    again_done = wait_status(again.id, "completed", timeout=60)

    assert first_done.result["stored"] == 3 and again_done.result["stored"] == 0
    rows = list(IndexedEvent.objects.filter(subscription=sub).order_by("block_number"))
    assert [r.args["value"] for r in rows] == [str(10**24), "100", "250"]
    assert [r.tx_hash for r in rows[1:]] == hashes
    assert rows[1].args["to"] == w3.eth.accounts[1]
    assert rows[1].block_hash == w3.eth.get_block(rows[1].block_number).hash.to_0x_hex()
    sub.refresh_from_db()
    assert sub.next_block == w3.eth.block_number - 1  # confirmations=2: the head-1 block waits
    published = [e for e in chain_events() if e["data"]["contract_address"] == token.address]
    assert len(published) == 3 and published[0]["type"] == "blockchain.event"


def test_the_indexer_reads_in_bounded_ranges_from_its_cursor(db, w3, token, settings):
    settings.BLOCKCHAIN = {**settings.BLOCKCHAIN, "MAX_BLOCK_RANGE": 3}
    sub = subscribe(
        CHAIN, token.address, TRANSFER, start_block=w3.eth.block_number + 1, confirmations=0
    )
    for i in range(4):
        transfer(w3, token, 3, i + 1)
        mine(w3, 1)

    report = index_subscription(sub.pk)

    assert report.stored == 4 and report.ranges == 3  # 8 blocks, at most 3 per eth_getLogs
    assert index_subscription(sub.pk).stored == 0


def test_a_reorg_inside_the_confirmation_depth_never_reaches_stored_events(db, w3, token):
    sub = subscribe(
        CHAIN, token.address, TRANSFER, start_block=w3.eth.block_number + 1, confirmations=3
    )
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    orphan = transfer(w3, token, 4, 111)
    assert index_subscription(sub.pk).stored == 0  # not confirmed yet

    w3.provider.make_request("evm_revert", [snapshot])  # the block with 111 is gone
    kept = transfer(w3, token, 5, 222)
    mine(w3, 3)
    index_subscription(sub.pk)

    assert list(
        IndexedEvent.objects.filter(subscription=sub).values_list("tx_hash", flat=True)
    ) == [kept]
    assert orphan != kept


def test_a_reorg_deeper_than_the_confirmation_depth_removes_orphaned_events(db, w3, token):
    sub = subscribe(
        CHAIN, token.address, TRANSFER, start_block=w3.eth.block_number + 1, confirmations=0
    )
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    orphan = transfer(w3, token, 6, 333)
    mine(w3, 1)
    assert index_subscription(sub.pk).stored == 1

    w3.provider.make_request("evm_revert", [snapshot])
    mine(w3, 1)  # a different block at the orphan's height
    kept = transfer(w3, token, 7, 444)
    mine(w3, 1)
    report = index_subscription(sub.pk)

    assert report.removed == 1 and report.stored == 1
    rows = IndexedEvent.objects.filter(subscription=sub)
    assert [r.tx_hash for r in rows] == [kept] and orphan != kept
    assert EventSubscription.objects.get(pk=sub.pk).next_block == w3.eth.block_number + 1


def test_a_reported_event_is_stored_once_and_published(e2e):
    task = schedule(
        "blockchain.handle_event",
        {
            "contractAddress": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
            "eventName": "Transfer",
            "parameters": {"from": "0x0", "value": "5"},
            "networkId": 8453,
        },
    )

    done = wait_status(task.id, "completed", timeout=60)

    row = ReportedEvent.objects.get(task_id=task.id)
    assert done.result == {"event_id": row.pk, "stored": True, "action": None}
    assert row.contract_address == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    (event,) = [e for e in chain_events() if e["data"].get("id") == row.pk]
    assert event["data"]["source"] == "reported" and event["data"]["args"]["value"] == "5"


def test_a_malformed_contract_address_is_refused_when_scheduling(db):
    with pytest.raises(InvalidTaskRequest, match="contractAddress"):
        schedule("blockchain.handle_event", {"contractAddress": "0x12", "eventName": "X"})
