"""``manage.py taskhub health``: a probe for process supervisors (systemd, Kubernetes, Docker).

Exit 0 when healthy, 1 when not, with one JSON line saying why. Every probe checks that the
database takes a write (taskhub.console.health.check_database: a row written and rolled back)
and Redis answers, except ``--worker`` alone, which needs only the database (a Redis
outage is then reported as "degraded", exit 0; see health()). ``--worker`` also needs a live
worker process on this host (its heartbeat within LIFELINE_TIMEOUT) and no live one there whose
outcome writer is stuck (something it recorded waited longer than LIFELINE_TIMEOUT to be
written); ``--dispatcher`` a dispatcher candidate on this host (a ``taskhub dispatcher`` process,
or a worker's embedded one) that finished a cycle as the leader, or looked at the lease as a
standby, within the same bound. The web process is probed over HTTP instead: ``GET /healthz``.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import sys

import redis
from django.utils import timezone

from ..conf import taskhub_settings
from ..console.health import check_database, check_redis
from ..engine.broker import get_redis
from ..engine.dispatcher import dispatcher_alive_key
from ..engine.leadership import standby_key
from ..engine.outcomes import stuck_writers
from ..models import WorkerProcess
from .subcommands import subcommand


def check_worker() -> dict:
    horizon = timezone.now() - dt.timedelta(seconds=taskhub_settings.LIFELINE_TIMEOUT)
    live = list(
        WorkerProcess.objects.filter(
            hostname=socket.gethostname(), stopped_at__isnull=True, last_heartbeat_at__gte=horizon
        ).values_list("id", flat=True)
    )
    check = {"name": "worker", "status": "ok" if live else "down", "live_processes": len(live)}
    # A process that beats but cannot record outcomes holds its tasks' slots for ever: not
    # healthy, so the supervisor restarts it (its attempts then go back through the lifeline).
    # Writers report through Redis; while Redis is away nothing says they are stuck, and the
    # worker is not failed for an outage it rides out (the Redis check shows it degraded).
    try:
        stuck = stuck_writers(live)
    except (redis.RedisError, OSError):
        return check
    if stuck:
        check.update(status="down", stuck_writers=stuck)
    return check


def check_dispatcher() -> dict:
    client = get_redis()
    alive = client.get(dispatcher_alive_key())
    if alive is not None:
        return {
            "name": "dispatcher",
            "status": "ok",
            "role": "leader",
            "last_cycle": alive.decode(),
        }
    # One candidate leads at a time (taskhub.engine.leadership); a standby that looked at the lease
    # within the bound is as healthy as the leader, and must not be restarted for waiting.
    standby = client.get(standby_key())
    if standby is not None:
        return {"name": "dispatcher", "status": "ok", "role": "standby", "leader": standby.decode()}
    return {"name": "dispatcher", "status": "down", "error": "no cycle within the bound"}


def _health_args(p) -> None:
    p.add_argument("--worker", action="store_true", help="a worker process on this host is live")
    p.add_argument("--dispatcher", action="store_true", help="a dispatcher on this host is live")


@subcommand("health", "probe for supervisors: exit 0 if healthy, 1 if not", _health_args)
def health(args) -> int:
    database, redis_check = check_database(), check_redis()
    checks = [database, redis_check]
    # A worker rides out a Redis outage (its running tasks go on, and so does its database
    # heartbeat): a probe that failed for it would have the supervisor restart the worker and
    # kill those tasks. Its probe needs the database only; the others need Redis too.
    needed = [database] if args.worker and not args.dispatcher else [database, redis_check]
    if all(_ok(c) for c in needed):
        processes = [
            check()
            for flag, check in ((args.worker, check_worker), (args.dispatcher, check_dispatcher))
            if flag
        ]
        checks += processes
        needed += processes
    healthy = all(_ok(c) for c in needed)
    status = "down" if not healthy else "ok" if all(_ok(c) for c in checks) else "degraded"
    sys.stdout.write(json.dumps({"status": status, "checks": checks}) + "\n")
    return 0 if healthy else 1


def _ok(check: dict) -> bool:
    return check["status"] == "ok"
