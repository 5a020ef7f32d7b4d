"""The event indexer: logs from a stored cursor, in bounded block ranges, stored once.

For each subscription, one pass:

1. **Reorg check.** The hash of the block just below the cursor is compared with the chain's.
   If that block was replaced (a reorganisation deeper than the confirmation depth), events in
   the last ``REORG_LOOKBACK`` blocks whose block hash is no longer canonical are deleted and
   the cursor moves back to re-read those blocks.
2. **Fetch.** Only blocks at least ``confirmations`` behind the head are read, so a reorg
   inside the confirmation depth never reaches stored events. ``eth_getLogs`` is called for at
   most ``MAX_BLOCK_RANGE`` blocks at a time.
3. **Store.** Each range's events are inserted (unique by chain, transaction hash and log
   index; the block hash is kept) and the cursor advanced **in the same transaction**, with
   the subscription row locked, so a crash between the two is impossible and two indexers never
   store one range twice. ``blockchain_event`` is sent for each new row inside that transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from web3 import Web3
from web3.exceptions import BlockNotFound, MismatchedABI

from taskhub.errors import PermanentError

from .abi import jsonable, parse_event_signature, topic0, validate_event_abi
from .conf import blockchain_settings
from .models import EventSubscription, IndexedEvent
from .signals import blockchain_event

logger = logging.getLogger(__name__)


def web3_for(network_id: int) -> Web3:
    """A Web3 client for the network's RPC URL from ``BLOCKCHAIN["RPC_URLS"]``."""
    url = blockchain_settings.RPC_URLS.get(str(network_id))
    if not url:
        raise PermanentError(
            f"no RPC URL configured for network {network_id} (BLOCKCHAIN_RPC_URLS)"
        )
    timeout = blockchain_settings.RPC_TIMEOUT
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))


def subscribe(
    network_id: int,
    contract_address: str,
    event: str | dict,
    *,
    start_block: int = 0,
    confirmations: int = 12,
    name: str = "",
) -> EventSubscription:
    """Start indexing ``event`` (a signature such as ``"Transfer(address indexed from, address
    indexed to, uint256 value)"`` or an ABI entry) of a contract from ``start_block``."""
    abi = parse_event_signature(event) if isinstance(event, str) else validate_event_abi(event)
    return EventSubscription.objects.create(
        name=name,
        network_id=network_id,
        contract_address=Web3.to_checksum_address(contract_address),
        event_name=abi["name"],
        event_abi=abi,
        topic0=topic0(abi),
        start_block=start_block,
        confirmations=confirmations,
        next_block=start_block,
    )


@dataclass
class IndexReport:
    subscription_id: int
    stored: int = 0
    removed: int = 0
    ranges: int = 0
    next_block: int = 0


def _hex(value) -> str:
    return value.to_0x_hex() if hasattr(value, "to_0x_hex") else str(value)


def _block_hash(w3: Web3, number: int) -> str:
    """The canonical hash at ``number``; "" when the chain is (now) shorter than that."""
    try:
        block = w3.eth.get_block(number)
    except BlockNotFound:
        return ""
    return _hex(block["hash"]) if block else ""


def event_data(row: IndexedEvent) -> dict:
    return {
        "network_id": row.network_id,
        "contract_address": row.contract_address,
        "event_name": row.event_name,
        "block_number": row.block_number,
        "block_hash": row.block_hash,
        "tx_hash": row.tx_hash,
        "log_index": row.log_index,
        "args": row.args,
        "source": "indexer",
    }


def index_subscription(subscription_id: int, *, w3: Web3 | None = None) -> IndexReport:
    sub = EventSubscription.objects.get(pk=subscription_id)
    w3 = w3 or web3_for(sub.network_id)
    report = IndexReport(subscription_id=sub.pk)
    report.removed = rewind_if_reorged(sub, w3)
    sub.refresh_from_db()
    safe_head = w3.eth.block_number - sub.confirmations
    contract = w3.eth.contract(abi=[sub.event_abi])
    decoder = contract.events[sub.event_name]()
    max_range = max(1, int(blockchain_settings.MAX_BLOCK_RANGE))
    while sub.next_block <= safe_head:
        first, last = sub.next_block, min(safe_head, sub.next_block + max_range - 1)
        logs = w3.eth.get_logs(
            {
                "address": sub.contract_address,
                "topics": [sub.topic0],
                "fromBlock": first,
                "toBlock": last,
            }
        )
        last_hash = _block_hash(w3, last)
        events = [e for e in (_decode(sub, decoder, log) for log in logs) if e is not None]
        stored = store_range(sub.pk, first, last, last_hash, events)
        if stored is None:
            break  # another indexer moved this cursor meanwhile; it owns the range
        report.stored += stored
        report.ranges += 1
        sub.refresh_from_db()
    report.next_block = sub.next_block
    return report


