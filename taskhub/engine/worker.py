"""The worker side of an attempt: claiming it, running the handler, deciding its outcome, and
the process's heartbeat. Driven by :class:`taskhub.engine.middleware.TaskTrackingMiddleware`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import traceback as tb
import uuid
from dataclasses import dataclass
from typing import Any

import dramatiq
from django.db import DatabaseError, InterfaceError, close_old_connections
from django.utils import timezone
from dramatiq.middleware import Interrupt, SkipMessage, TimeLimitExceeded

from ..conf import taskhub_settings
from ..definitions.payloads import parse_payload, to_jsonable
from ..definitions.registry import all_definitions, declared_queues, get_definition
from ..definitions.retry import has_attempts_left
from ..errors import InvalidTaskRequest, PermanentError, TaskCancelled
from ..logging import bind_task, task_fields, unbind_task
from ..models import TaskStatus, WorkerProcess
from . import claims, leadership, signals
from .broker import EXECUTE_ACTOR, ensure_redis, get_redis
from .claims import ClaimResult
from .context import TaskContext
from .outcomes import Outcome, OutcomeWriter, StartedAttempt

logger = logging.getLogger(__name__)
_current = threading.local()
MAX_RESULT_BYTES = 1024 * 1024
#: A claim made at fetch is confirmed (cancel and pause read again) if its attempt waited
#: longer than this for a thread (seconds). Under load a fetched message starts within a few
#: milliseconds; one that waited behind slow tasks is checked once more.
CLAIM_FRESH_FOR = 0.025
#: An attempt whose claim Redis refused is handed back to run this many seconds later.
CLAIM_FAILED_RETRY_IN = 1.0


@dataclass
class Attempt:
    """One attempt in progress on this worker thread."""

    envelope: dict[str, Any]
    ctx: TaskContext
    start: StartedAttempt
    result: Any = None
    #: The handler returned: an interrupt landing after that (a time limit that fired late, a
    #: shutdown notice) does not change how the attempt ended.
    returned: bool = False
    outcome: Outcome | None = None
    recorded: bool = False
    #: The task's fields on this thread's log lines until the outcome is recorded
    #: (taskhub.logging): Dramatiq's own line about a failed message comes after the handler.
    log_binding: Any = None


def current_attempt() -> Attempt:
    attempt = getattr(_current, "attempt", None)
    if attempt is None:
        raise RuntimeError("no taskhub attempt is running on this thread")
    return attempt


def begin_attempt(env: dict[str, Any], writer: OutcomeWriter) -> Attempt:
    """A claimed attempt starts: its start is recorded and its handler's context built."""
    start = writer.record_start(env["id"], env["attempt"])
    ctx = TaskContext(
        task_id=env["id"],
        name=env["name"],
        queue=env["queue"],
        attempt=env["attempt"],
        max_attempts=env["max_attempts"],
        correlation_id=env.get("correlation_id", ""),
        user_id=env.get("user_id", ""),
        _writer=writer,
    )
    return Attempt(envelope=env, ctx=ctx, start=start)


def run_current_attempt() -> None:
    """Body of the Dramatiq actor: call the handler for the claimed attempt."""
    run_attempt(current_attempt())


def log_fields(ctx: TaskContext) -> dict[str, Any]:
    """What every log line written during the attempt carries (taskhub.logging)."""
    return {
        "task_id": ctx.task_id,
        "task_name": ctx.name,
        "attempt": ctx.attempt,
        "queue": ctx.queue,
        "correlation_id": ctx.correlation_id,
        "user_id": ctx.user_id,
    }


def run_attempt(attempt: Attempt) -> None:
    """Call the attempt's handler with its validated payload (and its context). Whatever it
    logs, through any logger, carries the task's fields — here too, so that the in-process
    runs of taskhub.testing log as a worker does."""
    definition = get_definition(attempt.envelope["name"])
    with task_fields(**log_fields(attempt.ctx)):
        payload = parse_payload(definition, attempt.envelope["payload"])
        if definition.takes_context:
            attempt.result = definition.func(payload, attempt.ctx)
        else:
            attempt.result = definition.func(payload)
    attempt.returned = True


