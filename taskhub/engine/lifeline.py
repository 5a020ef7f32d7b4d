"""The lifeline: finds work a crash or a flushed broker lost, and puts it back.

What keeps "No loss" in docs/architecture.md.

Deterministic and periodic, unlike Redis's own requeue of dead workers' messages (dramatiq#527).
- An attempt whose worker stopped heart-beating is lost: the row goes back to pending (the lost
  attempt counts) or, if that was its last attempt, fails with a dead letter.
- A queued row nobody claimed within REDISPATCH_AFTER lost its message (a flushed Redis, a
  dead worker's prefetch) — unless it still waits in its queue, unconsumed. It is sent again as
  the same attempt: a duplicate is harmless, the attempt's claim drops it. Unless it was queued
  before Redis last lost its data: then its claim may have gone with the data, and a worker
  killed after starting the attempt (before it recorded the start) may have run it. That
  attempt is retired (the lifeline takes its claim, so no copy of it can start) and counts as
  lost, like a dead worker's: the row goes back to pending, or fails if it was the last. A
  worker retires such an attempt itself when RabbitMQ, which kept the message, delivers it
  again (taskhub.engine.claims.retire_if_lost); the lifeline then counts it lost the same way.

The database heartbeat decides who is alive; Redis (a worker's liveness key, an attempt's
claim) is read only for what the database cannot tell, and only once Redis has kept its data
for one LIFELINE_TIMEOUT (taskhub.engine.redis_memory): a Redis outage or flush is no evidence.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..conf import taskhub_settings
from ..definitions.retry import has_attempts_left
from ..models import DeadLetter, EventKind, Task, TaskEvent, TaskStatus, WorkerProcess
from . import claims, hooks, redis_memory, transitions
from .broker import get_broker
from .events import publish_on_commit
from .messages import Dispatched, envelope, send_messages
from .redis_transport import TaskhubRedisBroker
from .store import guarded_update

logger = logging.getLogger(__name__)
#: Why an attempt counts as lost: the recovered event's reason, the error the row records.
_Cause = tuple[str, str]
_WORKER_LOST: _Cause = ("worker lost", "worker lost while running this attempt")
_LOST_WITH_DATA: _Cause = (
    "message lost with Redis's data",
    "message and claim lost with Redis's data; this attempt may have started",
)
LIFELINE_LOCK = 0x6C696665  # "life"
SCAN_LIMIT = 5000

_ROW_FIELDS = (
    "id",
    "queued_at",
    "name",
    "queue",
    "attempt",
    "max_attempts",
    "payload",
    "correlation_id",
    "user_id",
    "timeout",
    "priority",
    "worker_id",
    "cancel_requested",
    "workflow_run_id",
    "parent_id",
)


@dataclass
class LifelineReport:
    lost_attempts: int = 0
    failed: int = 0
    redispatched: int = 0
    dead_workers: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.lost_attempts or self.failed or self.redispatched or self.dead_workers)


def live_worker_ids(now: dt.datetime, memory: redis_memory.RedisMemory) -> set[str]:
    """Workers not presumed dead: a database heartbeat within LIFELINE_TIMEOUT, or else a live
    key in Redis (the database missed their beats) — or, while Redis cannot be judged from
    (taskhub.engine.redis_memory), every worker not stopped: a Redis outage is no evidence of death.
    """
    horizon = now - dt.timedelta(seconds=taskhub_settings.LIFELINE_TIMEOUT)
    recent = now - dt.timedelta(days=1)
    candidates = list(
        WorkerProcess.objects.filter(last_heartbeat_at__gte=recent).values_list(
            "id", "stopped_at", "last_heartbeat_at"
        )
    )
    fresh = {w for w, stopped, beat in candidates if stopped is None and beat >= horizon}
    stale = [w for w, _, _ in candidates if w not in fresh]
    keys = memory.read([claims.liveness_key(w) for w in stale]) if memory.trusted else None
    if keys is None:  # nothing to judge from (or Redis lost its data since it was observed)
        return {w for w, stopped, _ in candidates if stopped is None}
    return fresh | {w for w, v in zip(stale, keys, strict=True) if v}


def _try_lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LIFELINE_LOCK])
        return bool(cursor.fetchone()[0])


class Lifeline:
    def run_once(self) -> LifelineReport:
        try:
            return self._run_once()
        except redis_memory.UNREACHABLE:
            redis_memory.lost_sight()
            raise

    def _run_once(self) -> LifelineReport:
        report = LifelineReport()
        resend: list[Dispatched] = []
        dead_broker_ids: list[str] = []
        memory = redis_memory.observe()
        now = timezone.now()
        with transaction.atomic():
            if not _try_lock():
                return report
            live = live_worker_ids(now, memory)
            dead_broker_ids = self._retire_dead_workers(now, live, report)
            lost = self._lost_running(now, live)
            stale_lost, retired, resend_rows = self._stale_queued(now, live, memory)
            resend_rows, retired_now = self._retire_claims_lost_with_data(resend_rows, memory)
            self._recover(lost + stale_lost, now, report)
            self._recover(retired + retired_now, now, report, _LOST_WITH_DATA)
            resend = self._redispatch(resend_rows, now, report)
            if memory.reachable:
                self._reassert_cancel_flags()
        if resend:
            send_messages([d.message for d in resend])
        self._clean_broker(dead_broker_ids)
        hooks.reconcile()
        if report:
            logger.info("lifeline: %s", report)
        return report

    def _retire_dead_workers(self, now, live, report) -> list[str]:
        dead = list(WorkerProcess.objects.filter(stopped_at__isnull=True).exclude(id__in=live))
        WorkerProcess.objects.filter(id__in=[w.id for w in dead]).update(stopped_at=now)
        report.dead_workers = [w.id for w in dead]
        return [w.broker_id for w in dead if w.broker_id]

    def _lost_running(self, now, live) -> list[dict]:
        # A short grace covers a worker that wrote "running" before its first heartbeat landed.
        grace = now - dt.timedelta(seconds=2 * taskhub_settings.HEARTBEAT_INTERVAL)
        rows = (
            Task.objects.filter(status=TaskStatus.RUNNING, updated_at__lt=grace)
            .exclude(worker_id__in=live)
            .values(*_ROW_FIELDS)[:SCAN_LIMIT]
        )
        return list(rows)

    def _stale_queued(self, now, live, memory) -> tuple[list[dict], list[dict], list[dict]]:
        """Of the queued rows older than REDISPATCH_AFTER: those whose claim a dead worker
        holds, those a worker retired (taskhub.engine.claims.retire_if_lost), and those nobody
        claimed (their message is presumed lost). Claims are read only from a Redis that kept
        its data long enough for every live worker to have re-asserted its own."""
        if not memory.trusted:
            return [], [], []
        horizon = now - dt.timedelta(seconds=taskhub_settings.REDISPATCH_AFTER)
        rows = list(
            Task.objects.filter(status=TaskStatus.QUEUED, queued_at__lt=horizon).values(
                *_ROW_FIELDS
            )[:SCAN_LIMIT]
        )
        values = memory.read([claims.claim_key(r["id"], r["attempt"]) for r in rows])
        if values is None:
            return [], [], []
        holders = [v.decode() if v else None for v in values]
        lost, retired, unclaimed = [], [], []
        for row, holder in zip(rows, holders, strict=True):
            if holder is None:
                unclaimed.append(row)
            elif holder == claims.RETIRED:
                retired.append(row)
            elif holder not in live:
                lost.append({**row, "worker_id": holder})
        return lost, retired, _not_waiting_in_broker(unclaimed)

    def _retire_claims_lost_with_data(
        self, rows: list[dict], memory: redis_memory.RedisMemory
    ) -> tuple[list[dict], list[dict]]:
        """Of the unclaimed rows whose message is gone: those queued since Redis has held its
        current data (their claim would be there had any worker taken it), and those queued
        before, whose attempts are now retired. A claim taken meanwhile (a worker fetched the
        message just now) leaves its row alone."""
        if memory.kept_since is None:
            return rows, []
        # Database time against Redis time: hosts whose clocks disagree by more than the
        # REDISPATCH_AFTER a row waits first would misplace only rows queued around a data loss.
        kept_since = dt.datetime.fromtimestamp(memory.kept_since, tz=dt.UTC)
        younger = [r for r in rows if r["queued_at"] >= kept_since]
        older = [r for r in rows if r["queued_at"] < kept_since]
        taken = claims.retire_attempts([(r["id"], r["attempt"]) for r in older])
        return younger, [r for r, ok in zip(older, taken, strict=True) if ok]

    def _recover(self, rows: list[dict], now, report, cause: _Cause = _WORKER_LOST) -> None:
        rows = self._cancel_lost(rows, now)
        retry = [r for r in rows if has_attempts_left(r["attempt"], r["max_attempts"])]
        final = [r for r in rows if not has_attempts_left(r["attempt"], r["max_attempts"])]
        reason, error = cause
        changed, failed = transitions.recover_lost(
            [(r["id"], r["attempt"]) for r in retry],
            [(r["id"], r["attempt"]) for r in final],
            error,
            now,
        )
        events, dead = [], []
        for r in rows:
            if (r["id"], r["attempt"]) in changed:
                events.append(
                    TaskEvent(
                        task_id=r["id"],
                        kind=EventKind.RECOVERED,
                        attempt=r["attempt"],
                        at=now,
                        data={"reason": reason, "worker": r["worker_id"]},
                    )
                )
            elif (r["id"], r["attempt"]) in failed:
                events += [
                    TaskEvent(
                        task_id=r["id"],
                        kind=kind,
                        attempt=r["attempt"],
                        at=now,
                        data={"error": error},
                    )
                    for kind in (EventKind.FAILED, EventKind.DEAD_LETTERED)
                ]
                dead.append(
                    DeadLetter(
                        task_id=r["id"],
                        task_name=r["name"],
                        queue=r["queue"],
                        payload=r["payload"],
                        error=error,
                        attempts=r["attempt"],
                        created_at=now,
                    )
                )
        publish_on_commit(TaskEvent.objects.bulk_create(events))
        DeadLetter.objects.bulk_create(dead)
        hooks.steps_ended(task_id for task_id, _ in failed)
        report.lost_attempts += len(changed)
        report.failed += len(failed)

    def _cancel_lost(self, rows: list[dict], now) -> list[dict]:
        """A lost attempt of a task an operator asked to stop ends it cancelled: run again, its
        next attempt would be above the cancel flag. Returns the other rows."""
        asked = [r for r in rows if r["cancel_requested"]]
        cancelled = transitions.cancel_lost([(r["id"], r["attempt"]) for r in asked], now)
        hooks.steps_ended(task_id for task_id, _ in cancelled)
        return [r for r in rows if not r["cancel_requested"]]

    def _redispatch(self, rows: list[dict], now, report) -> list[Dispatched]:
        changed = guarded_update(
            ("id", "attempt", "updated_at"),
            [(r["id"], r["attempt"], now) for r in rows],
            "queued_at = v.updated_at, updated_at = v.updated_at",
            [TaskStatus.QUEUED],
        )
        chosen = [r for r in rows if (r["id"], r["attempt"]) in changed]
        TaskEvent.objects.bulk_create(
            [
                TaskEvent(
                    task_id=r["id"],
                    kind=EventKind.RECOVERED,
                    attempt=r["attempt"],
                    at=now,
                    data={"reason": "message missing"},
                )
                for r in chosen
            ]
        )
        report.redispatched += len(chosen)
        return [Dispatched(_envelope(r), r["priority"]) for r in chosen]

    def _reassert_cancel_flags(self) -> None:
        ids = Task.objects.filter(
            Q(status=TaskStatus.RUNNING) | Q(status=TaskStatus.QUEUED), cancel_requested=True
        ).values_list("id", "attempt")[:SCAN_LIMIT]
        claims.set_cancel_flags([(str(i), a) for i, a in ids])

    def _clean_broker(self, broker_ids: list[str]) -> None:
        """Drop dead Redis consumers' unacked messages (ack sets and bodies): the lifeline
        re-sent their work."""
        broker = get_broker()
        if not broker_ids or not isinstance(broker, TaskhubRedisBroker):
            return
        for broker_id in broker_ids:
            broker.drop_consumer(broker_id)


def _not_waiting_in_broker(rows: list[dict]) -> list[dict]:
    """The rows whose message is not waiting in its queue. One still waiting was not lost, only
    not consumed yet (a queue nobody serves, or one behind long tasks): another copy would only
    pile up beside it, every REDISPATCH_AFTER, for as long as nobody consumes the queue."""
    broker = get_broker()
    if not rows or not isinstance(broker, TaskhubRedisBroker):
        return rows
    waiting: set[tuple[str, int]] = set()
    for queue in {r["queue"] for r in rows}:
        waiting |= broker.waiting_attempts(queue)
    return [r for r in rows if (str(r["id"]), r["attempt"]) not in waiting]


def _envelope(row: dict) -> dict:
    return envelope(
        row["id"],
        row["name"],
        row["queue"],
        row["attempt"],
        row["max_attempts"],
        row["payload"],
        row["correlation_id"],
        row["user_id"],
        row["timeout"],
        coordinated=row["workflow_run_id"] is not None or row["parent_id"] is not None,
    )