def _decode(sub: EventSubscription, decoder, log) -> IndexedEvent | None:
    try:
        decoded = decoder.process_log(log)
    except MismatchedABI as exc:
        # Same topic, different layout (e.g. ERC-721's Transfer indexes the id): not ours.
        logger.warning("skipping log %s#%s: %s", _hex(log["transactionHash"]), log["logIndex"], exc)
        return None
    return IndexedEvent(
        subscription_id=sub.pk,
        network_id=sub.network_id,
        contract_address=Web3.to_checksum_address(log["address"]),
        event_name=sub.event_name,
        block_number=log["blockNumber"],
        block_hash=_hex(log["blockHash"]),
        tx_hash=_hex(log["transactionHash"]),
        log_index=log["logIndex"],
        args=jsonable(dict(decoded["args"])),
    )


def store_range(
    sub_id: int, first: int, last: int, last_hash: str, events: list[IndexedEvent]
) -> int | None:
    """Insert the range's events and advance the cursor in one transaction; None if the
    cursor is no longer at ``first``."""
    with transaction.atomic():
        sub = EventSubscription.objects.select_for_update().get(pk=sub_id)
        if sub.next_block != first:
            return None
        stored = 0
        for event in events:
            row, created = IndexedEvent.objects.get_or_create(
                network_id=event.network_id,
                tx_hash=event.tx_hash,
                log_index=event.log_index,
                defaults={
                    f.attname: getattr(event, f.attname)
                    for f in IndexedEvent._meta.fields
                    if f.attname not in ("id", "indexed_at")
                },
            )
            if created:
                stored += 1
                blockchain_event.send(
                    sender=IndexedEvent, event={"type": "blockchain.event", "data": event_data(row)}
                )
        sub.next_block = last + 1
        sub.cursor_block_hash = last_hash
        sub.last_indexed_at = timezone.now()
        sub.last_error = ""
        sub.save(update_fields=["next_block", "cursor_block_hash", "last_indexed_at", "last_error"])
    return stored


def rewind_if_reorged(sub: EventSubscription, w3: Web3) -> int:
    """If the block below the cursor was replaced, drop orphaned events and re-read recent
    blocks. Returns how many stored events were removed."""
    if not sub.cursor_block_hash or sub.next_block == 0:
        return 0
    below = sub.next_block - 1
    if _block_hash(w3, below) == sub.cursor_block_hash:
        return 0
    low = max(sub.start_block, sub.next_block - int(blockchain_settings.REORG_LOOKBACK))
    canonical: dict[int, str] = {}
    orphaned = []
    recent = IndexedEvent.objects.filter(subscription=sub, block_number__gte=low)
    for row in recent.only("id", "block_number", "block_hash"):
        if row.block_number not in canonical:
            canonical[row.block_number] = _block_hash(w3, row.block_number)
        if canonical[row.block_number] != row.block_hash:
            orphaned.append(row.pk)
    low_hash = _block_hash(w3, low - 1) if low > 0 else ""
    with transaction.atomic():
        locked = EventSubscription.objects.select_for_update().get(pk=sub.pk)
        if locked.next_block != sub.next_block:
            return 0
        gone = list(IndexedEvent.objects.filter(pk__in=orphaned))
        IndexedEvent.objects.filter(pk__in=orphaned).delete()
        for row in gone:
            blockchain_event.send(
                sender=IndexedEvent,
                event={"type": "blockchain.event.removed", "data": event_data(row)},
            )
        locked.next_block = low
        locked.cursor_block_hash = low_hash
        locked.save(update_fields=["next_block", "cursor_block_hash"])
    logger.warning(
        "reorg below block %d of subscription %s: removed %d events, re-reading from %d",
        below,
        sub.pk,
        len(orphaned),
        low,
    )
    return len(orphaned)