class WorkerRuntime:
    """Everything one worker process keeps for tracking its attempts."""

    def __init__(self) -> None:
        self.worker_id = ""
        self.writer: OutcomeWriter | None = None
        self._heartbeat: Heartbeat | None = None
        # Claims made when their message was fetched: message id → (answer, monotonic time).
        self._fetched: dict[str, tuple[ClaimResult, float]] = {}

    # -- process lifecycle ---------------------------------------------------------------------
    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Everything a message needs exists before the worker threads start consuming: a message
        # taken before the writer existed would otherwise wait for the lifeline.
        ensure_redis()
        for queue in declared_queues():
            broker.declare_queue(queue)
        # How long an idle consumer waits for a nudge before polling anyway (redis_transport).
        worker.worker_timeout = int(taskhub_settings.WORKER_POLL_MS)
        # Pid-based id: a forked process must not share its parent's identity.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.writer = OutcomeWriter(self.worker_id)
        self.writer.start()
        if hasattr(broker, "on_fetched"):
            broker.on_fetched, broker.on_requeued = self.claim_fetched, self.release_fetched
        whitelist = worker.consumer_whitelist
        queues = sorted(whitelist) if whitelist else declared_queues()
        broker_id = getattr(broker, "broker_id", "")
        self._heartbeat = Heartbeat(
            self.worker_id, self.writer, queues, worker.worker_threads, broker_id
        )
        self._heartbeat.start()
        # With EMBEDDED_DISPATCHER on, this process is also a dispatcher candidate: one thread
        # that leads dispatching (and the lifeline) while it holds the lease
        # (taskhub.engine.leadership).
        leadership.start_embedded(self.worker_id)
        signals.worker_started.send(sender=type(self), worker_id=self.worker_id)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        logger.info("worker %s shutting down: finishing in-flight tasks", self.worker_id)
        # A stopping worker dispatches no more; a leader gives its lease up for another to take.
        leadership.stop_embedded()
        signals.worker_stopping.send(sender=type(self), worker_id=self.worker_id)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.writer is None:
            return
        # Dramatiq waited out the grace period; whatever still runs dies with this process.
        # Hand those attempts back now instead of leaving them to the lifeline's timeout.
        # Their claims stay taken: a thread still running one of them may finish before the
        # process exits, and the task's next dispatch is a new attempt anyway.
        abandoned = self.writer.hand_back_unfinished("worker shut down before it finished")
        self.writer.stop()
        if abandoned:
            logger.warning("handed back %d unfinished attempts at shutdown", len(abandoned))
        if self._heartbeat is not None:
            self._heartbeat.stop()

    # -- per message ---------------------------------------------------------------------------
    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        if message.actor_name != EXECUTE_ACTOR or self.writer is None:
            return
        env = message.args[0]
        task_id, attempt = env["id"], env["attempt"]
        claim = self._claim(message, env)
        if claim is ClaimResult.PAUSED:
            self._hand_back(env, "queue paused")
        elif claim is ClaimResult.CANCELLED:
            self._end_cancelled(env)
        elif claim is ClaimResult.RETIRED:
            logger.warning(
                "not running %s attempt %s: delivered again, sent before Redis lost its data"
                " (with the claim that would say whether it started); the lifeline counts it lost",
                task_id,
                attempt,
            )
        if claim is not ClaimResult.CLAIMED:
            logger.debug("dropping message for %s attempt %s: %s", task_id, attempt, claim)
            raise SkipMessage(claim.value)
        running = _current.attempt = begin_attempt(env, self.writer)
        running.log_binding = bind_task(log_fields(running.ctx))

    def _claim(self, message: dramatiq.Message, env: dict) -> ClaimResult:
        task_id, attempt, queue = env["id"], env["attempt"], env["queue"]
        fetched = self._fetched.pop(message.message_id, None)
        try:
            # RabbitMQ keeps a message whose claim Redis may have lost since it was first
            # delivered (the Redis broker loses both together).
            redelivered = getattr(message, "redelivered", False)
            if redelivered and claims.retire_if_lost(task_id, attempt, message.message_timestamp):
                return ClaimResult.RETIRED
            if fetched is None:
                return claims.claim_attempt(
                    task_id, attempt, queue, self.worker_id, rate_limits(queue, env["name"])
                )
            claim, claimed_at = fetched
            if claim is ClaimResult.CLAIMED and time.monotonic() - claimed_at > CLAIM_FRESH_FOR:
                # It waited for a thread: a cancel or a pause may have landed meanwhile.
                return claims.confirm_claim(task_id, attempt, queue, self.worker_id)
            return claim
        except Exception as exc:  # noqa: BLE001 — whatever Redis said, the attempt must not run
            # Unsettled, the message would be dropped while its claim (ours, or maybe ours if
            # Redis ran the script and the reply was lost) stayed taken for CLAIM_TTL, the row
            # queued and holding a slot of its queue. Hand the attempt back instead: a row still
            # queued returns to pending, and its next dispatch is a new attempt.
            logger.warning(
                "claim of %s attempt %s failed, handing it back: %s", task_id, attempt, exc
            )
            # Not at once: while Redis refuses claims, every dispatch would come straight back.
            self._hand_back(env, f"claim failed: {exc}", retry_in=CLAIM_FAILED_RETRY_IN)
            raise SkipMessage("claim failed") from None

    # -- claims at fetch (Redis consumers) -----------------------------------------------------
    def claim_fetched(self, messages: list) -> None:
        """Claim a fetched batch in one round trip, so worker threads don't wait on Redis.

        Attempts under a rate limit are left to be claimed when they start (the limiter counts
        starts). If Redis refuses, each attempt is claimed when it starts instead.
        """
        batch = [
            m
            for m in messages
            if m.actor_name == EXECUTE_ACTOR
            and not rate_limits(m.args[0]["queue"], m.args[0]["name"])
        ]
        if not batch or self.writer is None:
            return
        try:
            answers = claims.claim_fetched(
                [(m.args[0]["id"], m.args[0]["attempt"], m.args[0]["queue"]) for m in batch],
                self.worker_id,
            )
        except Exception as exc:  # noqa: BLE001 — claimed at start instead, which reports it
            logger.debug("claims at fetch failed: %s", exc)
            return
        now = time.monotonic()
        for message, answer in zip(batch, answers, strict=True):
            self._fetched[message.message_id] = (answer, now)

    def release_fetched(self, messages: list) -> None:
        """Messages handed back to the broker unstarted: let their fetch-time claims go (the
        attempt was not decided here; whoever fetches it next decides)."""
        mine = []
        for m in messages:
            fetched = self._fetched.pop(m.message_id, None)
            if fetched is not None and fetched[0] is not ClaimResult.DUPLICATE:
                mine.append((m.args[0]["id"], m.args[0]["attempt"]))
        try:
            claims.release_claims(mine)
        except Exception as exc:  # noqa: BLE001 — the lifeline recovers them (as lost attempts)
            logger.warning(
                "could not release %d claims of handed-back messages: %s", len(mine), exc
            )

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        attempt = getattr(_current, "attempt", None)
        if message.actor_name != EXECUTE_ACTOR or attempt is None:
            return
        if attempt.returned:
            exception = None
        # Dramatiq raises a time limit (and a shutdown notice) asynchronously in this thread, so
        # it can land here instead of in the handler. Recording is retried until done (the
        # outcome decided once, the writer ignoring a second copy); if an interrupt escapes
        # anyway, Dramatiq calls this again with it, and the attempt is still current.
        while not attempt.recorded:
            try:
                if attempt.outcome is None:
                    attempt.outcome = decide_outcome(attempt, exception)
                self.writer.record_outcome(attempt.outcome)
                attempt.recorded = True
            except Interrupt as late:
                logger.warning("%s landed while recording an outcome; recording it again", late)
        _current.attempt = None
        if attempt.log_binding is not None:
            unbind_task(attempt.log_binding)
            attempt.log_binding = None

    def _hand_back(self, env: dict, reason: str, retry_in: float = 0.0) -> None:
        """This attempt will not run here (its queue was paused after it was dispatched, or its
        claim could not be settled): return the row to pending, not charging the attempt."""
        now = timezone.now()
        retry_at = now + dt.timedelta(seconds=retry_in) if retry_in else None
        self.writer.record_outcome(
            Outcome(
                task_id=env["id"],
                attempt=env["attempt"],
                name=env["name"],
                queue=env["queue"],
                status=TaskStatus.PENDING,
                started_at=None,
                finished_at=now,
                retry_at=retry_at,
                event_data={"reason": reason},
                coordinated=env.get("coordinated", True),
            )
        )

    def _end_cancelled(self, env: dict) -> None:
        """This worker claimed an attempt a cancel covers: the task ends cancelled (a no-op if
        the cancel already ended the row; a running step asked to stop may be queued still)."""
        now = timezone.now()
        self.writer.record_outcome(
            Outcome(
                task_id=env["id"],
                attempt=env["attempt"],
                name=env["name"],
                queue=env["queue"],
                status=TaskStatus.CANCELLED,
                started_at=None,
                finished_at=now,
                error="cancelled before it started",
                payload=env["payload"],
                event_data={"reason": "cancelled before it started"},
                coordinated=env.get("coordinated", True),
            )
        )


