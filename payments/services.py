"""What can be done to a payment. Views, admin actions, tasks and the CLI call these functions.

Every status change goes through :func:`apply_provider_state`: it locks the row and refuses to
move a payment backwards or out of a terminal status.

A new payment starts the ``payments.settle`` workflow (payments/workflows.py) in the transaction
that stores it: the payment step waits for the provider's outcome (callbacks and the stuck-payment
cron move the row), then the Safe transaction (if the payment carries one) is executed and
tracked, then the user is notified. The Safe steps are released by the coordinator exactly once,
when the payment step completes; a Safe execution that fails for good makes the run compensate,
which refunds the payment at the provider (:func:`refund_payment`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

import taskhub
from taskhub.console.services import workflow_run_status, workflow_steps

from .models import (
    PAYMENT_TERMINAL,
    Payment,
    PaymentStatus,
    ProviderEvent,
    SafeTransaction,
)
from .money import InvalidAmount, parse_amount, parse_currency
from .providers import CallbackRejected, ProviderPayment, get_provider

logger = logging.getLogger("payments")

PROCESS_TASK = "payments.process_dtr_payment"
REFRESH_TASK = "payments.refresh_dtr_payment"
EXECUTE_SAFE_TASK = "payments.execute_safe_transaction"
SETTLE_WORKFLOW = "payments.settle"

ALLOWED = {
    PaymentStatus.CREATED: {"pending", "processing", "completed", "failed", "canceled"},
    PaymentStatus.PENDING: {"processing", "completed", "failed", "canceled"},
    PaymentStatus.PROCESSING: {"completed", "failed", "canceled"},
}


class PaymentRequestError(ValueError):
    """The request is invalid; nothing was written. ``errors`` maps fields to messages."""

    def __init__(self, errors: dict[str, list[str]], status: int = 400):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors
        self.status = status


class IdempotencyConflict(PaymentRequestError):
    def __init__(self) -> None:
        super().__init__(
            {"idempotency_key": ["this Idempotency-Key was used with a different request body"]},
            status=409,
        )


class InvalidTransition(ValueError):
    pass


@dataclass(kw_only=True)
class PaymentRequest:
    user_id: str
    amount: object
    currency: str
    payment_method_id: str
    metadata: dict = field(default_factory=dict)
    safe_transaction: dict | None = None


def _validate(data: object) -> dict:
    if not isinstance(data, dict):
        raise PaymentRequestError({"non_field_errors": ["the body must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    known = {"user_id", "amount", "currency", "payment_method_id", "metadata", "safe_transaction"}
    for name in sorted(set(data) - known):
        errors[name] = ["unknown field"]
    for name in ("user_id", "payment_method_id"):
        value = data.get(name)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            errors[name] = ["this field is required (a non-empty string)"]
        elif len(str(value)) > 200:
            errors[name] = ["at most 200 characters"]
    clean: dict = {}
    try:
        clean["currency"] = parse_currency(data.get("currency"))
        clean["amount"] = parse_amount(data.get("amount"), clean["currency"])
    except InvalidAmount as exc:
        errors[exc.field] = [str(exc)]
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        errors["metadata"] = ["must be an object"]
    elif len(json.dumps(metadata)) > 8000:
        errors["metadata"] = ["at most 8000 bytes of JSON"]
    if errors:
        raise PaymentRequestError(errors)
    clean.update(
        user_id=str(data["user_id"]).strip(),
        payment_method_id=str(data["payment_method_id"]).strip(),
        metadata=metadata,
        safe_transaction=data.get("safe_transaction"),
    )
    return clean


def request_hash(clean: dict) -> str:
    """sha256 over the canonical request: equal bodies (after validation) hash the same."""
    canonical = {**clean, "amount": str(clean["amount"])}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def create_payment(*, idempotency_key: str, data: object) -> tuple[Payment, bool]:
    """Store a payment and schedule its processing, in one transaction.

    Returns ``(payment, created)``. The same key with the same body returns the stored payment
    (``created`` False) and writes nothing; with another body it raises IdempotencyConflict.
    """
    key = (idempotency_key or "").strip()
    if not key or len(key) > 255:
        raise PaymentRequestError(
            {"idempotency_key": ["the Idempotency-Key header is required (1 to 255 characters)"]}
        )
    clean = _validate(data)
    digest = request_hash(clean)
    existing = Payment.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return _replay(existing, digest)
    safe_spec = clean.pop("safe_transaction")
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                idempotency_key=key, request_hash=digest, provider="dtr", **clean
            )
            safe_tx = None
            if safe_spec is not None:
                from . import safe

                safe_tx = safe.create_for_payment(payment, safe_spec)
            start_settlement(payment, safe_tx)
    except IntegrityError:
        # A concurrent request with the same key won the insert.
        return _replay(Payment.objects.get(idempotency_key=key), digest)
    logger.info("payment %s created (%s %s)", payment.id, payment.amount, payment.currency)
    return payment, True


def start_settlement(payment: Payment, safe_tx: SafeTransaction | None, *, key: str = ""):
    """Start the ``payments.settle`` run for a payment (in the caller's transaction) and record
    its run and step task ids on the rows. One run per payment: its idempotency key says so."""
    from .money import format_amount

    run = taskhub.start_workflow(
        SETTLE_WORKFLOW,
        {
            "payment_id": str(payment.id),
            "user_id": payment.user_id,
            "amount": format_amount(payment.amount, payment.currency),
            "currency": payment.currency,
            "safe_transaction_id": str(safe_tx.id) if safe_tx else None,
        },
        idempotency_key=key or f"payment:{payment.id}",
        correlation_id=payment.correlation_id,
        user_id=payment.user_id,
    )
    steps = {key: step.id for key, step in workflow_steps(run.id).items()}
    changes = {"workflow_run_id": run.id, "processing_task_id": steps.get("payment")}
    if safe_tx is not None:
        changes["blockchain_task_id"] = steps.get("safe")
        SafeTransaction.objects.filter(id=safe_tx.id).update(execute_task_id=steps.get("safe"))
    Payment.objects.filter(id=payment.id).update(**changes)
    for name, value in changes.items():
        setattr(payment, name, value)
    return run


def _replay(existing: Payment, digest: str) -> tuple[Payment, bool]:
    if existing.request_hash != digest:
        raise IdempotencyConflict()
    return existing, False


def process_payment(payment_id: str, *, refresh: bool = True) -> str:
    """The processing task's work: send the payment to the provider, apply what it answers.

    Once the provider has the payment, a retry re-reads its state (``refresh``) instead of
    sending it again — or, inside the settle workflow, leaves that to callbacks and the cron.
    """
    payment = Payment.objects.get(id=payment_id)
    if payment.status in PAYMENT_TERMINAL:
        return payment.status
    if payment.provider_payment_id:
        # A retry after the provider already accepted it: read its state instead of re-sending.
        return refresh_payment(payment.id) if refresh else payment.status
    Payment.objects.filter(id=payment.id, status=PaymentStatus.CREATED).update(
        status=PaymentStatus.PENDING, updated_at=timezone.now()
    )
    # The stored idempotency key makes a retried call return the same provider payment.
    state = get_provider(payment.provider).create_payment(payment, payment.idempotency_key)
    return apply_provider_state(payment.id, state).status


def wait_for_outcome(payment_id, timeout: float, interval: float = 0.25) -> Payment:
    """Re-read the row until the payment is terminal or ``timeout`` passes; return it.

    Only the row is read: provider callbacks and the stuck-payment cron are what move it."""
    deadline = time.monotonic() + timeout
    while True:
        payment = Payment.objects.get(id=payment_id)
        if payment.status in PAYMENT_TERMINAL or time.monotonic() >= deadline:
            return payment
        time.sleep(interval)


def refresh_payment(payment_id) -> str:
    """Re-read the payment's state from the provider (after a callback, or by reconciliation)."""
    payment = Payment.objects.get(id=payment_id)
    if payment.status in PAYMENT_TERMINAL or not payment.provider_payment_id:
        return payment.status
    state = get_provider(payment.provider).get_payment(payment.provider_payment_id)
    return apply_provider_state(payment.id, state).status


def apply_provider_state(payment_id, state: ProviderPayment) -> Payment:
    """Move the payment to the provider's state if that is a step forward; else change nothing."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(id=payment_id)
        if state.id and payment.provider_payment_id and payment.provider_payment_id != state.id:
            raise InvalidTransition(
                f"provider payment {state.id} does not belong to payment {payment.id}"
            )
        target = state.status
        if target == payment.status or target not in ALLOWED.get(payment.status, set()):
            if state.id and not payment.provider_payment_id:
                payment.provider_payment_id = state.id
                payment.save(update_fields=["provider_payment_id", "updated_at"])
            return payment
        now = timezone.now()
        payment.provider_payment_id = state.id or payment.provider_payment_id
        payment.status = target
        if target == PaymentStatus.FAILED:
            payment.failure_reason = state.reason or "declined by the provider"
        if target == PaymentStatus.COMPLETED:
            payment.completed_at = now
            _after_completion(payment)
        payment.save()
        logger.info("payment %s is %s", payment.id, target)
        return payment


def _after_completion(payment: Payment) -> None:
    """Called only inside the transition to completed, under the row lock: at most once.

    Normally the payment's settle run is waiting for this (its payment step sees the row and
    completes, and the run goes on to the Safe transaction). If that run already gave up — its
    payment step ran out of attempts before a late completion — a new run settles the payment
    now (its payment step finds it completed at once). Payments from before workflows schedule
    the Safe execution directly, as they always did.
    """
    if payment.workflow_run_id is None:
        _schedule_blockchain_task(payment)
        return
    status = workflow_run_status(payment.workflow_run_id)
    if status in (taskhub.WorkflowStatus.RUNNING, taskhub.WorkflowStatus.CANCELLING):
        return
    safe_tx = SafeTransaction.objects.filter(payment=payment).first()
    logger.warning("payment %s completed after its settle run ended; settling it again", payment.id)
    start_settlement(payment, safe_tx, key=f"payment:{payment.id}:after:{payment.workflow_run_id}")


def _schedule_blockchain_task(payment: Payment) -> None:
    """A payment without a settle run (created before workflows): schedule the Safe task."""
    safe_tx = SafeTransaction.objects.filter(payment=payment).first()
    if safe_tx is None or payment.blockchain_task_id:
        return
    task = taskhub.schedule(
        EXECUTE_SAFE_TASK,
        {"safe_transaction_id": str(safe_tx.id)},
        correlation_id=payment.correlation_id,
        user_id=payment.user_id,
        dedup_key=f"safe-execute:{safe_tx.id}",
    )
    payment.blockchain_task_id = task.id
    SafeTransaction.objects.filter(id=safe_tx.id).update(execute_task_id=task.id)


class RefundNotPossible(Exception):
    """Refunding could let the user keep both the money and the on-chain transfer: an operator
    has to decide (the compensation fails, the run ends ``compensation_failed``)."""


def refund_payment(payment_id, *, reason: str = "") -> Payment:
    """Refund a completed payment at the provider, once (the settle workflow's compensation).

    Idempotent: a refunded payment is returned as it is, the provider call carries a key derived
    from the payment's own idempotency key (a retried call returns the same refund), and a
    payment that never completed has nothing to refund. Refuses — rather than risk a refund next
    to an executed transfer — unless the payment's Safe transaction is proven not executed.
    """
    payment = Payment.objects.get(id=payment_id)
    if payment.status != PaymentStatus.COMPLETED:
        return payment
    safe_tx = SafeTransaction.objects.filter(payment=payment).first()
    if safe_tx is not None and not _safe_tx_never_executes(safe_tx):
        raise RefundNotPossible(
            f"the Safe transaction {safe_tx.id} is {safe_tx.status}"
            + (" and was sent to the chain" if safe_tx.raw_transaction else "")
            + "; refunding needs an operator's decision"
        )
    refund = get_provider(payment.provider).refund_payment(
        payment.provider_payment_id, f"refund:{payment.idempotency_key}", reason
    )
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(id=payment.id)
        if locked.status == PaymentStatus.COMPLETED:
            locked.status = PaymentStatus.REFUNDED
            locked.refund_id = refund.id
            locked.refunded_at = timezone.now()
            locked.failure_reason = (reason or "refunded")[:500]
            locked.save()
            logger.info("payment %s refunded (%s)", payment.id, refund.id)
        return locked


def _safe_tx_never_executes(safe_tx: SafeTransaction) -> bool:
    """Only ``failed`` counts, which ``safe.py`` records only on proof from the chain that the
    safeTxHash did not execute. Not "never sent by us": once the server's signature exists the
    user can execute the SafeTx themselves, so an unsent row proves nothing."""
    from .models import SafeTxStatus

    return safe_tx.status == SafeTxStatus.FAILED


def receive_callback(provider_name: str, headers, raw_body: bytes) -> tuple[ProviderEvent, bool]:
    """Verify (before parsing), store once per event id, and schedule a re-read of the payment.

    Returns ``(event, created)``; a replayed event returns the stored one and changes nothing.
    Raises CallbackRejected (with the HTTP status) for a bad signature, a stale or bad body.
    """
    try:
        provider = get_provider(provider_name)
    except Exception:
        raise CallbackRejected(f"unknown provider {provider_name!r}", 404) from None
    event = provider.verify_callback(headers, raw_body)
    existing = ProviderEvent.objects.filter(provider=provider.name, event_id=event.event_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            stored = ProviderEvent.objects.create(
                provider=provider.name,
                event_id=event.event_id,
                raw_body=raw_body.decode("utf-8", "replace"),
                provider_payment_id=event.provider_payment_id,
            )
            payment = Payment.objects.filter(
                provider=provider.name, provider_payment_id=event.provider_payment_id
            ).first()
            taskhub.schedule(
                REFRESH_TASK,
                {"provider_payment_id": event.provider_payment_id, "event_id": stored.id},
                correlation_id=payment.correlation_id if payment else "",
            )
    except IntegrityError:
        return ProviderEvent.objects.get(provider=provider.name, event_id=event.event_id), False
    return stored, True


def refresh_for_event(provider_payment_id: str, event_id: int | None) -> str:
    payment = Payment.objects.filter(provider_payment_id=provider_payment_id).first()
    if payment is None:
        # The callback can outrun our own record of the provider id: retry shortly.
        raise LookupError(f"no payment with provider id {provider_payment_id} yet")
    status = refresh_payment(payment.id)
    if event_id:
        ProviderEvent.objects.filter(id=event_id, processed_at=None).update(
            processed_at=timezone.now()
        )
    return status


def stuck_payments(older_than: float) -> list[Payment]:
    cutoff = timezone.now() - dt.timedelta(seconds=older_than)
    return list(
        Payment.objects.filter(status=PaymentStatus.PROCESSING, updated_at__lt=cutoff)
        .exclude(provider_payment_id="")
        .order_by("updated_at")[:500]
    )


def reconcile_stuck(older_than: float) -> dict:
    """Re-read every payment stuck in processing from the provider; one failure skips one."""
    counts = {"checked": 0, "changed": 0, "errors": 0}
    for payment in stuck_payments(older_than):
        counts["checked"] += 1
        try:
            if refresh_payment(payment.id) != payment.status:
                counts["changed"] += 1
        except Exception as exc:  # the next run tries again; report it in the counts
            counts["errors"] += 1
            logger.warning("reconcile of payment %s failed: %s", payment.id, type(exc).__name__)
    return counts


def retry_payment(payment: Payment):
    """Operator action: schedule processing again for a payment that never reached an outcome."""
    if payment.status in PAYMENT_TERMINAL:
        raise InvalidTransition(f"payment is {payment.status}; only unfinished ones can be retried")
    with transaction.atomic():
        task = taskhub.schedule(
            PROCESS_TASK,
            {"payment_id": str(payment.id)},
            correlation_id=payment.correlation_id,
            user_id=payment.user_id,
            dedup_key=f"payment-process:{payment.id}",
        )
        Payment.objects.filter(id=payment.id).update(processing_task_id=task.id)
    return task


def reconcile_from_provider(payment: Payment) -> str:
    """Operator action: read the state from the provider now."""
    return refresh_payment(payment.id)
