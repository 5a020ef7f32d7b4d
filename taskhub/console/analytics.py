"""Read-only aggregates for operators: the queues overview behind the dashboard, health and
Prometheus, task metrics over a time range, and failures grouped by a normalised fingerprint.

Every query here is bounded by an index: active rows through the partial ready / in-flight
indexes, finished rows through (status, completed_at), ranges through created_at.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import time
from collections import defaultdict
from typing import Any

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from ..conf import taskhub_settings
from ..definitions.registry import declared_queues
from ..definitions.task_types import TaskType
from ..models import ACTIVE_STATUSES, DeadLetter, QueueState, Task, TaskStatus, WorkerProcess

READY = (TaskStatus.PENDING, TaskStatus.RETRYING)
THROUGHPUT_MINUTES = 60


# --- queues overview -----------------------------------------------------------------------------


def queue_overview(now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per declared queue: waiting, queued, running, delayed, completed and failed in the last
    hour, paused, failure rate, oldest waiting age (seconds) and per-minute throughput of the
    last hour (oldest minute first)."""
    now = now or timezone.now()
    queues = {q: _empty_row(q) for q in declared_queues()}
    for name in QueueState.objects.filter(paused=True).values_list("name", flat=True):
        queues.setdefault(name, _empty_row(name))["paused"] = True
    for row in _active_counts(now):
        entry = queues.setdefault(row["queue"], _empty_row(row["queue"]))
        for field in ("waiting", "delayed", "queued", "running"):
            entry[field] = row[field]
        if row["oldest"] is not None:
            entry["oldest_waiting_seconds"] = round(
                max(0.0, (now - row["oldest"]).total_seconds()), 1
            )
    start = _minute(now) - dt.timedelta(minutes=THROUGHPUT_MINUTES - 1)
    for row in _finished_per_minute(start):
        entry = queues.setdefault(row["queue"], _empty_row(row["queue"]))
        index = int((row["minute"] - start).total_seconds() // 60)
        if 0 <= index < THROUGHPUT_MINUTES:
            entry["throughput"][index] += row["n"]
        entry[f"{row['status']}_last_hour"] += row["n"]
    for entry in queues.values():
        done = entry["completed_last_hour"] + entry["failed_last_hour"]
        entry["failure_rate"] = round(entry["failed_last_hour"] / done, 4) if done else 0.0
    return [queues[name] for name in sorted(queues)]


def _empty_row(name: str) -> dict[str, Any]:
    return {
        "queue": name,
        "waiting": 0,
        "queued": 0,
        "running": 0,
        "delayed": 0,
        "completed_last_hour": 0,
        "failed_last_hour": 0,
        "paused": False,
        "failure_rate": 0.0,
        "oldest_waiting_seconds": None,
        "throughput": [0] * THROUGHPUT_MINUTES,
    }


def _minute(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def _active_counts(now: dt.datetime):
    due = Q(status__in=READY, scheduled_at__lte=now)
    return (
        Task.objects.filter(status__in=ACTIVE_STATUSES)
        .values("queue")
        .annotate(
            waiting=Count("id", filter=due),
            delayed=Count("id", filter=Q(status__in=READY, scheduled_at__gt=now)),
            queued=Count("id", filter=Q(status=TaskStatus.QUEUED)),
            running=Count("id", filter=Q(status=TaskStatus.RUNNING)),
            oldest=Min("scheduled_at", filter=due),
        )
        .order_by()
    )


def _finished_per_minute(start: dt.datetime):
    return (
        Task.objects.filter(
            status__in=(TaskStatus.COMPLETED, TaskStatus.FAILED), completed_at__gte=start
        )
        .annotate(minute=TruncMinute("completed_at"))
        .values("queue", "status", "minute")
        .annotate(n=Count("id"))
        .order_by()
    )


class Snapshot:
    """One shared, briefly cached result per process, so that many dashboards, health probes and
    scrapes cost one set of queries every few seconds instead of one each."""

    def __init__(self, compute, ttl: float):
        self._compute, self._ttl = compute, ttl
        self._lock = threading.Lock()
        self._value: Any = None
        self._at = 0.0

    def get(self) -> Any:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self._ttl:
                self._value, self._at = self._compute(), time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None


overview_snapshot = Snapshot(queue_overview, ttl=2.0)


def live_workers(now: dt.datetime | None = None) -> list[WorkerProcess]:
    """Worker processes whose heartbeat is recent enough that the lifeline trusts them."""
    now = now or timezone.now()
    since = now - dt.timedelta(seconds=taskhub_settings.LIFELINE_TIMEOUT)
    return list(WorkerProcess.objects.filter(stopped_at__isnull=True, last_heartbeat_at__gte=since))


def dead_letters_by_queue() -> dict[str, int]:
    rows = DeadLetter.objects.values("queue").annotate(n=Count("id")).order_by()
    return {r["queue"]: r["n"] for r in rows}


# --- metrics over a time range -------------------------------------------------------------------


def task_metrics(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Tasks created in [start, end): totals, average execution time (ms), retry and success
    rates (percent), and counts by type (the type each task declares: TaskType, every one
    listed) and by status."""
    # One scan grouped by (status, type) gives every figure: a million rows a day is read once,
    # not once per figure.
    groups = (
        Task.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("status", "task_type")
        .annotate(
            n=Count("id"),
            duration_sum=Sum("duration", filter=Q(status=TaskStatus.COMPLETED)),
            duration_n=Count("duration", filter=Q(status=TaskStatus.COMPLETED)),
            started=Count("id", filter=Q(attempt__gte=1)),
            retried=Count("id", filter=Q(attempt__gt=1)),
        )
        .order_by()
    )
    by_status: dict[str, int] = defaultdict(int)
    by_type: dict[str, int] = defaultdict(int)
    duration_sum, duration_n, started, retried = 0.0, 0, 0, 0
    for row in groups:
        by_status[row["status"]] += row["n"]
        by_type[row["task_type"]] += row["n"]
        duration_sum += row["duration_sum"] or 0.0
        duration_n += row["duration_n"]
        started += row["started"]
        retried += row["retried"]
    completed = by_status.get(TaskStatus.COMPLETED, 0)
    failed = by_status.get(TaskStatus.FAILED, 0)
    average = duration_sum / duration_n if duration_n else 0.0
    return {
        "from": start,
        "to": end,
        "totalTasks": sum(by_status.values()),
        "completedTasks": completed,
        "failedTasks": failed,
        "averageExecutionTime": round(average * 1000, 2),
        "retryRate": _percent(retried, started),
        "successRate": _percent(completed, completed + failed),
        # Every type, then any other value a row holds (a type this code no longer declares).
        "tasksByType": {
            **{t: by_type.get(t, 0) for t in TaskType.values},
            **dict(sorted(by_type.items())),
        },
        "tasksByStatus": {s: by_status.get(s, 0) for s in TaskStatus.values},
    }


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


# --- failures grouped by fingerprint -------------------------------------------------------------

#: The most failed tasks one analysis reads (newest first); beyond it the result says truncated.
FAILURE_SCAN_LIMIT = 50_000
#: The most user ids one failure group lists (the most recently affected first); its
#: affectedUsersCount counts them all.
AFFECTED_USERS_LIMIT = 100

_TYPE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exceeded|Timeout|Warning|Exit|Interrupt)?$")
_NOISE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I), "<url>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<s>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalise_error(error: str) -> tuple[str, str]:
    """(exception type, message with ids, numbers, addresses and quoted values replaced)."""
    first = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
    kind, sep, message = first.partition(": ")
    if not sep or not _TYPE.match(kind):
        kind = "Timeout" if first.startswith("timed out") else "Error"
        message = first
    for pattern, replacement in _NOISE:
        message = pattern.sub(replacement, message)
    return kind, message.strip()[:200]


def fingerprint(task_name: str, error: str) -> str:
    kind, message = normalise_error(error)
    return hashlib.sha1(f"{task_name}|{kind}|{message}".encode()).hexdigest()[:16]


_ADVICE = [
    (
        ("timeout", "timed out", "timelimit"),
        "Attempts time out: raise the task's timeout, make each attempt do less, "
        "or check the slow dependency.",
    ),
    (
        ("429", "rate limit", "too many requests", "throttl"),
        "A downstream service is rate limiting: lower the queue's rate or concurrency, "
        "then retry the dead letters.",
    ),
    (
        (
            "401",
            "403",
            "unauthori",
            "forbidden",
            "credential",
            "permission denied",
            "authentication",
        ),
        "Credentials were refused: fix the configured credentials or keys, then retry the "
        "dead letters.",
    ),
    (
        (
            "connect",
            "refused",
            "unreachable",
            "server answered 5",
            "httpservererror",
            "502",
            "503",
            "504",
            "temporar",
            "unavailable",
            "reset by peer",
        ),
        "A dependency is unavailable: check its status; these failures are transient, so retry "
        "the dead letters once it has recovered.",
    ),
    (
        (
            "validation",
            "invalid",
            "server answered 4",
            "valueerror",
            "invalidtaskrequest",
            "not json-serialisable",
            "over the limit",
        ),
        "The input or output is rejected: fix the caller, payload or handler's result; retrying "
        "the same payload will fail again.",
    ),
    (
        (
            "keyerror",
            "attributeerror",
            "typeerror",
            "nameerror",
            "importerror",
            "indexerror",
            "zerodivisionerror",
            "assertionerror",
            "notimplementederror",
            "recursionerror",
        ),
        "Looks like a bug in the handler: read the traceback, fix and deploy, then retry the "
        "dead letters.",
    ),
    (
        ("permanenterror",),
        "The handler declared this failure permanent: read its message and fix the cause before "
        "retrying.",
    ),
]
_DEFAULT_ADVICE = (
    "Read the traceback of the latest occurrence; retry the dead letters once the cause is fixed."
)


def suggested_action(kind: str, error: str) -> str:
    """A first thing to try, guessed from the exception type and the raw (unnormalised) error."""
    text = f"{kind} {error}".lower()
    for needles, advice in _ADVICE:
        if any(n in text for n in needles):
            return advice
    return _DEFAULT_ADVICE


def failure_groups(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Tasks that failed in [start, end), grouped by task and error fingerprint, most frequent
    first, each with its task's type, its last occurrence, the users it affected (ids, at most
    AFFECTED_USERS_LIMIT, and their count) and a suggested action."""
    rows = (
        Task.objects.filter(status=TaskStatus.FAILED, completed_at__gte=start, completed_at__lt=end)
        .order_by("-completed_at")
        .values_list("id", "name", "task_type", "error", "user_id", "completed_at")[
            : FAILURE_SCAN_LIMIT + 1
        ]
    )
    rows = list(rows)
    truncated = len(rows) > FAILURE_SCAN_LIMIT
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    # Insertion-ordered sets: rows come newest first, so the most recently affected lead.
    users: dict[tuple[str, str, str], dict[str, None]] = defaultdict(dict)
    for task_id, name, task_type, error, user_id, finished in rows[:FAILURE_SCAN_LIMIT]:
        kind, message = normalise_error(error)
        group_key = (name, kind, message)
        group = groups.get(group_key)
        if group is None:  # rows come newest first: the first one seen is the latest
            group = groups[group_key] = {
                "taskType": task_type,
                "taskName": name,
                "errorType": kind,
                "message": message,
                "fingerprint": fingerprint(name, error),
                "frequency": 0,
                "lastOccurrence": finished,
                "lastTaskId": str(task_id),
                "lastError": (error or "")[:500],
                "suggestedAction": suggested_action(kind, error or ""),
            }
        group["frequency"] += 1
        if user_id:
            users[group_key][user_id] = None
    for group_key, group in groups.items():
        affected = list(users[group_key])
        group["affectedUsers"] = affected[:AFFECTED_USERS_LIMIT]
        group["affectedUsersCount"] = len(affected)
    failures = sorted(groups.values(), key=lambda g: (-g["frequency"], g["taskName"]))
    return {
        "from": start,
        "to": end,
        "totalFailures": min(len(rows), FAILURE_SCAN_LIMIT),
        "truncated": truncated,
        "affectedUsersLimit": AFFECTED_USERS_LIMIT,
        "failures": failures,
    }
