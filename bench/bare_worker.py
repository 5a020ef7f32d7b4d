"""Module the plain ``dramatiq`` CLI loads for the bare side: it sets the global broker, which is
what a Dramatiq worker module does (never imported by the harness itself)."""

import os

import dramatiq

from bench.bare import build

broker, actors = build(os.environ["REDIS_URL"], os.environ["BENCH_BARE_NAMESPACE"])
dramatiq.set_broker(broker)
