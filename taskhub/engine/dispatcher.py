"""The dispatcher: moves ready rows to the broker, in priority order, within each queue's window.

One cycle is one short transaction: lock out other dispatchers, count what each queue has in
flight, claim up to (window − in flight) ready rows per unpaused queue — highest priority first
(unless ENABLE_PRIORITY is off), and never more in flight across every queue than
MAX_CONCURRENT_TASKS when it is set — mark them ``queued`` with attempt + 1, and record the
events. Messages are sent after commit, in one pipelined round trip. Keeping only a small window
in the broker is what makes priorities, pause and concurrency caps hold while Redis itself knows
nothing about them (docs/architecture.md, "Pause, priority and caps hold").
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import math
import os
import socket
import threading
import time
from collections import Counter, deque

import dramatiq
import redis
from django.db import DatabaseError, InterfaceError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from ..conf import taskhub_settings
from ..definitions.registry import declared_queues
from ..models import IN_FLIGHT_STATUSES, READY_STATUSES, EventKind, QueueState, Task, WorkerProcess
from . import claims, pause, redis_memory, transitions
from .broker import get_redis, key
from .events import publish_on_commit
from .lifeline import Lifeline
from .messages import Dispatched, envelope, send_messages
from .store import NewEvent, insert_events, server_cursor

logger = logging.getLogger(__name__)

#: pg_advisory_xact_lock key serialising dispatch cycles across dispatcher processes.
DISPATCH_LOCK = 0x7461736B  # "task"

_NEXT_DUE_SQL = """
SELECT scheduled_at FROM {table}
WHERE status IN ('pending', 'retrying') AND scheduled_at > %s ORDER BY scheduled_at LIMIT 1
"""


def dispatcher_alive_key(hostname: str | None = None) -> str:
    return key("dispatcher", "alive", hostname or socket.gethostname())


def dispatch_cycle_key() -> str:
    """The last cycle of whichever dispatcher leads, whatever its host: read by the health
    report (taskhub.console.health), which runs on any host. It expires LIFELINE_TIMEOUT after
    the cycle, so its remaining time says how long ago that was without comparing clocks."""
    return key("dispatcher", "last-cycle")


def mark_dispatcher_alive() -> None:
    """Called after each cycle (at most once a second); read by ``taskhub health --dispatcher``
    (this host's key) and by ``/healthz`` (the deployment's)."""
    ttl = max(1, int(taskhub_settings.LIFELINE_TIMEOUT))
    now = timezone.now().isoformat()
    cycle = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "at": now})
    pipe = get_redis().pipeline(transaction=False)  # one round trip for both
    pipe.set(dispatcher_alive_key(), now, ex=ttl)
    pipe.set(dispatch_cycle_key(), cycle, px=int(taskhub_settings.LIFELINE_TIMEOUT * 1000))
    pipe.execute()


def last_dispatch_cycle() -> dict | None:
    """The leading dispatcher's last cycle — ``host``, ``pid``, ``at`` and ``seconds_ago`` — or
    None when no dispatcher finished one within LIFELINE_TIMEOUT. Raises Redis's errors."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.get(dispatch_cycle_key())
    pipe.pttl(dispatch_cycle_key())
    value, remaining_ms = pipe.execute()
    if value is None or remaining_ms < 0:
        return None
    cycle = json.loads(value)
    elapsed = taskhub_settings.LIFELINE_TIMEOUT - remaining_ms / 1000
    cycle["seconds_ago"] = round(max(0.0, elapsed), 1)
    return cycle


def live_workers(now: dt.datetime) -> list[WorkerProcess]:
    """Workers with a recent heartbeat in the database or, if the database missed their
    beats (a short outage), a live key in Redis."""
    horizon = now - dt.timedelta(seconds=taskhub_settings.LIFELINE_TIMEOUT)
    recent = now - dt.timedelta(days=1)
    candidates = list(WorkerProcess.objects.filter(last_heartbeat_at__gte=recent))
    fresh = {w.id for w in candidates if w.stopped_at is None and w.last_heartbeat_at >= horizon}
    alive = fresh | claims.live_in_redis([w.id for w in candidates if w.id not in fresh])
    return [w for w in candidates if w.id in alive]


