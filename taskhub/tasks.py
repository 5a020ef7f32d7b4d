"""The Dramatiq actor every taskhub task runs through, and the built-in tasks.

rundramatiq discovers this module; importing it registers the actor and the built-ins.
"""

import dramatiq

from . import builtins  # noqa: F401  (registers taskhub.ping, http.request)
from .engine.broker import EXECUTE_ACTOR
from .engine.worker import run_current_attempt


@dramatiq.actor(actor_name=EXECUTE_ACTOR, queue_name="default")
def taskhub_execute(envelope: dict) -> None:
    """Runs the attempt TaskTrackingMiddleware claimed for this message."""
    run_current_attempt()
