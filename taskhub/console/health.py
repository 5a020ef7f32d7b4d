"""Health of the parts the engine depends on, rolled up to ok / degraded / down: the database (a
write round trip), the coordination Redis, the broker in use (Redis or RabbitMQ), live workers
per queue, their outcome writers, the dispatcher's leader, the scheduler, queue overload and the
recent failure rate.

``down`` (HTTP 503) means work cannot be accepted (the database refuses writes, Redis or the
broker is unreachable); ``degraded`` means it runs late or not at all without losing anything
(no live worker for a queue, no dispatcher cycling, a stuck outcome writer, an overloaded or
failing queue, a stalled scheduler). So a load balancer keeps a web process that can still take
work, and monitoring sees the rest. Other parts add checks with :func:`register_check`.
"""

from __future__ import annotations

import copy
import datetime as dt
import sys
import time
import uuid
from collections.abc import Callable

import redis
from django.db import DatabaseError, transaction
from django.db.models import Count
from django.http import JsonResponse
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from ..conf import taskhub_settings
from ..definitions.registry import declared_queues
from ..engine.broker import get_broker, get_redis
from ..engine.dispatcher import last_dispatch_cycle
from ..engine.leadership import current_leader
from ..engine.outcomes import stuck_writers
from ..errors import import_extra
from ..models import LeaderLease, QueueState, Task, TaskSchedule, TaskStatus, WorkerProcess
from ..scheduler.runner import last_poll_age
from .analytics import Snapshot, live_workers, overview_snapshot

OK, DEGRADED, DOWN, SKIPPED = "ok", "degraded", "down", "skipped"
_SEVERITY = {OK: 0, SKIPPED: 0, DEGRADED: 1, DOWN: 2}

#: Extra checks (name → function returning a check dict), e.g. the cron scheduler's heartbeat.
CHECKS: dict[str, Callable[[], dict]] = {}


def register_check(name: str, check: Callable[[], dict]) -> None:
    """Add a check to every health report; it returns ``{"name", "status", ...}``."""
    CHECKS[name] = check


class _RollBack(Exception):
    """Raised inside the database probe's transaction, so that its write is never committed."""

    def __init__(self, found: bool) -> None:
        self.found = found


def check_database() -> dict:
    """A write round trip, not ``SELECT 1``: a database that answers reads but refuses writes (a
    read-only replica after a failover, a full disk, a lock held on every writer) cannot take
    work. One row is inserted and read back in a transaction that is then rolled back, so
    nothing is left behind on PostgreSQL or SQLite. The lease table is used because it is tiny
    and a row of another name is invisible to the dispatcher's lease (taskhub.engine.leadership)."""
    started = time.monotonic()
    probe = f"health:{uuid.uuid4().hex}"
    try:
        try:
            with transaction.atomic():
                now = timezone.now()
                LeaderLease.objects.create(
                    name=probe, holder="health-check", acquired_at=now, expires_at=now
                )
                raise _RollBack(LeaderLease.objects.filter(name=probe).exists())
        except _RollBack as rolled_back:
            found = rolled_back.found
    except DatabaseError as exc:
        return {"name": "database", "status": DOWN, "error": str(exc)}
    if not found:
        return {"name": "database", "status": DOWN, "error": "a row written was not read back"}
    elapsed = round((time.monotonic() - started) * 1000, 1)
    return {"name": "database", "status": OK, "write_round_trip_ms": elapsed}


def check_redis() -> dict:
    try:
        get_redis().ping()
        return {"name": "redis", "status": OK}
    except (redis.RedisError, OSError) as exc:
        return {"name": "redis", "status": DOWN, "error": str(exc)}


def check_broker() -> dict:
    """The broker that carries the messages, as Dramatiq holds it: its own Redis client (which
    may be another Redis than the coordination one, BROKER_URL), or a fresh connection to
    RabbitMQ (opened and closed; the dispatcher's connection is its own)."""
    broker = get_broker()
    if isinstance(broker, RedisBroker):
        try:
            broker.client.ping()
            return {"name": "broker", "status": OK, "kind": "redis"}
        except (redis.RedisError, OSError) as exc:
            return {"name": "broker", "status": DOWN, "kind": "redis", "error": str(exc)}
    rabbitmq = sys.modules.get("dramatiq.brokers.rabbitmq")  # loaded if the broker is one
    if rabbitmq is not None and isinstance(broker, rabbitmq.RabbitmqBroker):
        return _check_rabbitmq(broker)
    kind = type(broker).__name__
    return {"name": "broker", "status": SKIPPED, "kind": kind, "message": "nothing to reach"}