def queue_windows(
    queues: list[str], workers: list[WorkerProcess], rates: dict[str, float] | None = None
) -> dict[str, int]:
    """How many messages each queue may have in flight, within its cap.

    A few per live worker thread keeps slow tasks flowing; on top of that, what the queue
    drains in DISPATCH_BUFFER_SECONDS (Little's law) keeps very short tasks from starving while
    their slots travel back through the database. Either way a newly ready high-priority task
    waits behind at most that much already-dispatched work.
    """
    rates = rates or {}
    windows = {}
    for queue in queues:
        threads = sum(w.threads for w in workers if not w.queues or queue in w.queues)
        window = max(
            taskhub_settings.DISPATCH_MIN_WINDOW, taskhub_settings.DISPATCH_PREFETCH * threads
        )
        window += math.ceil(rates.get(queue, 0.0) * taskhub_settings.DISPATCH_BUFFER_SECONDS)
        cap = taskhub_settings.queue_config(queue).get("concurrency")
        windows[queue] = min(window, cap) if cap else window
    return windows


class DispatchRates:
    """Messages dispatched per queue over the last second."""

    def __init__(self) -> None:
        self._events: deque[tuple[float, str, int]] = deque()

    def record(self, queue: str, count: int) -> None:
        if count:
            self._events.append((time.monotonic(), queue, count))

    def per_second(self) -> dict[str, float]:
        horizon = time.monotonic() - 1.0
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()
        rates: Counter[str] = Counter()
        for _, queue, count in self._events:
            rates[queue] += count
        return dict(rates)


def _lock_dispatch() -> None:
    # SQLite needs no lock: taskhub opens its transactions IMMEDIATE, so they are serial anyway.
    if connection.vendor == "postgresql":
        with server_cursor() as cursor:
            # enable_sort off: after a bulk load the planner's row estimates are stale and it
            # may pick the due index and sort every ready row; the ready index already yields
            # priority order.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s), set_config('enable_sort', 'off', true)",
                [DISPATCH_LOCK],
            )


def _cycle_state() -> tuple[set[str], Counter]:
    """Paused queues, and each queue's rows in flight (one statement on PostgreSQL: the ORM's
    query building cost more than the queries in a busy dispatcher)."""
    if connection.vendor != "postgresql":
        paused = pause.paused_queues()
        in_flight = Counter(
            dict(
                Task.objects.filter(status__in=IN_FLIGHT_STATUSES)
                .values("queue")
                .annotate(n=Count("id"))
                .values_list("queue", "n")
            )
        )
        return paused, in_flight
    statuses = ", ".join(f"'{s}'" for s in IN_FLIGHT_STATUSES)
    sql = (
        f"SELECT name, -1 FROM {QueueState._meta.db_table} WHERE paused UNION ALL "
        f"SELECT queue, count(*) FROM {Task._meta.db_table} WHERE status IN ({statuses}) "
        "GROUP BY queue"
    )
    with server_cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    return {q for q, n in rows if n < 0}, Counter({q: n for q, n in rows if n >= 0})


def global_room(in_flight: Counter) -> int | None:
    """How many more tasks may be in flight (queued or running) across every queue under
    MAX_CONCURRENT_TASKS; None when it is not set (each queue's own cap only)."""
    cap = taskhub_settings.MAX_CONCURRENT_TASKS
    if cap is None:
        return None
    return max(0, cap - sum(in_flight.values()))


def _rate_budget(queue: str, now_s: int) -> int | None:
    rate = taskhub_settings.queue_config(queue).get("rate")
    if not rate:
        return None
    used = int(get_redis().get(key("rate", queue, now_s)) or 0)
    return max(0, int(rate) - used)


def _spend_rate(queue: str, now_s: int, count: int) -> None:
    if count and taskhub_settings.queue_config(queue).get("rate"):
        pipe = get_redis().pipeline()
        pipe.incrby(key("rate", queue, now_s), count)
        pipe.expire(key("rate", queue, now_s), 5)
        pipe.execute()


def claim_ready_tasks(queue: str, limit: int, now: dt.datetime) -> list[Dispatched]:
    """Move up to ``limit`` ready rows of ``queue`` to queued (inside the caller's transaction):
    highest priority first, or the longest due first while ENABLE_PRIORITY is off."""
    by_priority = taskhub_settings.ENABLE_PRIORITY
    rows = transitions.mark_queued(queue, limit, now, by_priority=by_priority)
    # The order rows were picked in, on the wire too (highest priority, then the longest due),
    # so a worker's prefetch takes them in that order; RETURNING keeps none.
    rows.sort(key=(lambda row: (-row[9], row[11])) if by_priority else (lambda row: row[11]))
    claimed = []
    for tid, name, q, attempt, max_attempts, payload, corr, user, timeout, priority, wf, _ in rows:
        payload = json.loads(payload) if isinstance(payload, str) else payload
        message = envelope(tid, name, q, attempt, max_attempts, payload, corr, user, timeout, wf)
        claimed.append(Dispatched(message, priority))
    return claimed


