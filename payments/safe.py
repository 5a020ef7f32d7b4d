"""Safe transactions: accept a user-signed SafeTx, countersign, execute once, track to the end.

Crash safety of :func:`execute` (the retry after a kill -9 must never execute twice):

1. Before anything else the chain is asked whether the Safe already emitted ExecutionSuccess /
   ExecutionFailure for our safeTxHash; if so that is recorded and nothing is sent.
2. The relayer's signed execTransaction (and its hash) is committed *before* it is sent; a retry
   re-sends those same bytes (same hash, so at most one can be mined) instead of signing anew.
   Even so, the Safe's own nonce check makes a second execution of one SafeTx impossible.

Money never moves twice: a Safe transaction is marked ``failed`` (which lets the settle workflow
refund the payment) only on proof from the chain that our safeTxHash did not execute. The
server's signature is visible before execution (the API lists confirmations; the transaction
service publishes them), so the user — or anyone holding the signatures — may execute it
themselves at any moment, also between our steps and between our attempts. Every terminal
failure therefore first looks again (:func:`look_up`): the Safe's logs for our safeTxHash from
``search_from_block`` (a block after which the Safe's nonce had not passed ours, recorded
before the server signs) to the head, in bounded ranges. Found, by whoever sent it: recorded as
executed with that chain transaction, never failed. Not found: failed, the reason naming the
blocks searched. The node cannot answer: the attempt errors and the task retries — no verdict.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_account import Account
from web3.exceptions import ContractLogicError, TransactionNotFound

import taskhub

from .chain.client import ChainNotConfigured, Execution, SafeOnChain, get_web3
from .chain.safe_tx import (
    InvalidSafeTx,
    SafeTx,
    checksum,
    combine_signatures,
    parse_safe_tx,
    recover_owner,
    safe_tx_hash,
    sign_hash,
)
from .conf import payments_settings
from .models import (
    SAFE_TX_TERMINAL,
    Payment,
    SafeConfirmation,
    SafeTransaction,
    SafeTxStatus,
)

logger = logging.getLogger("payments.safe")

EXECUTE_TASK = "payments.execute_safe_transaction"
TRACK_TASK = "payments.track_safe_transaction"


class SafeRequestError(ValueError):
    """Bad input for a Safe transaction; ``errors`` maps fields to messages. Nothing written."""

    def __init__(self, errors: dict[str, list[str]], status: int = 400):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors
        self.status = status


class SafeExecutionFailed(Exception):
    """A failure no retry can fix; the SafeTransaction is marked failed with this message once
    the chain shows that its safeTxHash did not execute (:func:`_fail_unless_executed`)."""


class NotYetFinal(Exception):
    """The chain has not reached a final answer yet: the task retries later."""


# --- accepting a SafeTx ----------------------------------------------------------------------


def _chain_id(spec: dict) -> int:
    value = spec.get("chain_id", payments_settings.CHAIN_ID)
    if value is None:
        try:
            return int(get_web3().eth.chain_id)
        except ChainNotConfigured:
            raise SafeRequestError(
                {"chain_id": ["give chain_id, or configure PAYMENTS['CHAIN_ID']"]}
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SafeRequestError({"chain_id": ["must be a positive whole number"]})
    return value


def prepare(spec: object, user_id: str) -> tuple[SafeTransaction, tuple[str, str, str]]:
    """Validate a request; return the unsaved row and the user's (owner, type, signature)."""
    if not isinstance(spec, dict):
        raise SafeRequestError({"safe_transaction": ["must be an object"]})
    try:
        safe_address = checksum(spec.get("safe_address"), "safe_address")
        tx = parse_safe_tx(spec.get("transaction"))
        chain_id = _chain_id(spec)
        tx_hash = safe_tx_hash(tx, chain_id, safe_address)
        owner, kind, signature = recover_owner(tx_hash, spec.get("user_signature"))
    except InvalidSafeTx as exc:
        raise SafeRequestError({exc.field: [str(exc)]}) from None
    search_from = _check_owner_if_chain_known(safe_address, owner, tx.nonce)
    row = SafeTransaction(
        user_id=str(user_id),
        safe_address=safe_address,
        chain_id=chain_id,
        to=tx.to,
        value=tx.value,
        data=tx.data,
        operation=tx.operation,
        safe_tx_gas=tx.safeTxGas,
        base_gas=tx.baseGas,
        gas_price=tx.gasPrice,
        gas_token=tx.gasToken,
        refund_receiver=tx.refundReceiver,
        nonce=tx.nonce,
        safe_tx_hash="0x" + tx_hash.hex(),
        backend=payments_settings.SAFE_BACKEND,
        search_from_block=search_from,
    )
    return row, (owner, kind, signature)


