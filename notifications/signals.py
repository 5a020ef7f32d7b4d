"""Signals other apps (webhooks, the live event stream) subscribe to; this app imports none of them.

``notification_created`` — sent by ``notifications.deliver`` for the ``webhook`` channel, with
``notification`` (the row) and ``event``: ``{"type": "notification.created", "data": {…}}``.
Receivers run inside the transaction that marks the channel delivered: schedule work with
``taskhub.schedule`` there and it commits (or not) together with the delivery state. A receiver
that raises fails the webhook channel alone, which is retried; the other channels are not.

``operator_alert`` — sent when dead-lettered tasks alert operators, with ``event``:
``{"type": "task.dead_lettered", "data": {"task_name", "queue", "count", "task_id", "error"}}``.
"""

from django.dispatch import Signal

notification_created = Signal()
operator_alert = Signal()