def record_queued(claimed: list[Dispatched], now: dt.datetime) -> None:
    """The ``queued`` event of each claimed row, in one statement of the claiming transaction
    (published after it commits)."""
    publish_on_commit(
        insert_events(
            [
                NewEvent(d.envelope["id"], EventKind.QUEUED, d.envelope["attempt"], now)
                for d in claimed
            ]
        )
    )


class Dispatcher:
    """Runs dispatch cycles until stopped; also drives the lifeline on its interval."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._workers_cache: tuple[float, list[WorkerProcess]] = (0.0, [])
        self._last_pause_sync = 0.0
        self._last_lifeline = 0.0
        self._last_alive = 0.0
        self._rates = DispatchRates()
        # Queues named by wake-ups since the last cycle ("*": all), and queues that may still
        # hold ready work. Only these are claimed from, plus every queue once per poll
        # interval, so a cycle doesn't pay one query per idle queue.
        self._woken: set[str] = {"*"}
        self._active: set[str] = set()
        self._last_full_scan = 0.0
        # Under MAX_CONCURRENT_TASKS, the last queue a cycle sent from: the next cycle starts
        # after it, so the slots that free up go to each queue with work in turn rather than
        # always to the first in name order. None: name order.
        self._served_last: str | None = None

    def stop(self) -> None:
        self._stop.set()

    def _workers(self, now: dt.datetime) -> list[WorkerProcess]:
        fetched_at, workers = self._workers_cache
        if time.monotonic() - fetched_at > 1.0:
            workers = live_workers(now)
            self._workers_cache = (time.monotonic(), workers)
        return workers

    def dispatch_once(self) -> list[Dispatched]:
        """One cycle: claim within every queue's budget, commit, then send."""
        now = timezone.now()
        now_s = int(time.time())
        queues = self._in_turn(self._queues_to_check(declared_queues()))
        with transaction.atomic():
            _lock_dispatch()
            paused, in_flight = _cycle_state()
            windows = queue_windows(queues, self._workers(now), self._rates.per_second())
            room = global_room(in_flight)
            claimed: list[Dispatched] = []
            for queue in queues:
                budget = min(windows[queue] - in_flight[queue], taskhub_settings.DISPATCH_BATCH)
                rate = _rate_budget(queue, now_s)
                if rate is not None:
                    budget = min(budget, rate)
                if room is not None:
                    budget = min(budget, room)
                if queue in paused:
                    self._active.discard(queue)
                    continue
                if budget <= 0:
                    self._active.add(queue)  # full: look again when a slot frees
                    continue
                batch = claim_ready_tasks(queue, budget, now)
                if room is not None and batch:
                    room -= len(batch)
                    self._served_last = queue
                # A short batch drained the queue; a full one may have left more behind.
                (self._active.add if len(batch) == budget else self._active.discard)(queue)
                _spend_rate(queue, now_s, len(batch))
                self._rates.record(queue, len(batch))
                claimed.extend(batch)
            record_queued(claimed, now)
        if claimed:
            self._send(claimed)
        self._maybe_sync_pause_flags()
        return claimed

    def _queues_to_check(self, queues: list[str]) -> list[str]:
        woken, self._woken = self._woken, set()
        poll = taskhub_settings.DISPATCH_POLL_INTERVAL
        if "*" in woken or time.monotonic() - self._last_full_scan >= poll:
            self._last_full_scan = time.monotonic()
            return queues
        return [q for q in queues if q in woken or q in self._active]

    def _in_turn(self, queues: list[str]) -> list[str]:
        """``queues`` (in name order) starting after the last one served under
        MAX_CONCURRENT_TASKS, wrapping round."""
        if self._served_last is None:
            return queues
        at = bisect.bisect_right(queues, self._served_last)
        return queues[at:] + queues[:at]

    def _send(self, claimed: list[Dispatched]) -> None:
        """Send each queue's messages; return to pending only the rows whose send failed (the
        other queues' messages are out, and their rows must stay queued for them). A refusal
        then fails the cycle, so the dispatcher backs off rather than claim them again at once.
        """
        by_queue: dict[str, list[Dispatched]] = {}
        for d in claimed:
            by_queue.setdefault(d.envelope["queue"], []).append(d)
        refused: list[Dispatched] = []
        error: Exception | None = None
        for queue, batch in by_queue.items():
            try:
                send_messages([d.message for d in batch])
            except (redis.RedisError, OSError, dramatiq.errors.ConnectionError) as exc:
                logger.warning(
                    "broker refused %d messages of %s, returning them to pending: %s",
                    len(batch),
                    queue,
                    exc,
                )
                refused, error = refused + batch, exc
        if error is not None:
            unqueue(
                [(d.envelope["id"], d.envelope["attempt"]) for d in refused],
                reason="broker unavailable",
            )
            raise error

    def _maybe_sync_pause_flags(self) -> None:
        """Repair the Redis pause flags from the rows, at most once a second
        (taskhub.engine.pause)."""
        if time.monotonic() - self._last_pause_sync < 1.0:
            return
        pause.repair_flags()
        self._last_pause_sync = time.monotonic()

    def next_due_in(self) -> float:
        """Seconds until the earliest delayed row is due, capped by the poll interval."""
        poll = taskhub_settings.DISPATCH_POLL_INTERVAL
        now = timezone.now()
        if connection.vendor == "postgresql":
            # Asked after every cycle that found nothing: the ORM's query building cost more
            # than the query (it walks the due index).
            with server_cursor() as cursor:
                cursor.execute(_NEXT_DUE_SQL.format(table=Task._meta.db_table), [now])
                row = cursor.fetchone()
            first = row[0] if row else None
        else:
            first = (
                Task.objects.filter(status__in=READY_STATUSES, scheduled_at__gt=now)
                .order_by("scheduled_at")
                .values_list("scheduled_at", flat=True)
                .first()
            )
        if first is None:
            return poll
        return max(0.0, min(poll, (first - now).total_seconds()))

    def run_forever(self) -> None:
        lifeline = Lifeline()
        failures = 0
        # Look at Redis before sending anything: on a Redis with no data yet, the time it has
        # held its data from must come before every message sent to it (the lifeline retires
        # the attempts of rows queued before that time as possibly lost with the data).
        redis_memory.observe()
        logger.info("dispatcher started")
        while not self._stop.is_set():
            try:
                claimed = self.dispatch_once()
                if time.monotonic() - self._last_lifeline >= taskhub_settings.LIFELINE_INTERVAL:
                    lifeline.run_once()
                    self._last_lifeline = time.monotonic()
                failures = 0
                if time.monotonic() - self._last_alive >= 1.0:
                    mark_dispatcher_alive()  # what `taskhub health --dispatcher` reads
                    self._last_alive = time.monotonic()
                if not claimed:
                    self._wait(self.next_due_in())
            except (
                DatabaseError,
                InterfaceError,
                redis.RedisError,
                OSError,
                dramatiq.errors.ConnectionError,
            ) as exc:
                if isinstance(exc, (*redis_memory.UNREACHABLE, dramatiq.errors.ConnectionError)):
                    redis_memory.lost_sight()  # the lifeline did not watch Redis meanwhile
                failures += 1
                logger.warning("dispatch cycle failed (%d in a row): %s", failures, exc)
                connection.close()
                self._stop.wait(min(5.0, 0.1 * 2**failures))
        logger.info("dispatcher stopped")

    def _wait(self, timeout: float) -> None:
        if timeout <= 0:
            return
        client = get_redis()
        # BLPOP returns as soon as anything is committed; drain the rest so wake-ups coalesce.
        first = client.blpop([key("wake")], timeout=max(timeout, 0.01))
        if first is None:
            self._woken.add("*")  # a delayed task may have come due
            return
        pipe = client.pipeline(transaction=True)
        pipe.lrange(key("wake"), 0, -1)
        pipe.delete(key("wake"))
        rest, _ = pipe.execute()
        self._woken.update(v.decode() for v in [first[1], *rest])


def unqueue(attempts: list[tuple[str, int]], *, reason: str) -> int:
    """Return queued rows whose message never left to pending.

    The attempt keeps its number (the next dispatch is a new attempt) and is not charged: the
    limit moves up with it. Its claim is taken, so that if the broker did take the message
    after all (a lost reply), the copy is dropped rather than run beside the next attempt.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = transitions.unqueue(attempts, now, reason=reason)
    try:
        claims.retire_attempts([(str(t), a) for t, a in changed])
    except (redis.RedisError, OSError) as exc:  # the broker's Redis may be the one refusing
        logger.warning("could not retire %d un-queued attempts: %s", len(changed), exc)
    return len(changed)
