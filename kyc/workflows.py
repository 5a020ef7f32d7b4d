"""The KYC → notification path as a workflow (``kyc.verify``), one run per submission::

    check ──▶ notify   (notify runs whatever check did: trigger all_done)

* ``check`` (``kyc.process_document``) submits the document to its provider and waits for the
  decision (approved, rejected, needs_review, expired); signed callbacks move the case.
* ``notify`` (``kyc.notify_decision``) tells the user that decision through ``notify_user``
  (in-app row, e-mail, webhook event), once: it clears the case's ``decision_notice_pending``
  under the case's lock. Because it runs even when ``check`` failed, the case never stays
  waiting for a notice that will not come; later changes then notify as they happen.

No compensation: nothing a KYC check does needs undoing (the provider keeps its record).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import taskhub

CHECK_TASK = "kyc.process_document"
NOTIFY_TASK = "kyc.notify_decision"
#: attempts of the check step: with the task's schedule (…, 60 s, 300 s) about two hours
CHECK_ATTEMPTS = 30


class VerifyInput(BaseModel):
    case_id: str = Field(min_length=1)
    submission: int = Field(ge=1)


@taskhub.workflow("kyc.verify", input_schema=VerifyInput)
def verify(wf: taskhub.WorkflowBuilder, input: VerifyInput) -> None:
    """Check a KYC document with its provider, then notify the user of the decision."""
    ref = {"case_id": input.case_id, "submission": input.submission}
    check = wf.step("check", CHECK_TASK, ref, max_attempts=CHECK_ATTEMPTS)
    wf.step("notify", NOTIFY_TASK, ref, after=check, trigger="all_done")
