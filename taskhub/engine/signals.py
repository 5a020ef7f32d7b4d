"""Signals domain apps listen to, so the engine never imports them.

``tasks_finished`` is sent after the outcomes of a batch of attempts are committed, with
``outcomes``: a list of :class:`taskhub.engine.outcomes.Outcome` (status completed, retrying, failed
or cancelled). Receivers run on the worker's writer thread: keep them short.

``worker_started`` is sent once a worker process is ready to consume (its writer, heartbeat and
dispatcher candidate running), with ``worker_id``; ``worker_stopping`` when it begins to shut
down, with ``worker_id``. taskhub.scheduler.embedded starts and stops crons on them.
"""

from django.dispatch import Signal

tasks_finished = Signal()
worker_started = Signal()
worker_stopping = Signal()
