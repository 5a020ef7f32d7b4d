"""Leadership: one dispatcher (with its lifeline) at a time, whichever process runs it.

Worker processes run a dispatcher candidate on a daemon thread when ``EMBEDDED_DISPATCHER`` is on
(the default), and ``taskhub dispatcher`` runs one in the foreground. Every candidate contends
for the same lease, a :class:`~taskhub.models.LeaderLease` row; only its holder runs dispatch
cycles and the lifeline. So a host that deploys only ``rundramatiq`` workers runs its tasks, and a
separate dispatcher process may still run beside them.

- **The lease** lasts ``LIFELINE_TIMEOUT / 2`` from its last renewal, judged by the database's
  clock (hosts' clocks may differ). The leader renews it every ``LIFELINE_TIMEOUT / 10``, from its
  dispatch loop itself, so a leader whose loop hangs stops renewing too; a standby looks as often
  (a read, and a write only when the lease is free or expired). A leader that dies — kill -9,
  OOM, a lost host, a cut link, a SIGSTOP — is replaced within ``0.6 × LIFELINE_TIMEOUT``; one
  that stops cleanly gives the lease up, and a standby takes it at its next look.
- **Losing it stops the leader at once**: before every cycle the leader checks its lease (renewing
  it when due) and starts no cycle, and no lifeline run, on a lease that its own monotonic clock
  says may have run out or that the database says someone else holds. Its local deadline is
  counted from before the renewal was sent, so it ends no later than the database's.
- **An overlap is harmless, only wasteful.** Correctness never rests on the lease: dispatch
  cycles serialise on their own lock (taskhub.engine.dispatcher ``_lock_dispatch``; IMMEDIATE
  transactions on SQLite) and the lifeline on its own (taskhub.engine.lifeline ``_try_lock``),
  as they did when several dispatcher processes ran side by side. A leader resumed after a
  SIGSTOP may finish the one cycle it was stopped in; its next check sees the lease gone.
- **Why a row, not a PostgreSQL advisory lock held by a dedicated connection**: a lock held by a
  SIGSTOPped (or hung) process stays held for as long as the process is stopped — its kernel
  still answers TCP keepalives — and one held from a lost host until the server notices the dead
  connection (hours, with default keepalives); session locks do not work through PgBouncer in
  transaction mode (docs/deployment.md); and SQLite has no such lock. A lease row runs out in
  every one of those cases, on both databases.
- **A leader SIGSTOPped inside a cycle** holds that cycle's transaction open, and with it the
  dispatch lock on PostgreSQL (every writer, on SQLite): the next leader's cycles wait for the
  lock until the stopped process is continued or killed. A stopped worker also stops
  heart-beating, so its probe (``taskhub health --worker``) fails and the systemd probe timer
  restarts it (systemd sends SIGCONT with its SIGTERM).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

import redis
from django.db import DatabaseError, InterfaceError, connection, transaction

from ..conf import taskhub_settings
from ..models import LeaderLease
from .broker import get_redis, key
from .dispatcher import Dispatcher

logger = logging.getLogger(__name__)

#: The lease every dispatcher candidate contends for.
DISPATCHER_LEASE = "dispatcher"


def lease_seconds() -> float:
    """How long a lease lasts without a renewal."""
    return taskhub_settings.LIFELINE_TIMEOUT / 2


def step_seconds() -> float:
    """How often the leader renews its lease and a standby looks at it."""
    return taskhub_settings.LIFELINE_TIMEOUT / 10


def _clock(seconds: float = 0.0) -> tuple[str, str, object]:
    """SQL for the database's "now" and for "now + %s", and the parameter giving ``seconds``.

    SQLite keeps datetimes as text (UTC, as Django writes them), which compares in time order.
    """
    if connection.vendor == "postgresql":
        now = "statement_timestamp()"
        return now, f"{now} + make_interval(secs => %s)", float(seconds)
    fmt = "'%%Y-%%m-%%d %%H:%%M:%%f'"
    return f"strftime({fmt}, 'now')", f"strftime({fmt}, 'now', %s)", f"+{seconds:f} seconds"


class Lease:
    """One process's hold on a named lease row."""

    def __init__(self, name: str, holder: str) -> None:
        self.name, self.holder = name, holder
        #: The holder the last look saw (None: nobody held a live lease).
        self.leader: str | None = None
        self._valid_until = 0.0  # monotonic
        self._renewed_at = float("-inf")

    def held(self) -> bool:
        """Whether this process may still act as the holder, by its own clock."""
        return time.monotonic() < self._valid_until

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours (then renew it); True if this
        process holds it now. Raises the database's errors."""
        started = time.monotonic()
        seconds = lease_seconds()
        now, later, arg = _clock(seconds)
        table = LeaderLease._meta.db_table
        with connection.cursor() as cursor:
            # A look first: a standby facing a live leader writes nothing.
            cursor.execute(
                f"SELECT holder FROM {table} WHERE name = %s AND expires_at > {now}", [self.name]
            )
            row = cursor.fetchone()
        if row is not None and row[0] != self.holder:
            self.leader, self._valid_until = row[0], 0.0
            return False
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (name, holder, acquired_at, expires_at) "
                f"VALUES (%s, %s, {now}, {later}) "
                "ON CONFLICT (name) DO UPDATE SET "
                f"acquired_at = CASE WHEN {table}.holder = excluded.holder "
                f"THEN {table}.acquired_at ELSE excluded.acquired_at END, "
                "holder = excluded.holder, expires_at = excluded.expires_at "
                f"WHERE {table}.holder = excluded.holder "
                f"OR {table}.expires_at <= excluded.acquired_at",
                [self.name, self.holder, arg],
            )
            cursor.execute(f"SELECT holder FROM {table} WHERE name = %s", [self.name])
            row = cursor.fetchone()
        self.leader = row[0] if row else None
        mine = self.leader == self.holder
        self._valid_until = started + seconds if mine else 0.0
        self._renewed_at = started
        return mine

    def keep(self) -> bool:
        """Before each cycle: renew when due. False once the lease is not ours any more (the
        database says another holds it, or it could not be renewed in time)."""
        if self.held() and time.monotonic() - self._renewed_at < step_seconds():
            return True
        try:
            return self.acquire()
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("could not renew the %s lease: %s", self.name, exc)
            connection.close()
            return self.held()

    def release(self) -> None:
        """Give the lease up (if it is ours): a standby takes it at its next look."""
        self._valid_until = 0.0
        now, _, _ = _clock()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {LeaderLease._meta.db_table} SET expires_at = {now} "
                    "WHERE name = %s AND holder = %s",
                    [self.name, self.holder],
                )
        except (DatabaseError, InterfaceError) as exc:  # it runs out on its own
            logger.warning("could not give up the %s lease: %s", self.name, exc)
            connection.close()


