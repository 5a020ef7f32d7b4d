"""Scale: with 1,000,000 task rows (bench.filler), p50 of the admin task list (unfiltered and
filtered), ``GET /api/tasks`` with filters, ``/api/metrics`` for the last 24 h and the queues
dashboard, each under uvicorn. Target p50 ≤ 300 ms each. Endpoints that don't exist yet are
reported as "not available yet" (and nothing is inserted if none exists)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from . import filler, web
from .core import Context, Row, Skip, at_most, info, is_postgres

NAME = "scale"
ROWS = 1_000_000
SAMPLES = 20
TARGET_MS = 300
# The dashboard shares one snapshot per process for a couple of seconds (taskhub.console.analytics);
# samples spaced past that measure its queries, not the cache.
DASHBOARD_GAP_S = 2.2


def _endpoints() -> list[tuple[str, str, bool]]:
    """(label, path, needs the admin session)."""
    now = dt.datetime.now(dt.UTC)
    day = {"from": (now - dt.timedelta(hours=24)).isoformat(), "to": now.isoformat()}
    return [
        ("admin task list", "/admin/taskhub/task/", True),
        ("admin list, status=failed", "/admin/taskhub/task/?status__exact=failed", True),
        (
            "admin list, queue+name",
            "/admin/taskhub/task/?queue__exact=email&name=emails.send",
            True,
        ),
        ("GET /api/tasks", "/api/tasks", False),
        ("GET /api/tasks?status&queue", "/api/tasks?status=failed&queue=email", False),
        ("GET /api/tasks?task", "/api/tasks?task=kyc.check", False),
        ("GET /api/metrics 24 h", "/api/metrics?" + urlencode(day), False),
    ]


def run(ctx: Context) -> list[Row]:
    if not is_postgres():
        raise Skip("needs PostgreSQL (COPY)")
    rows_wanted = ctx.n(ROWS)
    site = web.start()
    results: list[Row] = []
    try:
        targets = []
        for label, path, admin in _endpoints():
            code = site.probe(path, admin)
            if web.exists(code) and code < 400:
                targets.append((label, path, admin))
            else:
                results.append(info(NAME, label, None, note=f"not available yet ({code})"))
        dashboard = next(
            (p for p in web.DASHBOARD_CANDIDATES if site.probe(p, admin=True) == 200), None
        )
        if dashboard:
            targets.append(("dashboard", dashboard, True))
        else:
            results.append(info(NAME, "dashboard", None, note="not available yet"))
        if not targets:
            raise Skip("not available yet (no admin, API or dashboard endpoint answers)")
        filler.ensure(rows_wanted)
        ctx.cache["filler"] = rows_wanted
        details = {}
        for label, path, admin in targets:
            gap = DASHBOARD_GAP_S if label == "dashboard" else 0.0
            with site.client(admin) as client:
                samples = web.timed_gets(client, path, max(5, ctx.n(SAMPLES)), gap=gap)
            stats = web.summary(samples)
            details[label] = {"path": path, **stats}
            results.append(
                at_most(
                    NAME,
                    label,
                    round(stats["p50"], 1),
                    TARGET_MS,
                    "ms",
                    note=f"p99 {stats['p99']:.0f} ms, {rows_wanted:,} rows",
                )
            )
        ctx.details[NAME] = details
    finally:
        site.stop()
    return results