def _check_owner_if_chain_known(safe_address: str, owner: str, nonce: int) -> int | None:
    """With a chain configured, refuse at once a signature that is not from an owner.

    Returns the head block if the Safe's nonce has not passed ours there (where a search for
    our execution can start), else None (the execution task finds a start itself)."""
    try:
        w3 = get_web3()
        safe = SafeOnChain(w3, safe_address)
        if not safe.is_deployed():
            raise SafeRequestError({"safe_address": ["no Safe is deployed at this address"]})
        owners = safe.owners()
        head = int(w3.eth.block_number)
        search_from = head if safe.nonce(head) <= nonce else None
    except ChainNotConfigured:
        return None  # checked by the execution task, which fails permanently naming the setting
    except SafeRequestError:
        raise
    except Exception as exc:  # node unreachable: the task checks again before executing
        logger.warning("could not read the Safe's owners: %s", type(exc).__name__)
        return None
    if owner not in owners:
        raise SafeRequestError(
            {"user_signature": [f"the signature recovers to {owner}, not an owner of this Safe"]}
        )
    return search_from


def _save(row: SafeTransaction, confirmation: tuple[str, str, str]) -> SafeTransaction:
    row.save(force_insert=True)
    owner, kind, signature = confirmation
    SafeConfirmation.objects.create(
        safe_transaction=row, owner=owner, signature=signature, signature_type=kind
    )
    return row


def create_for_payment(payment: Payment, spec: object) -> SafeTransaction:
    """Inside the payment's transaction: the SafeTx waits (proposed) for the payment to complete."""
    row, confirmation = prepare(spec, payment.user_id)
    row.payment = payment
    try:
        with transaction.atomic():
            return _save(row, confirmation)
    except IntegrityError:
        raise SafeRequestError(
            {"safe_transaction": ["this Safe transaction (safeTxHash) is already registered"]},
            status=409,
        ) from None


def create_safe_transaction(data: object) -> tuple[SafeTransaction, bool]:
    """``POST /api/safe-transactions``: store and schedule execution in one transaction.

    The same SafeTx again (same safeTxHash) returns the stored one (``created`` False).
    """
    if not isinstance(data, dict):
        raise SafeRequestError({"non_field_errors": ["the body must be a JSON object"]})
    user_id = data.get("user_id")
    if not isinstance(user_id, str | int) or isinstance(user_id, bool) or not str(user_id):
        raise SafeRequestError({"user_id": ["this field is required"]})
    row, confirmation = prepare(data, str(user_id))
    existing = SafeTransaction.objects.filter(safe_tx_hash=row.safe_tx_hash).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            _save(row, confirmation)
            task = taskhub.schedule(
                EXECUTE_TASK,
                {"safe_transaction_id": str(row.id)},
                correlation_id=row.correlation_id,
                user_id=row.user_id,
                dedup_key=f"safe-execute:{row.id}",
            )
            SafeTransaction.objects.filter(id=row.id).update(execute_task_id=task.id)
            row.execute_task_id = task.id
    except IntegrityError:
        return SafeTransaction.objects.get(safe_tx_hash=row.safe_tx_hash), False
    return row, True


# --- executing --------------------------------------------------------------------------------