def current_leader(name: str = DISPATCHER_LEASE) -> str | None:
    """The holder of a live lease, by the database's clock; None when nobody leads."""
    now, _, _ = _clock()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT holder FROM {LeaderLease._meta.db_table} "
            f"WHERE name = %s AND expires_at > {now}",
            [name],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def standby_key(hostname: str | None = None) -> str:
    """Set by a standby after each look at the lease; read by ``taskhub health --dispatcher``."""
    return key("dispatcher", "standby", hostname or socket.gethostname())


def _mark_standby(leader: str | None) -> None:
    ttl = max(1, int(taskhub_settings.LIFELINE_TIMEOUT))
    try:
        get_redis().set(standby_key(), leader or "", ex=ttl)
    except (redis.RedisError, OSError) as exc:  # only the probe reads it
        logger.debug("could not mark the dispatcher standby: %s", exc)


class LeadershipLost(Exception):
    """Raised out of a leader's dispatch loop once its lease is gone."""


class LeaderDispatcher(Dispatcher):
    """A :class:`Dispatcher` that starts a cycle only while its lease holds. The cycle itself is
    the Dispatcher's; the lifeline runs after a cycle, in the same loop, so it stops too."""

    def __init__(self, lease: Lease) -> None:
        super().__init__()
        self.lease = lease

    def dispatch_once(self):
        if not self.lease.keep():
            raise LeadershipLost(f"{self.lease.holder} no longer holds the {self.lease.name} lease")
        return super().dispatch_once()


