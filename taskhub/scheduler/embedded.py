"""Crons inside worker processes (``TASKHUB["EMBEDDED_SCHEDULER"]``, off by default): a host that
deploys only ``rundramatiq`` workers can fire its schedules without a ``runscheduler`` process.

Every worker process then runs a :class:`~taskhub.scheduler.runner.Scheduler` on a daemon thread.
No leader is needed: any number of schedulers may poll, and each slot fires once — the schedule
row's lock and the ScheduleRun unique on (schedule, slot) decide (docs/architecture.md, "One
firing per cron slot"). The cost is one poll query per process per ``SCHEDULER_POLL_INTERVAL``.

The engine starts no scheduler itself (it never imports this layer): it sends
``worker_started`` / ``worker_stopping`` (taskhub.engine.signals), and TaskhubConfig.ready()
connects the receivers below.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, InterfaceError, connection

from ..conf import taskhub_settings
from .runner import Scheduler

logger = logging.getLogger(__name__)

#: Seconds between attempts to start while the database cannot be reached at boot.
RETRY_START_AFTER = 5.0


class EmbeddedScheduler:
    """A worker process's scheduler, on a daemon thread."""

    def __init__(self) -> None:
        self.scheduler: Scheduler | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskhub-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        scheduler = self.scheduler
        if scheduler is not None:
            scheduler.stop()
        self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        # Scheduler.run_forever syncs the declared crons first: a database away at boot must not
        # leave this worker without its scheduler for the rest of its life.
        while not self._stop.is_set():
            self.scheduler = Scheduler()
            try:
                self.scheduler.run_forever()
                return
            except (DatabaseError, InterfaceError) as exc:
                logger.warning("embedded scheduler could not start: %s", exc)
                connection.close()
            except Exception:  # never take the worker down with it
                logger.exception("the embedded scheduler stopped")
                return
            self._stop.wait(RETRY_START_AFTER)


_embedded: EmbeddedScheduler | None = None
_lock = threading.Lock()


def start_embedded(sender: object = None, **kwargs: object) -> EmbeddedScheduler | None:
    """Receiver of ``worker_started``: start this process's scheduler if EMBEDDED_SCHEDULER is on
    (at most one per process)."""
    global _embedded
    if not (taskhub_settings.EMBEDDED_SCHEDULER and taskhub_settings.ENABLE_SCHEDULING):
        return None
    with _lock:
        if _embedded is None or not _embedded.alive():
            _embedded = EmbeddedScheduler()
            _embedded.start()
            logger.info("embedded scheduler started")
        return _embedded


def stop_embedded(sender: object = None, **kwargs: object) -> None:
    """Receiver of ``worker_stopping``."""
    global _embedded
    with _lock:
        embedded, _embedded = _embedded, None
    if embedded is not None:
        embedded.stop()
