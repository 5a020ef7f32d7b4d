"""Payment and Safe task types.

Queues carry the task type: ``payment_processing`` (provider calls, callbacks, reconciliation)
and ``blockchain_transaction`` (Safe execution and receipt tracking).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from taskhub import Linear, PermanentError, Schedule, TaskType, task
from taskhub.scheduler.cron import EVERY_5_MINUTES, cron

from . import safe, services
from .conf import payments_settings
from .models import PaymentStatus, SafeTransaction, SafeTxStatus
from .providers import ProviderRejected


class PaymentRef(BaseModel):
    payment_id: str


class ProviderPaymentRef(BaseModel):
    provider_payment_id: str = Field(min_length=1, max_length=200)
    event_id: int | None = None


class SafeTxRef(BaseModel):
    safe_transaction_id: str


class Reconcile(BaseModel):
    #: payments in processing for longer than this are re-read from the provider (seconds)
    older_than: float | None = Field(default=None, ge=0)


@task(
    "payments.process_dtr_payment",
    queue="payment_processing",
    type=TaskType.PAYMENT_PROCESSING,
    schema=PaymentRef,
    max_attempts=6,
    retry=Schedule([1, 5, 15, 60, 300]),
    timeout=60,
    external=False,
)
def process_dtr_payment(payload: PaymentRef, ctx) -> dict:
    """Send the payment to DTR (with its stored idempotency key) and apply the answer.

    As the payment step of the ``payments.settle`` workflow it also waits for the outcome, so
    the steps after it start only once the payment completed: declined or canceled fails the
    step for good; still processing retries later (callbacks and the cron move the row).
    """
    in_run = ctx.workflow is not None
    try:
        status = services.process_payment(payload.payment_id, refresh=not in_run)
    except ProviderRejected as exc:
        services.apply_provider_state(
            payload.payment_id,
            services.ProviderPayment(id="", status="failed", reason=str(exc)[:500]),
        )
        raise PermanentError(str(exc)) from None
    if in_run:
        payment = services.wait_for_outcome(
            payload.payment_id, payments_settings.SETTLE_WAIT_SECONDS
        )
        status = payment.status
        if status in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
            raise PermanentError(f"payment {status}: {payment.failure_reason}".rstrip(": "))
        if status == PaymentStatus.REFUNDED:
            raise PermanentError("payment was refunded")
        if status != PaymentStatus.COMPLETED:
            raise PaymentNotFinal(f"payment is {status}; waiting for the provider's outcome")
    ctx.logger.info("payment %s is %s", payload.payment_id, status)
    return {"payment_id": payload.payment_id, "status": status}


class PaymentNotFinal(Exception):
    """The provider has not decided yet: the settle workflow's payment step retries later."""


@task(
    "payments.refund_dtr_payment",
    queue="payment_processing",
    type=TaskType.PAYMENT_PROCESSING,
    schema=PaymentRef,
    max_attempts=8,
    retry=Schedule([2, 5, 15, 60, 300]),
    timeout=60,
    external=False,
)
def refund_dtr_payment(payload: PaymentRef, ctx) -> dict:
    """Compensation of the settle workflow's payment step: refund the payment at DTR, once.

    Does nothing for a payment that never completed; refuses (fails for good, so an operator
    decides) unless the payment's Safe transaction is ``failed`` — which the execution step sets
    only once the chain shows that its safeTxHash did not execute."""
    forward = ctx.forward
    reason = "refunded: the Safe transaction failed"
    if forward is not None:
        ctx.logger.info("compensating step %s (task %s)", forward.step, forward.idempotency_key)
    try:
        payment = services.refund_payment(payload.payment_id, reason=reason)
    except (ProviderRejected, services.RefundNotPossible) as exc:
        raise PermanentError(str(exc)) from None
    return {
        "payment_id": payload.payment_id,
        "status": payment.status,
        "refund_id": payment.refund_id,
    }


@task(
    "payments.refresh_dtr_payment",
    queue="payment_processing",
    type=TaskType.PAYMENT_PROCESSING,
    schema=ProviderPaymentRef,
    max_attempts=8,
    retry=Schedule([1, 2, 5, 15, 60]),
    timeout=60,
    external=False,
)
def refresh_dtr_payment(payload: ProviderPaymentRef, ctx) -> dict:
    """After a callback: re-read the payment's state from DTR (the callback body is not trusted)."""
    status = services.refresh_for_event(payload.provider_payment_id, payload.event_id)
    return {"provider_payment_id": payload.provider_payment_id, "status": status}


@cron(EVERY_5_MINUTES)
@task(
    "payments.reconcile_stuck",
    queue="payment_processing",
    type=TaskType.PAYMENT_PROCESSING,
    schema=Reconcile,
    max_attempts=1,
)
def reconcile_stuck(payload: Reconcile, ctx) -> dict:
    """Re-read payments stuck in ``processing`` from the provider (a cron, every 5 minutes)."""
    older_than = payload.older_than
    if older_than is None:
        older_than = float(payments_settings.STUCK_AFTER_SECONDS)
    counts = services.reconcile_stuck(older_than)
    ctx.logger.info("reconciled stuck payments: %s", counts)
    return counts


@task(
    "payments.execute_safe_transaction",
    queue="blockchain_transaction",
    type=TaskType.BLOCKCHAIN_TRANSACTION,
    schema=SafeTxRef,
    max_attempts=8,
    retry=Schedule([2, 5, 15, 30, 60, 120, 300]),
    timeout=120,
    external=False,
)
def execute_safe_transaction(payload: SafeTxRef, ctx) -> dict:
    """Countersign the user's SafeTx and submit execTransaction — once, whatever crashes.

    In the settle workflow the next step tracks it; on its own it schedules the tracking task."""
    in_run = ctx.workflow is not None
    status = safe.execute(payload.safe_transaction_id, schedule_track=not in_run)
    return {"safe_transaction_id": payload.safe_transaction_id, "status": status}


@task(
    "payments.track_safe_transaction",
    queue="blockchain_transaction",
    type=TaskType.BLOCKCHAIN_TRANSACTION,
    schema=SafeTxRef,
    max_attempts=60,
    retry=Linear(2, cap=30),
    timeout=60,
    external=False,
)
def track_safe_transaction(payload: SafeTxRef, ctx) -> dict:
    """Follow execTransaction to ``executed`` at the confirmation depth, or ``failed`` — which
    fails the step for good inside the settle workflow (so the run refunds the payment)."""
    status = safe.track(payload.safe_transaction_id)
    if status == SafeTxStatus.FAILED and ctx.workflow is not None:
        reason = SafeTransaction.objects.get(id=payload.safe_transaction_id).failure_reason
        raise PermanentError(f"the Safe transaction failed: {reason}")
    return {"safe_transaction_id": payload.safe_transaction_id, "status": status}


# The workflow definitions use the task types above: registered with them, so the web process
# and the workers (which both import every app's tasks module) know them.
from . import workflows  # noqa: E402, F401