class DispatcherCandidate:
    """Contends for the dispatcher lease and, while it holds it, runs a dispatcher and its
    lifeline; a standby otherwise. ``run_forever`` / ``stop`` like :class:`Dispatcher`."""

    def __init__(self, holder: str) -> None:
        self.lease = Lease(DISPATCHER_LEASE, holder)
        self._stop = threading.Event()
        self._dispatcher: LeaderDispatcher | None = None

    def stop(self) -> None:
        self._stop.set()
        dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.stop()

    def run_forever(self) -> None:
        logger.info("dispatcher candidate %s started", self.lease.holder)
        try:
            while not self._stop.is_set():
                if self._contend():
                    self._lead()
                else:
                    self._stop.wait(step_seconds())
        finally:
            self.lease.release()
            connection.close()
        logger.info("dispatcher candidate %s stopped", self.lease.holder)

    def _contend(self) -> bool:
        try:
            won = self.lease.acquire()
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("could not read the dispatcher lease: %s", exc)
            connection.close()
            return False
        if not won:
            _mark_standby(self.lease.leader)
        return won

    def _lead(self) -> None:
        dispatcher = LeaderDispatcher(self.lease)
        self._dispatcher = dispatcher
        if self._stop.is_set():  # a stop() that came before the dispatcher was there to stop
            return
        logger.info("%s leads the dispatcher", self.lease.holder)
        try:
            dispatcher.run_forever()
        except LeadershipLost as lost:
            logger.warning("%s; standing by", lost)
        except Exception:
            # Whatever broke this term, the lease must not stay with a loop that is gone.
            logger.exception("the dispatcher of %s failed; giving up the lease", self.lease.holder)
            self.lease.release()
            self._stop.wait(step_seconds())
        finally:
            self._dispatcher = None


def standalone_holder() -> str:
    """The lease holder name of a ``taskhub dispatcher`` process."""
    return f"dispatcher:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class EmbeddedDispatcher:
    """A worker process's dispatcher candidate, on a daemon thread."""

    def __init__(self, holder: str) -> None:
        self.candidate = DispatcherCandidate(holder)
        self._thread = threading.Thread(target=self._run, name="taskhub-dispatcher", daemon=True)

    def _run(self) -> None:
        try:
            self.candidate.run_forever()
        except Exception:  # never take the worker down with it; the lease runs out
            logger.exception("the embedded dispatcher stopped")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop dispatching and give the lease up (the leader's loop ends within a poll)."""
        self.candidate.stop()
        self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()


_embedded: EmbeddedDispatcher | None = None
_embedded_lock = threading.Lock()


def start_embedded(holder: str) -> EmbeddedDispatcher | None:
    """Start this worker process's dispatcher candidate, if EMBEDDED_DISPATCHER is on; at most
    one per process, whatever calls this."""
    global _embedded
    if not taskhub_settings.EMBEDDED_DISPATCHER:
        return None
    with _embedded_lock:
        if _embedded is None or not _embedded.alive():
            _embedded = EmbeddedDispatcher(holder)
            _embedded.start()
        return _embedded


def stop_embedded(timeout: float = 10.0) -> None:
    """Stop this process's dispatcher candidate, if one runs."""
    global _embedded
    with _embedded_lock:
        running, _embedded = _embedded, None
    if running is not None:
        running.stop(timeout)
