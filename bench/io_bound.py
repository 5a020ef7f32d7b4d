"""I/O-bound work: 2,000 tasks that each GET a local HTTP server answering after 100 ms.
taskhub runs ``bench.http`` — the built-in ``http.request`` handler (SSRF guard on, private
targets allowed by bench.settings) on the uncapped bench queue; bare Dramatiq runs an actor
that does the same GET with httpx the way a Dramatiq user writes it: one shared httpx.Client per
worker process. (``http.request`` builds a guarded client — a new SSL context — per call;
that CPU is part of what this measure shows.) Target taskhub ≥ 0.9 × bare."""

from __future__ import annotations

from .core import Context, Row, at_least, info, run_bare, run_taskhub
from .procs import start_http_server

NAME = "io"
COUNT = 2_000


def run(ctx: Context) -> list[Row]:
    count = ctx.n(COUNT)
    server, url = start_http_server(0.1)
    try:
        bare = run_bare(ctx, NAME, count, actor="http_get", args=(url,))
        tracked = run_taskhub(ctx, NAME, count, task="bench.http", payload={"url": url})
    finally:
        server.stop(timeout=5)
    ctx.series["io: bare"] = bare.series
    ctx.series["io: taskhub"] = tracked.series
    ctx.details[NAME] = {"bare": bare.summary(), "taskhub": tracked.summary()}
    ideal = ctx.processes * ctx.threads / 0.1
    note = f"{count} × GET 100 ms, {ctx.shape} (ideal {ideal:.0f}/s)"
    rows = [
        info(NAME, "bare Dramatiq", round(bare.rate, 1), "tasks/s", note=note),
        info(NAME, "taskhub", round(tracked.rate, 1), "tasks/s"),
        at_least(NAME, "taskhub / bare", round(tracked.rate / bare.rate, 3), 0.9),
    ]
    if tracked.completed != count:
        rows.append(
            Row(
                NAME,
                "taskhub completed",
                tracked.completed,
                "tasks",
                f"= {count}",
                False,
                note=str(tracked.statuses),
            )
        )
    return rows
