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
# them in 25-60 ms, about once a second under sequential POSTs (the API's p99). Under the same
# requests a collection took 2-3 ms at 5,000 and 5-7 ms at 15,000. The default 700 is gentler
# still on requests but, with 1,000 streams open, brought back full collections of 75-180 ms.
gc.freeze()
gc.set_threshold(10_000, 10, 10)
