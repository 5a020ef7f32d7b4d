"""The bench harness's own arithmetic and reporting (the measures themselves run in make bench)."""

import json

import pytest

from bench import report, run
from bench.core import Context, Row, at_least, at_most, info, percentile


def test_percentiles_are_nearest_rank_so_p99_of_200_samples_is_the_198th():
    values = list(range(1, 201))
    assert percentile(values, 50) == 100
    assert percentile(values, 99) == 198
    assert percentile([7.0], 99) == 7.0


def test_targets_say_ok_or_missed_and_skips_say_skip():
    assert at_least("t", "ratio", 0.8, 0.75).verdict == "ok"
    assert at_least("t", "ratio", 0.7, 0.75).verdict == "MISSED"
    assert at_most("l", "p50", 21, 20, "ms").verdict == "MISSED"
    assert info("api", "—", None, note="skipped: not available yet").verdict == "skip"


def test_quick_shrinks_every_count_tenfold_but_never_to_zero():
    assert Context(quick=True).n(20_000) == 2_000
    assert Context(quick=True).n(5) == 1
    assert Context().n(20_000) == 20_000


def test_faults_run_only_when_asked_and_unknown_measures_are_refused():
    assert "faults" not in run.selected(run.parse_args([]))
    assert "faults" in run.selected(run.parse_args(["--faults"]))
    assert run.selected(run.parse_args(["--only", "enqueue,latency"])) == ["enqueue", "latency"]
    with pytest.raises(SystemExit):
        run.selected(run.parse_args(["--only", "nope"]))


def test_the_results_file_holds_every_row_and_the_chart_draws(tmp_path):
    ctx = Context(quick=True)
    ctx.series["throughput: bare"] = [(0.0, 0), (1.0, 900)]
    ctx.details["latency.idle_ms"] = [3.0, 5.0, float("nan")]
    rows = [
        at_least("throughput", "taskhub / bare", 0.8, 0.75),
        Row("api", "—", None, note="skipped: not available yet"),
    ]
    report.write_json(tmp_path / "r.json", ctx, rows, {"date": "today"})

    data = json.loads((tmp_path / "r.json").read_text())
    assert [r["verdict"] for r in data["rows"]] == ["ok", "skip"]
    assert data["details"]["latency.idle_ms"][2] is None  # NaN is not JSON
    assert "taskhub / bare" in report.table(rows)

    pytest.importorskip("matplotlib", reason="the chart needs the bench extra")
    report.write_chart(tmp_path / "r.png", ctx, rows, "test")
    assert (tmp_path / "r.png").stat().st_size > 1000
