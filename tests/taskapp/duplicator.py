"""A fault injector for drills: every taskhub message a worker takes is sent once more, at once
(so the copy may run concurrently with the original) — the broker's at-least-once delivery at
its worst. Enabled in config/settings_test.py by TASKHUB_TEST_DUPLICATE_MESSAGES=1."""

import uuid

from dramatiq.middleware import Middleware


class DuplicateEveryMessage(Middleware):
    def before_process_message(self, broker, message) -> None:
        if message.options.get("duplicate"):
            return
        copy = message.copy(
            message_id=str(uuid.uuid4()), options={**message.options, "duplicate": True}
        )
        broker.enqueue(copy)
