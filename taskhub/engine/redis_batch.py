"""Redis commands that many threads of one process issue at the same moment go out together.

A worker process runs many handler threads; each one claims its attempt before it starts and
acks its message when it ends — two Redis round trips per task, each paying redis-py's
per-command cost and a socket read. :class:`SharedRoundTrips` gathers what the threads hand it
and sends it from a thread of its own, one pipeline per round trip. Nothing waits for a batch
to fill: a call goes out at once unless a round trip is already under way, so the batch is
whatever piled up meanwhile. A thread of its own sends them because a worker thread can be
interrupted (Dramatiq's time limit raises inside it), and a batch must never wait on a thread
that has gone.

Two kinds of work: *calls*, whose caller waits for its own answer (a claim), and *notes*, which
the caller hands over and forgets (an ack). Notes that fail are kept and sent again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

import redis

logger = logging.getLogger(__name__)

#: pipe, [args of each waiting call] → one result per call (in order).
CallSender = Callable[[Any, list[Any]], Callable[[list[Any]], list[Any]]]
#: pipe, {group: [notes]} → queues the commands that carry them.
NoteSender = Callable[[Any, dict[Hashable, list[Any]]], None]

_RETRY_NOTES_AFTER = 0.5  # seconds, while Redis refuses them
_FLUSH_WAIT = 5.0  # seconds flush() waits for the sender thread's round trip under way


class _Call:
    __slots__ = ("args", "done", "result", "error")

    def __init__(self, args: Any) -> None:
        self.args = args
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SharedRoundTrips:
    """One sender thread per process that pipelines the calls and notes of every thread.

    ``client`` returns the Redis client to use; ``scripts`` are the Lua scripts the senders
    EVALSHA (loaded first, and again if Redis forgets them); ``send_calls(pipe, args)`` queues
    the commands for a batch of calls on ``pipe`` and returns a function that turns the
    pipeline's replies into one answer per call; ``send_notes(pipe, groups)`` queues the
    commands for the notes.
    """

    def __init__(
        self,
        name: str,
        client: Callable[[], redis.Redis],
        scripts: list[str],
        send_calls: CallSender | None = None,
        send_notes: NoteSender | None = None,
    ) -> None:
        self.name, self._client, self._scripts = name, client, scripts
        self._send_calls, self._send_notes = send_calls, send_notes
        self._reset()
        # A child forked while another thread held the lock would deadlock on it: start over.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._calls: list[_Call] = []
        self._notes: dict[Hashable, list[Any]] = {}
        self._notes_failed = False
        self._sending_notes = False  # the sender thread has taken notes and not yet sent them
        self._loaded = False
        self._thread: threading.Thread | None = None

    # -- what threads call ---------------------------------------------------------------------
    def call(self, args: Any) -> Any:
        """Send ``args`` with the next round trip and wait for its answer (or its error)."""
        call = _Call(args)
        with self._cond:
            self._calls.append(call)
            self._wake()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def note(self, group: Hashable, item: Any) -> None:
        """Hand ``item`` over to go out with the next round trip; returns at once."""
        with self._cond:
            self._notes.setdefault(group, []).append(item)
            self._wake()

    def flush(self) -> None:
        """Send the pending notes now, from the calling thread (at shutdown). Returns once the
        notes handed over before the call are in Redis (or refused): notes the sender thread
        already took are waited for, as a process that exits right after would lose them."""
        with self._cond:
            self._cond.wait_for(lambda: not self._sending_notes, timeout=_FLUSH_WAIT)
            notes, self._notes = self._notes, {}
        if notes:
            try:
                self._round_trip([], notes)
            except (redis.RedisError, OSError) as exc:
                logger.warning("%s: %d notes not sent at shutdown: %s", self.name, len(notes), exc)

    # -- the sender thread ---------------------------------------------------------------------
    def _wake(self) -> None:  # with self._cond held
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._cond.notify()

    def _take(self) -> tuple[list[_Call], dict[Hashable, list[Any]]]:
        with self._cond:
            while not self._calls and not self._notes:
                self._cond.wait()
            if not self._calls and self._notes_failed:
                # Only notes Redis just refused: give it a moment rather than spin.
                self._cond.wait(_RETRY_NOTES_AFTER)
            calls, self._calls = self._calls, []
            notes, self._notes = self._notes, {}
            self._sending_notes = bool(notes)
            return calls, notes

    def _run(self) -> None:
        while True:
            calls, notes = self._take()
            try:
                answers = self._round_trip([c.args for c in calls], notes)
                for call, answer in zip(calls, answers, strict=True):
                    call.result = answer
                self._notes_failed = False
            except Exception as exc:  # noqa: BLE001 — each caller raises it, as its own would
                for call in calls:
                    call.error = exc
                if notes:
                    self._keep(notes)
                    logger.warning("%s: Redis refused a batch, will retry: %s", self.name, exc)
            finally:
                for call in calls:
                    call.done.set()
                if notes:
                    with self._cond:
                        self._sending_notes = False
                        self._cond.notify_all()

    def _keep(self, notes: dict[Hashable, list[Any]]) -> None:
        with self._cond:
            for group, items in notes.items():
                self._notes.setdefault(group, [])[:0] = items
            self._notes_failed = True

    def _round_trip(self, calls: list[Any], notes: dict[Hashable, list[Any]]) -> list[Any]:
        # The scripts are loaded before their first EVALSHA, so a NoScriptError means Redis lost
        # them all (a restart, SCRIPT FLUSH): none of the batch ran, and it can go again.
        if not self._loaded:
            self._load_scripts()
        try:
            return self._execute(calls, notes)
        except redis.exceptions.NoScriptError:
            self._load_scripts()
            return self._execute(calls, notes)

    def _load_scripts(self) -> None:
        client = self._client()
        for script in self._scripts:
            client.script_load(script)
        self._loaded = True

    def _execute(self, calls: list[Any], notes: dict[Hashable, list[Any]]) -> list[Any]:
        pipe = self._client().pipeline(transaction=False)
        answer = self._send_calls(pipe, calls) if calls else None
        if notes:
            self._send_notes(pipe, notes)
        replies = pipe.execute(raise_on_error=True)
        return answer(replies) if answer else []
