"""Live events: 1,000 open SSE streams on one uvicorn process (memory per stream), and the
latency from a task's commit to a client receiving its event while all of them are open
(target p50 ≤ 50 ms). Probes are scheduled at a steady rate from this process; each one's
``task.created`` event is timed from the moment ``schedule()`` returned (autocommit: the row
is committed) to its arrival on a stream filtered by the probe tag."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
from asgiref.sync import sync_to_async

from .core import Context, Row, at_most, delete_tagged, info, percentile
from .procs import TaskhubStack, rss_kib
from .web import start

NAME = "events"
STREAMS = 1000
PROBES = 200
RATE = 20.0  # probes per second


def _schedule_probe(tag: str) -> tuple[str, float]:
    import taskhub

    task = taskhub.schedule("bench.noop", {}, correlation_id=tag)
    return str(task.id), time.perf_counter()


async def _measure(base: str, token: str, streams: int, probes: int, tag: str) -> dict:
    headers = {"Authorization": f"Token {token}"}
    limits = httpx.Limits(max_connections=streams + 20)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=120) as client:  # fmt: skip
        opened = []
        for _ in range(streams):
            resp = await client.send(client.build_request("GET", "/api/events/stream"), stream=True)
            if resp.status_code != 200:
                raise RuntimeError(f"stream {len(opened)} answered {resp.status_code}")
            opened.append(resp)
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
        for resp in [*opened, probe]:
            await resp.aclose()
        latencies = [(arrivals[t] - sent[t]) * 1000 for t in sent if t in arrivals]
        return {"latencies": latencies, "lost": len(sent) - len(latencies)}


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
        result = asyncio.run(_measure(web.base, web.token, streams, probes, tag))
        after = rss_kib(web.proc.pid)
    finally:
        stack.stop()
        web.stop()
        delete_tagged(tag)
    lat = result["latencies"]
    per_stream = (after - before) / max(streams, 1)
    ctx.details[NAME] = {"latencies_ms": lat, "rss_before_kib": before, "rss_after_kib": after}
    note = f"{len(lat)} probes at {RATE:g}/s with {streams} streams open"
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
        ),  # fmt: skip
    ]
