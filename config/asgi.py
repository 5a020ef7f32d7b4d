"""ASGI entry point (uvicorn): the web process runs here so live event streams can be served."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["TASKHUB_WEB_PROCESS"] = "asgi"  # settings: no persistent database connections
application = get_asgi_application()

# One event loop serves every open event stream and every request, so a garbage-collector pause
# stalls them all. Everything loaded so far lives as long as the process: freeze it out of the
# collector's work (with 1,000 streams open, full collections over it took 270-380 ms every few
# seconds). The young generation is collected every 10,000 net allocations: a request leaves
# ~330 objects in reference cycles (DRF fields bound to their serializer, Django's per-request
# connection wrapper, the ASGI handler's tasks), and at 50,000 each collection scanned ~40,000 of
# them in 25-60 ms, about once a second under sequential POSTs (the API's p99); at 10,000 a
# collection takes 5-10 ms, and fewer of the streams' objects are promoted than at the default
# 700, where full collections of 75-180 ms came back.
gc.freeze()
gc.set_threshold(10_000, 10, 10)
