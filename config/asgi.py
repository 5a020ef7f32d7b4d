"""ASGI entry point (uvicorn): the web process runs here so live event streams can be served."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["TASKHUB_WEB_PROCESS"] = "asgi"  # settings: no persistent database connections
application = get_asgi_application()

# One event loop serves every open event stream, so a garbage-collector pause stalls them all:
# with 1,000 streams open, full collections took 270-380 ms every few seconds (the bench's
# p99). Everything loaded so far lives as long as the process: freeze it out of the collector's
# work, and collect the young generation less often, so that the objects of in-flight requests
# die young instead of being promoted into (and triggering) full collections.
gc.freeze()
gc.set_threshold(50_000, 20, 10)
