"""SharedRoundTrips (taskhub.engine.redis_batch) with a stand-in Redis client: what flush()
promises a process about to exit."""

import threading
import time

from taskhub.engine.redis_batch import SharedRoundTrips


class SlowPipeline:
    """Records the notes queued on it; execute() takes a while, like a round trip."""

    def __init__(self, client: "SlowClient") -> None:
        self.client, self.queued = client, []

    def execute(self, raise_on_error: bool = True) -> list:
        self.client.started.set()
        time.sleep(self.client.delay)
        self.client.sent += self.queued
        return []


class SlowClient:
    def __init__(self, delay: float) -> None:
        self.delay, self.sent, self.started = delay, [], threading.Event()

    def pipeline(self, transaction: bool = False) -> SlowPipeline:
        return SlowPipeline(self)


def queue_notes(pipe: SlowPipeline, notes: dict) -> None:
    pipe.queued += [item for items in notes.values() for item in items]


def test_flush_returns_only_after_notes_the_sender_thread_took_are_sent():
    # The sender thread took the note and is mid-round-trip when flush() is called: flush()
    # found nothing pending and returned at once, and a process exiting then lost the ack.
    client = SlowClient(delay=0.5)
    batch = SharedRoundTrips("test", lambda: client, scripts=[], send_notes=queue_notes)

    batch.note("q", "message-1")
    assert client.started.wait(5)
    batch.flush()

    assert client.sent == ["message-1"]


def test_flush_sends_what_is_pending_itself():
    client = SlowClient(delay=0.0)
    batch = SharedRoundTrips("test", lambda: client, scripts=[], send_notes=queue_notes)
    batch._notes = {"q": ["message-1", "message-2"]}  # handed over, the sender not yet woken

    batch.flush()

    assert client.sent == ["message-1", "message-2"]