def _check_rabbitmq(broker) -> dict:
    # pika only where RabbitMQ carries the messages (and so is already loaded by the broker,
    # from the [rabbitmq] extra).
    pika = import_extra("pika", extra="rabbitmq", needed_by="the RabbitMQ health check")

    given = broker.parameters if isinstance(broker.parameters, list) else [broker.parameters]
    parameters = []
    for each in given:
        # A probe answers in seconds: one try per server, short timeouts.
        each = copy.copy(each)
        each.connection_attempts, each.retry_delay = 1, 0
        each.socket_timeout, each.stack_timeout = 3.0, 5.0
        parameters.append(each)
    try:
        pika.BlockingConnection(parameters).close()
        return {"name": "broker", "status": OK, "kind": "rabbitmq"}
    except Exception as exc:  # noqa: BLE001 — pika raises many types; any of them is "down"
        error = str(exc) or type(exc).__name__
        return {"name": "broker", "status": DOWN, "kind": "rabbitmq", "error": error}


def check_workers(
    workers: list[WorkerProcess] | None = None,
    stuck: list[dict] | None = None,
    paused: set[str] | None = None,
) -> dict:
    """Live worker processes (heartbeat within LIFELINE_TIMEOUT) and, per declared queue, the
    processes and threads that serve it: degraded when none is live, when a running queue has
    no live worker serving it (its tasks wait for ever), or when a live worker's outcome writer
    is stuck (see :func:`check_outcome_writers`, which reports it too)."""
    workers = live_workers() if workers is None else workers
    if paused is None:
        paused = set(QueueState.objects.filter(paused=True).values_list("name", flat=True))
    served = _served_queues(workers)
    if not workers:
        return {
            "name": "workers",
            "status": DEGRADED,
            "live": 0,
            "queues": served,
            "message": "no worker has sent a heartbeat recently: nothing will run",
        }
    threads = sum(w.threads for w in workers)
    check = {
        "name": "workers",
        "status": OK,
        "live": len(workers),
        "threads": threads,
        "queues": served,
    }
    unserved = [q for q, counts in served.items() if not counts["processes"] and q not in paused]
    if unserved:
        check["status"] = DEGRADED
        check["unserved_queues"] = unserved
        check["message"] = f"no live worker serves {', '.join(unserved)}: their tasks wait"
    return _with_writer_state(check, [w.id for w in workers], stuck)


def _served_queues(workers: list[WorkerProcess]) -> dict[str, dict[str, int]]:
    served = {q: {"processes": 0, "threads": 0} for q in declared_queues()}
    for worker in workers:
        # A worker that names no queues consumes every declared one (taskhub.engine.worker).
        for queue in worker.queues or list(served):
            counts = served.setdefault(queue, {"processes": 0, "threads": 0})
            counts["processes"] += 1
            counts["threads"] += worker.threads
    return dict(sorted(served.items()))


def _with_writer_state(check: dict, worker_ids: list[str], stuck: list[dict] | None) -> dict:
    """Degraded when a live worker's outcome writer is stuck: its tasks' outcomes are not being
    recorded, so their slots stay taken (taskhub.engine.outcomes). Counts only: this report is
    public (``taskhub health --worker`` on the host shows which worker and its error)."""
    if stuck is None:
        try:
            stuck = stuck_writers(worker_ids)
        except (redis.RedisError, OSError):
            return check  # the redis check reports that
    if stuck:
        check["status"] = DEGRADED
        check["stuck_writers"] = len(stuck)
        check["message"] = "a live worker cannot record its tasks' outcomes"
    return check


def check_outcome_writers(worker_ids: list[str], stuck: list[dict] | None) -> dict:
    """Live workers whose outcome writer holds something it could not write for longer than
    LIFELINE_TIMEOUT (each writer reports through Redis): degraded, with how many."""
    name = "outcome_writers"
    if stuck is None:
        return {"name": name, "status": DEGRADED, "message": "unreadable: Redis did not answer"}
    if not stuck:
        return {"name": name, "status": OK, "live_workers": len(worker_ids), "stuck": 0}
    return {
        "name": name,
        "status": DEGRADED,
        "live_workers": len(worker_ids),
        "stuck": len(stuck),
        "longest_unflushed_seconds": round(max(s.get("unflushed_for") or 0 for s in stuck), 1),
        "message": "a live worker cannot record its tasks' outcomes: their slots stay taken",
    }