def rate_limits(queue: str, name: str) -> dict[str, float]:
    """The start-rate limits an attempt must fit in: its queue's and its task type's."""
    limits = {}
    queue_rate = taskhub_settings.queue_config(queue).get("rate")
    if queue_rate:
        limits[f"queue:{queue}"] = queue_rate
    definition = all_definitions().get(name)
    if definition is not None and definition.rate_limit:
        limits[f"task:{name}"] = definition.rate_limit
    return limits


def decide_outcome(attempt: Attempt, exception: BaseException | None) -> Outcome:
    """Turn how the handler ended into the attempt's outcome, asking the retry policy."""
    env, ctx = attempt.envelope, attempt.ctx
    finished = timezone.now()
    base = dict(
        task_id=env["id"],
        attempt=env["attempt"],
        name=env["name"],
        queue=env["queue"],
        started_at=attempt.start.started_at,
        finished_at=finished,
        start=attempt.start,
        duration=time.monotonic() - attempt.start.monotonic,
        payload=env["payload"],
        coordinated=env.get("coordinated", True),
    )
    if exception is None:
        if ctx.cancel_seen:
            return Outcome(status=TaskStatus.CANCELLED, error="cancelled while running", **base)
        try:
            result = to_jsonable(attempt.result)
            size = len(json.dumps(result, allow_nan=False))
        except (TypeError, ValueError) as exc:
            return _failed(base, f"result is not JSON-serialisable: {exc}", "", permanent=True)
        if size > MAX_RESULT_BYTES:
            message = f"result is {size} bytes, over the limit of {MAX_RESULT_BYTES}"
            return _failed(base, message, "", permanent=True)
        if ctx.spawned:
            # Completes once its children have ended (taskhub.workflows.children).
            return Outcome(status=TaskStatus.BLOCKED, result=result, children=ctx.spawned, **base)
        return Outcome(status=TaskStatus.COMPLETED, result=result, **base)
    if isinstance(exception, TaskCancelled):
        return Outcome(status=TaskStatus.CANCELLED, error=str(exception), **base)
    trace = "".join(tb.format_exception(exception))
    if isinstance(exception, TimeLimitExceeded):
        error = f"timed out after {env.get('timeout')} s"
    else:
        error = f"{type(exception).__name__}: {exception}"
    permanent = isinstance(exception, PermanentError | InvalidTaskRequest)
    if permanent or not has_attempts_left(env["attempt"], env["max_attempts"]):
        return _failed(base, error, trace, permanent=permanent)
    definition = get_definition(env["name"])
    delay = definition.retry_policy.delay(env["attempt"])
    retry_at = finished + dt.timedelta(seconds=delay)
    return Outcome(
        status=TaskStatus.RETRYING,
        error=error,
        traceback=trace,
        retry_at=retry_at,
        event_data={"error": error, "delay": delay, "retry_at": retry_at.isoformat()},
        **base,
    )