def as_safe_tx(row: SafeTransaction) -> SafeTx:
    return SafeTx(
        to=row.to,
        value=int(row.value),
        data=row.data or "0x",
        operation=row.operation,
        safeTxGas=int(row.safe_tx_gas),
        baseGas=int(row.base_gas),
        gasPrice=int(row.gas_price),
        gasToken=row.gas_token,
        refundReceiver=row.refund_receiver,
        nonce=int(row.nonce),
    )


@dataclass(frozen=True)
class ChainVerdict:
    """What the chain says about our safeTxHash, everything read as of block ``head``."""

    #: its ExecutionSuccess / ExecutionFailure log, whoever sent the executing transaction
    execution: Execution | None
    searched_from: int
    head: int
    #: the Safe's nonce after ``head``: past ours means ours can never execute any more
    nonce: int

    def absence(self, row: SafeTransaction) -> str:
        proof = (
            f"not executed: no ExecutionSuccess/ExecutionFailure for its safeTxHash in "
            f"blocks {self.searched_from}-{self.head}"
        )
        if self.nonce > int(row.nonce):
            return proof + f"; another transaction used nonce {int(row.nonce)}, so it never will"
        return proof + f"; it stays executable until the Safe uses nonce {int(row.nonce)}"


def look_up(w3, safe: SafeOnChain, row: SafeTransaction) -> ChainVerdict:
    """Search the chain for our safeTxHash's execution, from the row's start block to the head.

    Node errors propagate (the task retries): no answer is never read as "not executed"."""
    head = int(w3.eth.block_number)
    nonce = safe.nonce_at(head)
    start = _search_start(safe, row, head, nonce)
    found = safe.find_execution(row.safe_tx_hash, start, head)
    return ChainVerdict(execution=found, searched_from=start, head=head, nonce=nonce)


def _search_start(safe: SafeOnChain, row: SafeTransaction, head: int, nonce: int) -> int:
    """The row's ``search_from_block``, found and recorded on the first look if unknown.

    Our safeTxHash can only execute while the Safe's nonce equals ours, so it cannot have
    executed up to a block after which the nonce was still at most ours."""
    if row.search_from_block is not None:
        return row.search_from_block
    ours = int(row.nonce)
    start = head if nonce <= ours else safe.last_block_before_nonce_passed(ours, head)
    SafeTransaction.objects.filter(id=row.id, search_from_block__isnull=True).update(
        search_from_block=start
    )
    row.search_from_block = start
    return start


def _mark_failed(row: SafeTransaction, reason: str) -> None:
    """Only with proof from the chain (a :class:`ChainVerdict` or an ExecutionFailure log):
    ``failed`` lets the settle workflow refund the payment."""
    SafeTransaction.objects.filter(id=row.id).exclude(status__in=SAFE_TX_TERMINAL).update(
        status=SafeTxStatus.FAILED, failure_reason=reason[:500], updated_at=timezone.now()
    )
    logger.warning("Safe transaction %s failed: %s", row.id, reason)


def _fail_on_proof(row: SafeTransaction, safe: SafeOnChain, verdict: ChainVerdict, reason: str):
    """Mark failed on a verdict that found no execution; with ``CONFIRMATION_DEPTH`` > 1 the
    transaction that took our nonce must be that deep first (a reorg could drop it)."""
    depth = int(payments_settings.CONFIRMATION_DEPTH)
    ours = int(row.nonce)
    if depth > 1 and verdict.nonce > ours >= safe.nonce_at(max(0, verdict.head - depth + 1)):
        raise NotYetFinal(f"the transaction that used nonce {ours} is not {depth} blocks deep")
    _mark_failed(row, f"{reason} ({verdict.absence(row)})")


def _record_execution(row: SafeTransaction, found: Execution, schedule_track: bool) -> str:
    """Our safeTxHash is on chain, whoever sent it: record that transaction; tracking takes it
    to ``executed`` (or ``failed`` on ExecutionFailure) at the confirmation depth."""
    if found.eth_tx_hash != row.eth_tx_hash:
        logger.warning(
            "Safe transaction %s was executed by %s (not our relayer's %s)",
            row.id,
            found.eth_tx_hash,
            row.eth_tx_hash or "none",
        )
    _record_submitted(row, found.eth_tx_hash, found.block_number, schedule_track=schedule_track)
    return SafeTxStatus.SUBMITTED


