"""The Grafana dashboard shipped in the package (taskhub/console/grafana/) charts only what
/metrics exports: every metric its expressions name is found in a real scrape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import taskhub
from taskhub.console.prometheus import TaskhubCollector, snapshot
from taskhub.engine.enqueue import schedule
from taskhub.models import TaskStatus
from tests.api.test_analysis import finish

DASHBOARD = Path(taskhub.__file__).parent / "console" / "grafana" / "taskhub-dashboard.json"
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label_values(metric, label) included)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, legends
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        name, call = match.groups()
        if call or name.lower() in KEYWORDS:
            continue  # a function (sum, rate, histogram_quantile, label_values…) or a keyword
        names.add(name)
    return names


def expressions(dashboard: dict) -> list[str]:
    found = []

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        found += [target["expr"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def test_the_expression_parser_finds_metric_names_and_nothing_else():
    expr = (
        'histogram_quantile(0.95, sum by (queue, le) (rate(foo_seconds_bucket{queue=~"$queue",'
        ' le!="+Inf"}[5m]))) / on (queue) group_left bar_total offset 5m > bool 1'
    )
    assert metric_names(expr) == {"foo_seconds_bucket", "bar_total"}
    assert metric_names("label_values(taskhub_tasks, queue)") == {"taskhub_tasks", "queue"}


@pytest.mark.django_db
def test_every_metric_the_dashboard_charts_is_one_the_exporter_emits(viewer):
    # rows for every family, the duration histogram's buckets included
    finish(TaskStatus.COMPLETED, duration=0.2)
    finish(TaskStatus.FAILED, attempt=3, error="x")
    schedule("taskhub.ping", {})
    snapshot.clear()
    scrape = viewer.get("/metrics")
    assert scrape.status_code == 200
    emitted = {
        sample.name
        for family in text_string_to_metric_families(scrape.content.decode())
        for sample in family.samples
    }
    assert "taskhub_task_duration_seconds_bucket" in emitted

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard)
    assert len(exprs) >= 15
    labels = {"queue"}  # label_values(metric, label): the label is not a metric
    used = set().union(*(metric_names(e) for e in exprs)) - labels
    unknown = sorted(used - emitted)
    assert unknown == [], f"the dashboard charts metrics /metrics does not emit: {unknown}"
    # and every expression reads at least one of them
    assert all(metric_names(e) - labels for e in exprs)
    # every family of taskhub's own collector is on the dashboard (a domain app's are not)
    families = {family.name for family in TaskhubCollector().collect()}
    charted = {re.sub(r"_(bucket|gcount|gsum)$", "", name) for name in used}
    assert families <= charted, sorted(families - charted)


def test_every_panel_uses_the_dashboards_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
