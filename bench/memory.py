"""Memory: resident memory of the worker processes (sum of VmRSS of the Dramatiq worker
processes, from /proc) after a warm-up of 10,000 tasks vs after 100,000. Target growth ≤ 10 %."""

from __future__ import annotations

from .core import Context, Live, Row, at_most, info, run_taskhub

NAME = "memory"
COUNT = 100_000
WARMUP = 10_000


def run(ctx: Context) -> list[Row]:
    count, warmup = ctx.n(COUNT), ctx.n(WARMUP)
    samples: dict[str, int] = {}

    def sample(live: Live) -> None:
        if "warm" not in samples and live.done >= warmup:
            samples["warm"] = live.stack.worker_rss_kib()
            samples["warm_done"] = live.done
        if live.done >= live.count:
            samples["end"] = live.stack.worker_rss_kib()

    result = run_taskhub(ctx, NAME, count, on_poll=sample)
    ctx.details[NAME] = {**samples, "run": result.summary()}
    warm, end = samples["warm"], samples["end"]
    growth = (end - warm) / warm * 100
    note = f"{warm // 1024} → {end // 1024} MiB over {count} tasks ({ctx.shape})"
    return [
        info(NAME, "worker RSS after warm-up", round(warm / 1024, 1), "MiB"),
        at_most(NAME, "RSS growth", round(growth, 1), 10, "%", note=note),
    ]
