"""The one place KYC notifies a user. Switch this to ``notifications.notify_user`` when that app
lands (it adds in-app and other channels); until then it e-mails the user through a task.
"""

from __future__ import annotations

import taskhub

EMAIL_TASK = "kyc.send_notification_email"


def notify_user(*, user_id: str, type: str, message: str, metadata: dict, email: str = "") -> None:
    """Schedule the notification in the caller's transaction (sent only if that commits)."""
    if not email:
        return
    taskhub.schedule(
        EMAIL_TASK,
        {"to": email, "type": type, "message": message, "metadata": metadata},
        user_id=user_id, correlation_id=metadata.get("correlation_id"),
    )  # fmt: skip
