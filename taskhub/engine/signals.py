"""Signals domain apps listen to, so the engine never imports them.

``tasks_finished`` is sent after the outcomes of a batch of attempts are committed, with
``outcomes``: a list of :class:`taskhub.engine.outcomes.Outcome` (status completed, retrying, failed
or cancelled). Receivers run on the worker's writer thread: keep them short.
"""

from django.dispatch import Signal

tasks_finished = Signal()
