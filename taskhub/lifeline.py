"""The lifeline: finds work a crash or a flushed broker lost, and puts it back (invariant I1).

Deterministic and periodic, unlike Redis's own requeue of dead workers' messages (dramatiq#527).
- An attempt whose worker stopped heart-beating is lost: the row goes back to pending (the lost
  attempt counts) or, if that was its last attempt, fails with a dead letter.
- A queued row nobody claimed within REDISPATCH_AFTER is sent again: its message was lost (a
  flushed Redis, a dead worker's prefetch). A duplicate is harmless — the attempt claim drops it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import claims
from .broker import dramatiq_namespace, get_redis
from .conf import taskhub_settings
from .dispatcher import Dispatched, live_workers, send_messages
from .events import publish_on_commit
from .models import DeadLetter, EventKind, Task, TaskEvent, TaskStatus, WorkerProcess
from .store import guarded_update
from .workflows.coordinator import settle
from .workflows.reconciler import reconcile

logger = logging.getLogger(__name__)
LIFELINE_LOCK = 0x6C696665  # "life"
SCAN_LIMIT = 5000

_ROW_FIELDS = (
    "id",
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
)


@dataclass
class LifelineReport:
    lost_attempts: int = 0
    failed: int = 0
    redispatched: int = 0
    dead_workers: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.lost_attempts or self.failed or self.redispatched or self.dead_workers)


def _try_lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LIFELINE_LOCK])
        return bool(cursor.fetchone()[0])


class Lifeline:
    def run_once(self) -> LifelineReport:
        report = LifelineReport()
        resend: list[Dispatched] = []
        dead_broker_ids: list[str] = []
        now = timezone.now()
        with transaction.atomic():
            if not _try_lock():
                return report
            live = {w.id for w in live_workers(now)}
            dead_broker_ids = self._retire_dead_workers(now, live, report)
            lost = self._lost_running(now, live)
            stale_lost, resend_rows = self._stale_queued(now, live)
            self._recover(lost + stale_lost, now, report)
            resend = self._redispatch(resend_rows, now, report)
            self._reassert_cancel_flags()
        if resend:
            send_messages([d.message for d in resend])
        self._clean_broker(dead_broker_ids)
        reconcile()
        if report:
            logger.info("lifeline: %s", report)
        return report

    def _retire_dead_workers(self, now, live, report) -> list[str]:
        horizon = now - dt.timedelta(seconds=taskhub_settings.LIFELINE_TIMEOUT)
        dead = [
            w
            for w in WorkerProcess.objects.filter(stopped_at__isnull=True,
                                                  last_heartbeat_at__lt=horizon)
            if w.id not in live
        ]  # fmt: skip
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

    def _stale_queued(self, now, live) -> tuple[list[dict], list[dict]]:
        horizon = now - dt.timedelta(seconds=taskhub_settings.REDISPATCH_AFTER)
        rows = list(
            Task.objects.filter(status=TaskStatus.QUEUED, queued_at__lt=horizon).values(
                *_ROW_FIELDS
            )[:SCAN_LIMIT]
        )
        holders = claims.claim_holders([(str(r["id"]), r["attempt"]) for r in rows])
        lost, resend = [], []
        for row, holder in zip(rows, holders, strict=True):
            if holder is None:
                resend.append(row)
            elif holder not in live:
                lost.append({**row, "worker_id": holder})
        return lost, resend

    def _recover(self, rows: list[dict], now, report) -> None:
        rows = self._cancel_lost(rows, now)
        retry = [r for r in rows if r["attempt"] < r["max_attempts"]]
        final = [r for r in rows if r["attempt"] >= r["max_attempts"]]
        error = "worker lost while running this attempt"
        changed = guarded_update(
            ("id", "attempt", "status", "error", "scheduled_at", "updated_at"),
            [(r["id"], r["attempt"], TaskStatus.PENDING, error, now, now) for r in retry],
            "status = v.status, error = v.error, scheduled_at = v.scheduled_at, "
            "updated_at = v.updated_at",
            [TaskStatus.QUEUED, TaskStatus.RUNNING],
        )
        failed = guarded_update(
            ("id", "attempt", "status", "error", "completed_at", "updated_at"),
            [(r["id"], r["attempt"], TaskStatus.FAILED, error, now, now) for r in final],
            "status = v.status, error = v.error, completed_at = v.completed_at, "
            "updated_at = v.updated_at",
            [TaskStatus.QUEUED, TaskStatus.RUNNING],
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
                        data={"reason": "worker lost", "worker": r["worker_id"]},
                    )
                )
            elif (r["id"], r["attempt"]) in failed:
                events += [
                    TaskEvent(task_id=r["id"], kind=kind, attempt=r["attempt"], at=now,
                              data={"error": error})
                    for kind in (EventKind.FAILED, EventKind.DEAD_LETTERED)
                ]  # fmt: skip
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
        settle(task_id for task_id, _ in failed)
        report.lost_attempts += len(changed)
        report.failed += len(failed)

    def _cancel_lost(self, rows: list[dict], now) -> list[dict]:
        """A lost attempt of a task an operator asked to stop ends it cancelled: run again, its
        next attempt would be above the cancel flag. Returns the other rows."""
        asked = [r for r in rows if r["cancel_requested"]]
        cancelled = guarded_update(
            ("id", "attempt", "status", "completed_at", "updated_at"),
            [(r["id"], r["attempt"], TaskStatus.CANCELLED, now, now) for r in asked],
            "status = v.status, completed_at = v.completed_at, updated_at = v.updated_at",
            [TaskStatus.QUEUED, TaskStatus.RUNNING],
        )
        publish_on_commit(TaskEvent.objects.bulk_create([
            TaskEvent(task_id=task_id, kind=EventKind.CANCELLED, attempt=attempt, at=now,
                      data={"reason": "worker lost after a cancel was requested"})
            for task_id, attempt in cancelled
        ]))  # fmt: skip
        settle(task_id for task_id, _ in cancelled)
        return [r for r in rows if not r["cancel_requested"]]

    def _redispatch(self, rows: list[dict], now, report) -> list[Dispatched]:
        changed = guarded_update(
            ("id", "attempt", "updated_at"),
            [(r["id"], r["attempt"], now) for r in rows],
            "queued_at = v.updated_at, updated_at = v.updated_at",
            [TaskStatus.QUEUED],
        )
        chosen = [r for r in rows if (r["id"], r["attempt"]) in changed]
        TaskEvent.objects.bulk_create([
            TaskEvent(task_id=r["id"], kind=EventKind.RECOVERED, attempt=r["attempt"], at=now,
                      data={"reason": "message missing"})
            for r in chosen
        ])  # fmt: skip
        report.redispatched += len(chosen)
        return [Dispatched(_envelope(r), r["priority"]) for r in chosen]

    def _reassert_cancel_flags(self) -> None:
        ids = Task.objects.filter(
            Q(status=TaskStatus.RUNNING) | Q(status=TaskStatus.QUEUED), cancel_requested=True
        ).values_list("id", "attempt")[:SCAN_LIMIT]
        claims.set_cancel_flags([(str(i), a) for i, a in ids])

    def _clean_broker(self, broker_ids: list[str]) -> None:
        """Drop dead Redis consumers' unacked-message sets; the lifeline re-sent their work."""
        if not broker_ids:
            return
        client = get_redis()
        for broker_id in broker_ids:
            pattern = f"{dramatiq_namespace()}:__acks__.{broker_id}.*"
            for name in client.scan_iter(match=pattern, count=500):
                client.delete(name)
            client.zrem(f"{dramatiq_namespace()}:__heartbeats__", broker_id)


def _envelope(row: dict) -> dict:
    return {
        "id": str(row["id"]), "name": row["name"], "queue": row["queue"],
        "attempt": row["attempt"], "max_attempts": row["max_attempts"], "payload": row["payload"],
        "correlation_id": row["correlation_id"], "user_id": row["user_id"],
        "timeout": row["timeout"],
    }  # fmt: skip