def _record_submitted(
    row: SafeTransaction, eth_tx_hash: str, block: int | None = None, *, schedule_track=True
) -> None:
    """Record the sent execTransaction; schedule the tracking task unless a workflow's own
    ``track`` step follows (the settle workflow)."""
    changes = {
        "status": SafeTxStatus.SUBMITTED,
        "eth_tx_hash": eth_tx_hash,
        "updated_at": timezone.now(),
    }
    if block is not None:
        changes["block_number"] = block
    with transaction.atomic():
        updated = SafeTransaction.objects.filter(
            id=row.id,
            status__in=[SafeTxStatus.PROPOSED, SafeTxStatus.CONFIRMED, SafeTxStatus.SUBMITTED],
        ).update(**changes)
        if updated and schedule_track:
            taskhub.schedule(
                TRACK_TASK,
                {"safe_transaction_id": str(row.id)},
                correlation_id=row.correlation_id,
                user_id=row.user_id,
                dedup_key=f"safe-track:{row.id}",
            )


def _server_key() -> str:
    key = payments_settings.SAFE_SERVER_KEY
    if not key:
        raise SafeExecutionFailed(
            "no server signing key: set PAYMENTS['SAFE_SERVER_KEY'] (TASKHUB_SAFE_SERVER_KEY)"
        )
    return key


def _relayer():
    key = payments_settings.SAFE_RELAYER_KEY
    if not key:
        raise SafeExecutionFailed(
            "no relayer key: set PAYMENTS['SAFE_RELAYER_KEY'] (TASKHUB_SAFE_RELAYER_KEY)"
        )
    return Account.from_key(key)


def execute(safe_transaction_id: str, *, schedule_track: bool = True) -> str:
    """The execution task's work; returns the status reached. See the module docstring.

    ``schedule_track``: schedule the tracking task once sent (False inside the settle
    workflow, whose next step tracks it)."""
    row = SafeTransaction.objects.get(id=safe_transaction_id)
    if row.status in SAFE_TX_TERMINAL:
        return row.status
    try:
        return _execute(row, schedule_track)
    except SafeExecutionFailed as exc:
        return _fail_unless_executed(row, str(exc), schedule_track)
    except ChainNotConfigured as exc:
        # No chain to read, so nothing is proven either way: the row is left as it is (not
        # failed, so nothing is refunded) for an operator to fix the setting and reconcile.
        raise taskhub.PermanentError(str(exc)) from None


def _fail_unless_executed(row: SafeTransaction, reason: str, schedule_track: bool) -> str:
    """A failure no retry of ours can fix — yet the SafeTx may have executed anyway, by anyone,
    even since we last looked (a nonce already used, an estimate that reverts because it just
    ran). Look again: executed is recorded as such; failed only if the chain shows it is not."""
    w3 = get_web3()
    safe = SafeOnChain(w3, row.safe_address)
    verdict = look_up(w3, safe, row)
    if verdict.execution is not None:
        return _record_execution(row, verdict.execution, schedule_track)
    _fail_on_proof(row, safe, verdict, reason)
    raise taskhub.PermanentError(reason)