def check_dispatcher() -> dict:
    """The dispatcher's leader (taskhub.engine.leadership) and its last cycle: ok when a process
    holds the lease and a cycle finished within LIFELINE_TIMEOUT. Degraded otherwise — nothing
    new is sent to the broker and lost work is not recovered until one leads again — whether
    nobody holds the lease (every candidate is dead, or a handover is under way: another takes
    it within 0.6 × LIFELINE_TIMEOUT) or the holder's loop has stopped cycling."""
    name, limit = "dispatcher", taskhub_settings.LIFELINE_TIMEOUT
    try:
        leader = current_leader()
    except DatabaseError as exc:
        return {"name": name, "status": DEGRADED, "error": f"lease unreadable: {exc}"}
    try:
        cycle = last_dispatch_cycle()
    except (redis.RedisError, OSError, ValueError) as exc:
        return {"name": name, "status": DEGRADED, "leader": leader, "error": f"{exc}"}
    ago = None if cycle is None else cycle["seconds_ago"]
    check = {"name": name, "leader": leader, "last_cycle_seconds_ago": ago}
    if leader is None:
        if cycle is None:
            message = f"no dispatcher has led for {limit:g}s: nothing is dispatched or recovered"
        else:
            message = "no process holds the dispatcher lease (a handover): nothing is dispatched"
        return {**check, "status": DEGRADED, "message": message}
    if cycle is None:
        message = f"the leader has finished no dispatch cycle for {limit:g}s"
        return {**check, "status": DEGRADED, "message": message}
    return {**check, "status": OK}


def scheduler_check() -> dict:
    """The ``scheduler`` health check: degraded when enabled schedules exist but no scheduler
    has polled within ``max(30, 10 × poll interval)`` seconds (their runs would be late)."""
    name = "scheduler"
    if not taskhub_settings.ENABLE_SCHEDULING:
        return {"name": name, "status": SKIPPED, "message": "scheduling is disabled"}
    limit = max(30.0, taskhub_settings.SCHEDULER_POLL_INTERVAL * 10)
    try:
        age = last_poll_age()
    except (redis.RedisError, OSError) as exc:
        return {"name": name, "status": DEGRADED, "error": f"heartbeat unreadable: {exc}"}
    if age is not None and age <= limit:
        return {"name": name, "status": OK, "last_poll_seconds_ago": round(age, 1)}
    if not TaskSchedule.objects.filter(enabled=True).exists():
        return {"name": name, "status": SKIPPED, "message": "no enabled schedules"}
    silence = f"no poll for {age:.0f}s" if age is not None else "no scheduler has polled recently"
    message = f"{silence}: scheduled runs will be late"
    return {
        "name": name,
        "status": DEGRADED,
        "message": message,
        "last_poll_seconds_ago": None if age is None else round(age, 1),
    }


def check_scheduler() -> dict:
    check = CHECKS.get("scheduler")
    if check is None:
        return {"name": "scheduler", "status": SKIPPED, "message": "no scheduler registered"}
    return check()


def check_queues(overview: list[dict]) -> dict:
    """Degraded when a running (not paused) queue has too many waiting tasks or too old a one."""
    max_waiting = taskhub_settings.HEALTH_MAX_WAITING
    max_age = taskhub_settings.HEALTH_MAX_WAITING_AGE
    overloaded = []
    for q in overview:
        if q["paused"]:
            continue
        age = q["oldest_waiting_seconds"] or 0
        if q["waiting"] > max_waiting or age > max_age:
            overloaded.append(
                {"queue": q["queue"], "waiting": q["waiting"], "oldest_waiting_seconds": age}
            )
    return {
        "name": "queues",
        "status": DEGRADED if overloaded else OK,
        "thresholds": {"waiting": max_waiting, "oldest_waiting_seconds": max_age},
        "overloaded": overloaded,
    }


