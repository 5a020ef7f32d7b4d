"""API: ``POST /api/tasks`` under uvicorn (ASGI — what we deploy: docs/deployment.md),
sequential (target p99 ≤ 25 ms) and with 16 concurrent clients (throughput reported).
Skipped with "not available yet" while the endpoint doesn't exist."""

from __future__ import annotations

import asyncio
import time

import httpx

from . import web
from .core import Context, Row, Skip, at_most, delete_tagged, info

NAME = "api"
SEQUENTIAL = 1_000
CONCURRENT = 2_000
CLIENTS = 16


def _body(tag: str) -> dict:
    return {"task": "bench.noop", "payload": {}, "correlation_id": tag}


def _sequential(site: web.Web, count: int, tag: str) -> list[float]:
    samples = []
    with site.client() as client:
        for i in range(count + 5):
            start = time.perf_counter()
            response = client.post("/api/tasks", json=_body(tag))
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code != 201:
                raise RuntimeError(f"POST /api/tasks answered {response.status_code}")
            if i >= 5:
                samples.append(elapsed)
    return samples


async def _concurrent(site: web.Web, count: int, tag: str) -> tuple[list[float], float]:
    samples: list[float] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    headers = {"Authorization": f"Token {site.token}"}
    async with httpx.AsyncClient(
        base_url=site.base, headers=headers, limits=limits, timeout=30
    ) as client:

        async def one_client(n: int) -> None:
            for _ in range(n):
                start = time.perf_counter()
                response = await client.post("/api/tasks", json=_body(tag))
                samples.append((time.perf_counter() - start) * 1000)
                if response.status_code != 201:
                    raise RuntimeError(f"POST /api/tasks answered {response.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(one_client(count // CLIENTS) for _ in range(CLIENTS)))
        return samples, time.perf_counter() - started


def run(ctx: Context) -> list[Row]:
    site = web.start()
    tag = ctx.tag("api")
    try:
        code = site.probe("/api/tasks")
        if not web.exists(code):
            raise Skip(f"not available yet (GET /api/tasks → {code})")
        if code in (401, 403):
            raise Skip(f"GET /api/tasks → {code} for a superuser token: roles not as expected")
        sequential = _sequential(site, ctx.n(SEQUENTIAL), tag)
        concurrent, elapsed = asyncio.run(_concurrent(site, ctx.n(CONCURRENT), tag))
    finally:
        site.stop()
        delete_tagged(tag)
    seq, conc = web.summary(sequential), web.summary(concurrent)
    ctx.details[NAME] = {"sequential": seq, "concurrent": conc, "concurrent_s": elapsed}
    return [
        info(NAME, "POST /api/tasks p50", round(seq["p50"], 1), "ms", note="sequential, uvicorn"),
        at_most(NAME, "POST /api/tasks p99", round(seq["p99"], 1), 25, "ms", note="sequential"),
        info(NAME, f"{CLIENTS} clients p50 / p99", f"{conc['p50']:.0f} / {conc['p99']:.0f}", "ms"),
        info(NAME, f"{CLIENTS} clients throughput", round(len(concurrent) / elapsed), "req/s"),
    ]