def _execute(row: SafeTransaction, schedule_track: bool) -> str:
    w3 = get_web3()
    if int(w3.eth.chain_id) != row.chain_id:
        raise ChainNotConfigured(f"the configured chain is {w3.eth.chain_id}, not {row.chain_id}")
    safe = SafeOnChain(w3, row.safe_address)
    if not safe.is_deployed():
        raise SafeExecutionFailed(f"no Safe is deployed at {row.safe_address}")
    # Executed already (a crash after sending, or by the user)? Record it, never resubmit. This
    # first look also records where later searches start, before the server signs.
    verdict = look_up(w3, safe, row)
    if verdict.execution is not None:
        return _record_execution(row, verdict.execution, schedule_track)
    if verdict.nonce > int(row.nonce):
        raise SafeExecutionFailed(
            f"Safe nonce {int(row.nonce)} was already used by another transaction"
        )
    if verdict.nonce < int(row.nonce):
        raise NotYetFinal(f"the Safe is at nonce {verdict.nonce}; waiting for {int(row.nonce)}")
    signatures = _collect_signatures(row, safe)
    if row.raw_transaction and _resend(w3, row, schedule_track):
        return SafeTxStatus.SUBMITTED
    _sign_and_send(w3, row, safe, signatures, schedule_track)
    return SafeTxStatus.SUBMITTED


def _collect_signatures(row: SafeTransaction, safe: SafeOnChain) -> bytes:
    owners = set(safe.owners())
    threshold = safe.threshold()
    tx_hash = bytes.fromhex(row.safe_tx_hash[2:])
    user_confirmations = [c for c in row.confirmation_set.all()]
    for confirmation in user_confirmations:
        if confirmation.owner not in owners:
            raise SafeExecutionFailed(
                f"the user signature recovers to {confirmation.owner}, not an owner of the Safe"
            )
    server_owner, server_signature = sign_hash(_server_key(), tx_hash)
    if server_owner not in owners:
        raise SafeExecutionFailed(f"the server key's address {server_owner} is not a Safe owner")
    SafeConfirmation.objects.get_or_create(
        safe_transaction=row,
        owner=server_owner,
        defaults={"signature": server_signature, "signature_type": "EOA"},
    )
    backend = get_backend(row.backend)
    pairs = backend.confirmations(row, as_safe_tx(row), server_signature)
    if len(pairs) < threshold:
        raise SafeExecutionFailed(f"{len(pairs)} owner signatures, the Safe needs {threshold}")
    SafeTransaction.objects.filter(id=row.id, status=SafeTxStatus.PROPOSED).update(
        status=SafeTxStatus.CONFIRMED, updated_at=timezone.now()
    )
    return combine_signatures(pairs)


def _resend(w3, row: SafeTransaction, schedule_track: bool = True) -> bool:
    """Our signed execTransaction from an earlier attempt: known to the node, or sent again."""
    try:
        w3.eth.get_transaction(row.eth_tx_hash)
        _record_submitted(row, row.eth_tx_hash, schedule_track=schedule_track)
        return True
    except TransactionNotFound:
        pass
    try:
        w3.eth.send_raw_transaction(row.raw_transaction)
    except ValueError as exc:  # e.g. the relayer's nonce was taken: sign afresh
        logger.warning("re-sending %s refused (%s); signing a new one", row.id, exc)
        return False
    _record_submitted(row, row.eth_tx_hash, schedule_track=schedule_track)
    return True


def _sign_and_send(
    w3, row: SafeTransaction, safe: SafeOnChain, signatures: bytes, schedule_track: bool = True
) -> None:
    relayer = _relayer()
    call = safe.exec_call(as_safe_tx(row).exec_args(), signatures)
    try:
        gas = call.estimate_gas({"from": relayer.address})
    except ContractLogicError as exc:
        # GS0xx reverts (bad signatures, order, inner failure with no gas) won't pass on retry.
        raise SafeExecutionFailed(f"execTransaction would revert: {exc}") from None
    tx = call.build_transaction(
        {
            "from": relayer.address,
            "chainId": row.chain_id,
            "gas": int(gas * 1.25) + 20_000,
            "nonce": w3.eth.get_transaction_count(relayer.address, "pending"),
        }
    )
    signed = relayer.sign_transaction(tx)
    eth_tx_hash = "0x" + bytes(signed.hash).hex()
    # Committed before sending: a retry finds these bytes and never signs a second transaction.
    SafeTransaction.objects.filter(id=row.id).update(
        raw_transaction="0x" + bytes(signed.raw_transaction).hex(),
        eth_tx_hash=eth_tx_hash,
        block_number=int(w3.eth.block_number),
        updated_at=timezone.now(),
    )
    w3.eth.send_raw_transaction(signed.raw_transaction)
    pause = float(payments_settings.PAUSE_AFTER_SUBMIT or 0)
    if pause:
        time.sleep(pause)
    _record_submitted(row, eth_tx_hash, schedule_track=schedule_track)


