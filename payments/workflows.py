"""The payment → Safe transaction → notification path as a workflow (``payments.settle``).

::

    payment ──▶ safe ──▶ track ──▶ notify        (safe and track only with a Safe transaction)
       └─ compensation: payments.refund_dtr_payment

* ``payment`` (``payments.process_dtr_payment``) sends the payment to DTR and waits for the
  outcome; declined fails the run (nothing ran, nothing to undo).
* ``safe`` (``payments.execute_safe_transaction``) countersigns and submits execTransaction, once
  whatever crashes; ``track`` follows it to ``executed`` — or fails for good.
* ``notify`` (``notifications.deliver``) tells the user, in-app and by e-mail when an address
  is known; the row is created once per step (the task's own idempotency).

``on_failure="compensate"``: a Safe execution that fails for good after the payment completed
unwinds the run — the payment step's compensation refunds the payment at the provider, exactly
once (the coordinator creates one compensation row; the provider call carries an idempotency
key), and the run ends ``compensated`` with the payment ``refunded``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import taskhub

PAYMENT_TASK = "payments.process_dtr_payment"
REFUND_TASK = "payments.refund_dtr_payment"
EXECUTE_TASK = "payments.execute_safe_transaction"
TRACK_TASK = "payments.track_safe_transaction"
NOTIFY_TASK = "notifications.deliver"
#: attempts of the payment step: with the task's retry schedule (…, 60 s, 300 s) it waits for
#: the provider for about two hours, well past the stuck-payment cron's 5-minute rounds
PAYMENT_ATTEMPTS = 30


class SettleInput(BaseModel):
    payment_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1, max_length=200)
    amount: str
    currency: str = Field(min_length=3, max_length=3)
    safe_transaction_id: str | None = None


@taskhub.workflow("payments.settle", on_failure="compensate", input_schema=SettleInput)
def settle(wf: taskhub.WorkflowBuilder, input: SettleInput) -> None:
    """Take a payment through the provider, execute its Safe transaction, notify the user;
    refund the payment if the Safe transaction fails for good."""
    last = wf.step(
        "payment",
        PAYMENT_TASK,
        {"payment_id": input.payment_id},
        compensation=REFUND_TASK,
        max_attempts=PAYMENT_ATTEMPTS,
    )
    message = f"Your payment of {input.amount} {input.currency} is complete."
    if input.safe_transaction_id:
        ref = {"safe_transaction_id": input.safe_transaction_id}
        last = wf.chain(last, wf.step("safe", EXECUTE_TASK, ref), wf.step("track", TRACK_TASK, ref))
        message = (
            f"Your payment of {input.amount} {input.currency} is complete and your Safe "
            "transaction was executed."
        )
    wf.step(
        "notify",
        NOTIFY_TASK,
        {
            "userId": input.user_id,
            "type": "payment.completed",
            "message": message,
            "metadata": {
                "payment_id": input.payment_id,
                "safe_transaction_id": input.safe_transaction_id,
                "correlation_id": f"payment:{input.payment_id}",
                "subject": "Your payment is complete",
            },
        },
        after=last,
    )
