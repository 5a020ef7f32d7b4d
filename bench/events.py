"""Live events: 1,000 open SSE streams on one uvicorn process (memory per stream), and the
latency from a task's commit to a client receiving its event while all of them are open
(target p50 ≤ 50 ms). Probes are scheduled at a steady rate from this process; each one's
``task.created`` event is timed from the moment ``schedule()`` returned (autocommit: the row
is committed) to its arrival on a stream filtered by the probe tag.

The 1,000 streams are unfiltered operator streams, so every event of the run goes to each of
them, and a process of their own reads them (:mod:`bench.sse_drain`): streams nobody read
stalled within seconds once their socket buffers filled, and stopped loading the web process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from urllib.parse import urlsplit

import httpx
from asgiref.sync import sync_to_async

from .core import Context, Row, at_most, delete_tagged, info, percentile
from .procs import Proc, TaskhubStack, rss_kib, wait_for
from .web import start

NAME = "events"
STREAMS = 1000
PROBES = 200
RATE = 20.0  # probes per second


def _schedule_probe(tag: str) -> tuple[str, float]:
    import taskhub

    task = taskhub.schedule("bench.noop", {}, correlation_id=tag)
    return str(task.id), time.perf_counter()


async def _measure(base: str, token: str, probes: int, tag: str) -> dict:
    headers = {"Authorization": f"Token {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        await asyncio.sleep(2)  # let the publishers notice the listener
        arrivals: dict[str, float] = {}
        probe = await client.send(
            client.build_request("GET", "/api/events/stream", params={"correlation_id": tag}),
            stream=True,
        )

        async def read() -> None:
            async for line in probe.aiter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event["type"] == "task.created":
                        arrivals[event["task"]] = time.perf_counter()

        reader = asyncio.create_task(read())
        sent: dict[str, float] = {}
        for _ in range(probes):
            task_id, at = await sync_to_async(_schedule_probe)(tag)
            sent[task_id] = at
            await asyncio.sleep(1 / RATE)
        deadline = time.monotonic() + 30
        while len(arrivals) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        reader.cancel()
        await probe.aclose()
        latencies = [(arrivals[t] - sent[t]) * 1000 for t in sent if t in arrivals]
        return {"latencies": latencies, "lost": len(sent) - len(latencies)}


def _open_streams(web, count: int) -> Proc:
    """``count`` streams held open and read by a process of their own (bench.sse_drain)."""
    url = urlsplit(web.base)
    argv = [
        sys.executable,
        "-m",
        "bench.sse_drain",
        url.hostname,
        str(url.port),
        web.token,
        str(count),
    ]
    drain = Proc("sse-drain", argv)

    def ready() -> bool:
        if not drain.alive():
            raise RuntimeError(f"the stream reader exited:\n{drain.tail()}")
        return "ready" in drain.tail()

    wait_for(ready, 300, f"{count} event streams to open")
    return drain


def run(ctx: Context) -> list[Row]:
    streams, probes, tag = ctx.n(STREAMS), ctx.n(PROBES), f"bench-events-{ctx.run_id}"
    # The web process must admit all the streams, which one operator opens here.
    tuned = {
        **json.loads(os.environ.get("TASKHUB_SETTINGS_JSON", "{}")),
        "EVENTS_MAX_STREAMS_PER_USER": streams + 10,
        "EVENTS_MAX_STREAMS": streams + 10,
    }
    saved = os.environ.get("TASKHUB_SETTINGS_JSON")
    os.environ["TASKHUB_SETTINGS_JSON"] = json.dumps(tuned)
    try:
        web = start()
    finally:
        if saved is None:
            os.environ.pop("TASKHUB_SETTINGS_JSON")
        else:
            os.environ["TASKHUB_SETTINGS_JSON"] = saved
    stack = TaskhubStack(ctx.processes, ctx.threads).start()
    try:
        stack.wait_ready()
        before = rss_kib(web.proc.pid)
        drain = _open_streams(web, streams)
        try:
            result = asyncio.run(_measure(web.base, web.token, probes, tag))
            after = rss_kib(web.proc.pid)
        finally:
            drain.stop(timeout=10)
    finally:
        stack.stop()
        web.stop()
        delete_tagged(tag)
    lat = result["latencies"]
    per_stream = (after - before) / max(streams, 1)
    ctx.details[NAME] = {"latencies_ms": lat, "rss_before_kib": before, "rss_after_kib": after}
    note = f"{len(lat)} probes at {RATE:g}/s with {streams} streams open and read"
    return [
        at_most(NAME, "commit → client p50", round(percentile(lat, 50), 1), 50, "ms", note=note),
        info(NAME, "commit → client p99", round(percentile(lat, 99), 1), "ms"),
        info(NAME, "events lost", result["lost"], "events"),
        info(
            NAME,
            "RSS per open stream",
            round(per_stream, 1),
            "KiB",
            note=f"web process {before // 1024} → {after // 1024} MiB",
        ),
    ]