def track(safe_transaction_id: str, wait: float = 10.0) -> str:
    """The tracking task's work: wait for the receipt and the confirmation depth."""
    row = SafeTransaction.objects.get(id=safe_transaction_id)
    if row.status in SAFE_TX_TERMINAL:
        return row.status
    try:
        w3 = get_web3()
    except ChainNotConfigured as exc:  # nothing proven: the row is left as it is
        raise taskhub.PermanentError(str(exc)) from None
    safe = SafeOnChain(w3, row.safe_address)
    deadline = time.monotonic() + wait
    while True:
        status = _check_receipt(w3, safe, row)
        if status is not None:
            return status
        if time.monotonic() > deadline:
            raise NotYetFinal(f"{row.eth_tx_hash} not final yet")
        time.sleep(0.5)


def _receipt(w3, eth_tx_hash: str):
    try:
        return w3.eth.get_transaction_receipt(eth_tx_hash) if eth_tx_hash else None
    except TransactionNotFound:
        return None


def _check_receipt(w3, safe: SafeOnChain, row: SafeTransaction) -> str | None:
    receipt = _receipt(w3, row.eth_tx_hash)  # read first: the search below covers its block
    verdict = look_up(w3, safe, row)
    found = verdict.execution
    if found is None:
        if receipt is not None and receipt["status"] == 0:
            # Reverted — maybe because someone executed our SafeTx first; the search says not.
            _fail_on_proof(row, safe, verdict, f"execTransaction {row.eth_tx_hash} reverted")
            return SafeTxStatus.FAILED
        return None
    depth = int(verdict.head) - found.block_number + 1
    SafeTransaction.objects.filter(id=row.id).update(
        eth_tx_hash=found.eth_tx_hash,
        block_number=found.block_number,
        confirmations=max(depth, 0),
        updated_at=timezone.now(),
    )
    if not found.success:
        # The Safe used our nonce and the inner call failed: that log is the proof.
        _mark_failed(row, "the Safe emitted ExecutionFailure (the inner call failed)")
        return SafeTxStatus.FAILED
    if depth < int(payments_settings.CONFIRMATION_DEPTH):
        return None
    SafeTransaction.objects.filter(id=row.id, status=SafeTxStatus.SUBMITTED).update(
        status=SafeTxStatus.EXECUTED, executed_at=timezone.now()
    )
    logger.info("Safe transaction %s executed in block %s", row.id, found.block_number)
    return SafeTxStatus.EXECUTED


def reconcile_from_chain(row: SafeTransaction) -> str:
    """Operator action: look the safeTxHash up on chain and record what happened."""
    try:
        w3 = get_web3()
        safe = SafeOnChain(w3, row.safe_address)
        verdict = look_up(w3, safe, row)
        if verdict.execution is not None:
            _record_execution(row, verdict.execution, schedule_track=True)
        elif verdict.nonce > int(row.nonce):
            reason = f"Safe nonce {int(row.nonce)} was used by another transaction"
            _fail_on_proof(row, safe, verdict, reason)
    except ChainNotConfigured as exc:
        raise SafeRequestError({"chain": [str(exc)]}) from None
    except NotYetFinal as exc:
        raise SafeRequestError({"chain": [f"not decided yet: {exc}"]}) from None
    except Exception as exc:  # the node could not answer: nothing recorded
        raise SafeRequestError({"chain": [f"the node could not answer: {exc}"[:300]]}) from None
    return SafeTransaction.objects.get(id=row.id).status


def get_backend(name: str):
    from .safe_backends import BACKENDS

    try:
        return BACKENDS[name]()
    except KeyError:
        raise SafeExecutionFailed(f"unknown Safe backend {name!r}") from None