def _failed(base: dict, error: str, trace: str, *, permanent: bool) -> Outcome:
    data = {"error": error, "permanent": permanent}
    return Outcome(status=TaskStatus.FAILED, error=error, traceback=trace, event_data=data, **base)


class Heartbeat:
    """This process's two heartbeats, each on a thread of its own so that neither store's
    outage can skip or delay the other:

    - the database row, which the lifeline and the health probe judge liveness by, and which
      must keep beating while Redis is away (a Redis outage is no evidence of death);
    - in Redis, the liveness key (what the lifeline reads when the database missed our beats)
      and the claims of our running attempts, re-asserted in case Redis lost its data.
    """

    def __init__(
        self, worker_id: str, writer: OutcomeWriter, queues: list[str], threads: int, broker_id: str
    ):
        self.worker_id, self.writer = worker_id, writer
        self.queues, self.threads, self.broker_id = queues, threads, broker_id
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(beat,), name=name, daemon=True)
            for beat, name in (
                (self.beat_database, "taskhub-heartbeat-db"),
                (self.beat_redis, "taskhub-heartbeat-redis"),
            )
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        try:
            get_redis().delete(claims.liveness_key(self.worker_id))
        except Exception as exc:  # shutting down: a missing key only delays nothing
            logger.debug("could not clear liveness key: %s", exc)
        try:
            WorkerProcess.objects.filter(id=self.worker_id).update(stopped_at=timezone.now())
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("could not record worker stop: %s", exc)

    def beat_database(self) -> None:
        now = timezone.now()
        updated = WorkerProcess.objects.filter(id=self.worker_id).update(
            last_heartbeat_at=now, stopped_at=None
        )
        if not updated:
            WorkerProcess.objects.create(
                id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                queues=self.queues,
                threads=self.threads,
                broker_id=self.broker_id,
                started_at=now,
                last_heartbeat_at=now,
            )

    def beat_redis(self) -> None:
        get_redis().set(
            claims.liveness_key(self.worker_id), 1, ex=int(taskhub_settings.LIFELINE_TIMEOUT)
        )
        self.writer.publish_health()  # read by the health probes (taskhub.cli.probes)
        claims.reassert_claims(self.writer.in_flight(), self.worker_id)

    def _run(self, beat) -> None:
        interval = taskhub_settings.HEARTBEAT_INTERVAL
        while True:
            try:
                beat()
            except Exception as exc:  # a heartbeat must never kill the worker; retry next beat
                logger.warning("heartbeat (%s) failed: %s", beat.__name__, exc)
                if beat == self.beat_database:
                    close_old_connections()
            if self._stop.wait(interval):
                return
