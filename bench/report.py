"""The run's outputs: one table on stdout, ``bench/results/<date>.json`` and a PNG chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .core import Context, Row

RESULTS = Path(__file__).resolve().parent / "results"


def _value(row: Row) -> str:
    if row.value is None:
        return "—"
    if isinstance(row.value, float):
        text = (
            f"{row.value:,.3f}".rstrip("0").rstrip(".")
            if abs(row.value) < 10
            else f"{row.value:,.1f}"
        )
    elif isinstance(row.value, int):
        text = f"{row.value:,}"
    else:
        text = str(row.value)
    return f"{text} {row.unit}".strip()


def table(rows: list[Row]) -> str:
    header = ("measure", "metric", "value", "target", "", "note")
    lines = [header] + [(r.measure, r.metric, _value(r), r.target, r.verdict, r.note) for r in rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(5)]
    out = []
    for n, line in enumerate(lines):
        cells = [str(c).ljust(w) for c, w in zip(line[:5], widths, strict=True)]
        out.append("  ".join(cells) + "  " + str(line[5]))
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(out)


def markdown(rows: list[Row]) -> str:
    """The same table in Markdown, for pasting into the README."""
    out = ["| measure | metric | value | target | | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r.measure} | {r.metric} | {_value(r)} | {r.target} | {r.verdict} | {r.note} |"
        )
    return "\n".join(out)


def _clean(obj: Any) -> Any:
    """JSON can't hold NaN/inf or sets."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path, ctx: Context, rows: list[Row], meta: dict[str, Any]) -> None:
    data = {
        **meta,
        "rows": [{**r.__dict__, "verdict": r.verdict} for r in rows],
        "details": ctx.details,
        "series": ctx.series,
    }
    path.write_text(json.dumps(_clean(data), indent=1, default=str) + "\n")


def write_chart(path: Path, ctx: Context, rows: list[Row], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle(title, fontsize=11)
    _ratios(axes[0][0], rows)
    _curves(axes[0][1], ctx)
    _latencies(axes[1][0], ctx)
    _web(axes[1][1], rows)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ratios(ax, rows: list[Row]) -> None:
    ratios = [
        r
        for r in rows
        if " / " in r.metric and r.target.startswith("≥") and isinstance(r.value, int | float)
    ]
    ax.set_title("taskhub vs baseline (bar) and target (tick)")
    if not ratios:
        ax.text(0.5, 0.5, "no comparisons in this run", ha="center", va="center")
        return
    labels = [f"{r.measure}\n{r.metric}" for r in ratios]
    values = [float(r.value) for r in ratios]
    targets = [float(r.target.split()[-1]) for r in ratios]
    colors = ["tab:green" if r.ok else "tab:red" for r in ratios]
    ax.barh(labels, values, color=colors)
    ax.scatter(targets, labels, marker="|", s=400, color="black", zorder=3)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)


def _curves(ax, ctx: Context) -> None:
    ax.set_title("completed over time (from starting the workers)")
    for name, series in ctx.series.items():
        if series:
            ax.plot([t for t, _ in series], [d for _, d in series], label=name)
    ax.set_xlabel("s")
    ax.set_ylabel("tasks completed")
    if ctx.series:
        ax.legend(fontsize=7)


def _latencies(ax, ctx: Context) -> None:
    ax.set_title("enqueue → start latency (CDF)")
    plotted = False
    for key, label in (("latency.idle_ms", "idle"), ("latency.load_ms", "under load")):
        values = sorted(ctx.details.get(key) or [])
        if values:
            ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)
            plotted = True
    ax.axvline(20, color="tab:gray", linestyle=":", label="20 ms (idle p50 target)")
    ax.axvline(250, color="tab:gray", linestyle="--", label="250 ms (load p99 target)")
    ax.set_xscale("log")
    ax.set_xlabel("ms")
    if plotted:
        ax.legend(fontsize=7)


def _web(ax, rows: list[Row]) -> None:
    ax.set_title("API, scale and search (ms)")
    web = [r for r in rows if r.measure in ("api", "scale", "search")]
    web = [r for r in web if isinstance(r.value, int | float)]
    web = [r for r in web if r.unit == "ms"]
    if not web:
        ax.text(0.5, 0.5, "API / admin / dashboard: not available yet", ha="center", va="center")
        ax.set_axis_off()
        return
    ax.barh(
        [f"{r.measure}: {r.metric}" for r in web],
        [float(r.value) for r in web],
        color=["tab:green" if r.ok in (True, None) else "tab:red" for r in web],
    )
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
