"""Settings of every benchmark process: the project's settings (so the same DATABASE_URL,
REDIS_URL and TASKHUB_* environment apply), plus the bench's task types on a ``bench`` queue.

- The ``bench`` queue has no concurrency cap, so taskhub can use every worker thread, as bare
  Dramatiq does (the production ``default`` queue is capped at 10).
- The workers leave dispatching to the stack's dispatcher process (EMBEDDED_DISPATCHER off).
- ALLOW_PRIVATE_TARGETS is on: the I/O-bound measure calls a local HTTP server through the
  built-in ``http.request`` handler, SSRF guard included.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, TASKHUB
from taskhub.conf import DEFAULT_QUEUES

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]

TASKHUB = {
    **TASKHUB,
    # Every bench stack starts its own `taskhub dispatcher` process, the shape the committed
    # results measured; the workers dispatch too only with TASKHUB_EMBEDDED_DISPATCHER=1.
    "EMBEDDED_DISPATCHER": TASKHUB.get("EMBEDDED_DISPATCHER", False),
    "ALLOW_PRIVATE_TARGETS": True,
    "QUEUES": {**TASKHUB.get("QUEUES", DEFAULT_QUEUES), "bench": {"concurrency": None}},
}