def _recent_finished() -> dict[str, dict[str, int]]:
    """Per queue, the tasks completed and failed within HEALTH_FAILURE_WINDOW (one grouped
    count along the (status, completed_at) index)."""
    since = timezone.now() - dt.timedelta(seconds=taskhub_settings.HEALTH_FAILURE_WINDOW)
    finished: dict[str, dict[str, int]] = {}
    rows = (
        Task.objects.filter(
            status__in=(TaskStatus.COMPLETED, TaskStatus.FAILED), completed_at__gte=since
        )
        .values("queue", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        finished.setdefault(row["queue"], {"completed": 0, "failed": 0})[row["status"]] = row["n"]
    return finished


#: At thousands of tasks a second the window holds a million rows: count them once every few
#: seconds per process, however many probes ask.
recent_finished = Snapshot(_recent_finished, ttl=5.0)


def check_failures() -> dict:
    """Degraded when, over the last HEALTH_FAILURE_WINDOW seconds, a queue's tasks that finished
    failed (for good: retries are not failures) more often than HEALTH_MAX_FAILURE_RATE, once
    at least HEALTH_FAILURE_MIN_FINISHED finished."""
    window = taskhub_settings.HEALTH_FAILURE_WINDOW
    max_rate = taskhub_settings.HEALTH_MAX_FAILURE_RATE
    minimum = taskhub_settings.HEALTH_FAILURE_MIN_FINISHED
    finished = recent_finished.get()
    failing = []
    for queue, counts in sorted(finished.items()):
        total = counts["completed"] + counts["failed"]
        rate = counts["failed"] / total
        if total >= minimum and rate > max_rate:
            failing.append(
                {
                    "queue": queue,
                    "failed": counts["failed"],
                    "finished": total,
                    "failure_rate": round(rate, 4),
                }
            )
    check = {
        "name": "failures",
        "status": DEGRADED if failing else OK,
        "thresholds": {
            "failure_rate": max_rate,
            "window_seconds": window,
            "min_finished": minimum,
        },
        "failing": failing,
    }
    if failing:
        names = ", ".join(f["queue"] for f in failing)
        check["message"] = f"most recent tasks of {names} fail"
    return check


def report() -> dict:
    """Every check and the overall status; queue figures are included for the API's summary."""
    checks = [check_database(), check_redis(), check_broker()]
    overview: list[dict] = []
    if checks[0]["status"] == OK:
        try:
            overview = overview_snapshot.get()
            workers = live_workers()
            worker_ids = [w.id for w in workers]
            try:
                stuck = stuck_writers(worker_ids)
            except (redis.RedisError, OSError):
                stuck = None  # the redis check reports that
            paused = {q["queue"] for q in overview if q["paused"]}
            checks += [
                check_workers(workers, stuck if stuck is not None else [], paused),
                check_outcome_writers(worker_ids, stuck),
                check_dispatcher(),
                check_queues(overview),
                check_failures(),
            ]
        except DatabaseError as exc:
            checks.append({"name": "queues", "status": DOWN, "error": str(exc)})
    checks.append(check_scheduler())
    checks += [check() for name, check in sorted(CHECKS.items()) if name != "scheduler"]
    status = max((c["status"] for c in checks), key=_SEVERITY.__getitem__)
    if status == SKIPPED:
        status = OK
    return {"status": status, "timestamp": timezone.now(), "checks": checks, "queues": overview}


def http_status(status: str) -> int:
    return 503 if status == DOWN else 200


def public_report(request) -> tuple[dict, int]:
    """The body and HTTP status of ``/healthz`` and ``/api/health``, for a Django request.

    Load balancers and probes carry no credentials: anyone gets each check's status. The rest
    of a check — an exception's text names hosts, users and paths — only an authenticated
    caller (session or API token) gets."""
    result = report()
    checks = result["checks"]
    if not _is_authenticated(request):
        checks = [{"name": c["name"], "status": c["status"]} for c in checks]
    body = {"status": result["status"], "timestamp": result["timestamp"], "checks": checks}
    return body, http_status(result["status"])


def healthz(request):
    """``/healthz``: liveness for load balancers (see :func:`public_report`)."""
    body, status = public_report(request)
    return JsonResponse(body, status=status)


def _is_authenticated(request) -> bool:
    """A session login, or a valid API token; a wrong token is anonymous here, not a 401."""
    if request.user.is_authenticated:
        return True
    try:
        return TokenAuthentication().authenticate(request) is not None
    except AuthenticationFailed:
        return False
