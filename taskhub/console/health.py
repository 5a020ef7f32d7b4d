"""Health of the parts the engine depends on: database, broker, live workers, the scheduler and
queue overload, rolled up to ok / degraded / down.

``down`` (HTTP 503) means work cannot run or be accepted (database or broker unreachable);
``degraded`` means it runs late or not at all without losing anything (no live worker, an
overloaded queue, a stalled scheduler). Other parts add checks with :func:`register_check`.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from ..conf import taskhub_settings
from ..engine.broker import get_redis
from ..engine.outcomes import stuck_writers
from ..models import TaskSchedule
from ..scheduler.runner import last_poll_age
from .analytics import live_workers, overview_snapshot

OK, DEGRADED, DOWN, SKIPPED = "ok", "degraded", "down", "skipped"
_SEVERITY = {OK: 0, SKIPPED: 0, DEGRADED: 1, DOWN: 2}

#: Extra checks (name → function returning a check dict), e.g. the cron scheduler's heartbeat.
CHECKS: dict[str, Callable[[], dict]] = {}


def register_check(name: str, check: Callable[[], dict]) -> None:
    """Add a check to every health report; it returns ``{"name", "status", ...}``."""
    CHECKS[name] = check


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"name": "database", "status": OK}
    except DatabaseError as exc:
        return {"name": "database", "status": DOWN, "error": str(exc)}


def check_redis() -> dict:
    try:
        get_redis().ping()
        return {"name": "redis", "status": OK}
    except (redis.RedisError, OSError) as exc:
        return {"name": "redis", "status": DOWN, "error": str(exc)}


def check_workers() -> dict:
    workers = live_workers()
    if not workers:
        return {
            "name": "workers",
            "status": DEGRADED,
            "live": 0,
            "message": "no worker has sent a heartbeat recently: nothing will run",
        }
    threads = sum(w.threads for w in workers)
    check = {"name": "workers", "status": OK, "live": len(workers), "threads": threads}
    return _with_writer_state(check, [w.id for w in workers])


def _with_writer_state(check: dict, worker_ids: list[str]) -> dict:
    """Degraded when a live worker's outcome writer is stuck: its tasks' outcomes are not being
    recorded, so their slots stay taken (taskhub.engine.outcomes). Counts only: this report is
    public (``taskhub health --worker`` on the host shows which worker and its error)."""
    try:
        stuck = stuck_writers(worker_ids)
    except (redis.RedisError, OSError):
        return check  # the redis check reports that
    if stuck:
        check["status"] = DEGRADED
        check["stuck_writers"] = len(stuck)
        check["message"] = "a live worker cannot record its tasks' outcomes"
    return check


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


def report() -> dict:
    """Every check and the overall status; queue figures are included for the API's summary."""
    checks = [check_database(), check_redis()]
    overview: list[dict] = []
    if checks[0]["status"] == OK:
        try:
            overview = overview_snapshot.get()
            checks += [check_workers(), check_queues(overview)]
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


def healthz(request):
    """Liveness for load balancers, which carry no credentials: anyone gets each check's status.

    The rest of a check — an exception's text names hosts, users and paths — only an
    authenticated caller (session or API token) gets."""
    result = report()
    checks = result["checks"]
    if not _is_authenticated(request):
        checks = [{"name": c["name"], "status": c["status"]} for c in checks]
    body = {"status": result["status"], "timestamp": result["timestamp"], "checks": checks}
    return JsonResponse(body, status=http_status(result["status"]))


def _is_authenticated(request) -> bool:
    """A session login, or a valid API token; a wrong token is anonymous here, not a 401."""
    if request.user.is_authenticated:
        return True
    try:
        return TokenAuthentication().authenticate(request) is not None
    except AuthenticationFailed:
        return False
