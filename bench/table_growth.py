"""Table growth: the throughput run (20,000 no-op tasks) with 1,000,000 finished rows in the
task table (bench.filler: COPY, one event each) vs with none. Target ≥ 0.9 ×.

Each side runs twice and its better run counts: one 5-second run of either side varied by
±15 % on the 2-core machine (0.80–1.22 × in single runs with the same code), more than the
difference being measured. Both runs of each side are in the details."""

from __future__ import annotations

from . import filler
from .core import Context, Row, Skip, at_least, info, is_postgres, run_taskhub

NAME = "table_growth"
COUNT = 20_000
ROWS = 1_000_000
REPEATS = 2


def _best(ctx: Context, label: str, count: int):
    runs = [run_taskhub(ctx, label, count) for _ in range(REPEATS)]
    return max(runs, key=lambda r: r.rate), [round(r.rate) for r in runs]


def run(ctx: Context) -> list[Row]:
    if not is_postgres():
        raise Skip("needs PostgreSQL (COPY)")
    count, rows = ctx.n(COUNT), ctx.n(ROWS)
    if filler.filler_count():
        filler.drop()  # the "empty" side must really be empty of finished rows
    empty, empty_rates = _best(ctx, "growth-empty", count)
    inserted = filler.ensure(rows)
    full, full_rates = _best(ctx, "growth-full", count)
    ctx.cache["filler"] = rows
    ctx.series["table growth: empty"] = empty.series
    ctx.series["table growth: 1M rows" if not ctx.quick else "table growth: filled"] = full.series
    ctx.details[NAME] = {
        "empty": empty.summary(),
        "full": full.summary(),
        "inserted": inserted,
        "empty_rates": empty_rates,
        "full_rates": full_rates,
    }
    return [
        info(
            NAME,
            "empty table",
            round(empty.rate),
            "tasks/s",
            note=f"{count} no-op, best of {empty_rates}",
        ),
        info(
            NAME, f"with {rows:,} rows", round(full.rate), "tasks/s", note=f"best of {full_rates}"
        ),
        at_least(NAME, "full / empty", round(full.rate / empty.rate, 3), 0.9),
    ]
