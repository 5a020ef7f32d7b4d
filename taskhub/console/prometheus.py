"""Prometheus metrics at ``/metrics``, read from database aggregates.

The rows are the truth, so the collector asks the database rather than counting in each process:
any web process answers for the whole system. Aggregates are cached ``METRICS_CACHE_SECONDS`` so
frequent scrapes cost one set of queries. Other apps add their own collectors to
:data:`registry` (e.g. webhook deliveries by outcome)::

    from taskhub.console.prometheus import registry
    registry.register(MyCollector())
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from rest_framework.permissions import AllowAny

from ..conf import taskhub_settings
from ..models import Task, TaskStatus
from . import analytics
from .api.permissions import VIEWER, RolePermission
from .api.views import TaskhubAPIView

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ACTIVE_STATES = ("waiting", "delayed", "queued", "running")


def _durations_last_hour(now: dt.datetime) -> list[dict[str, Any]]:
    buckets = {
        f"le_{i}": Count("id", filter=Q(duration__lte=b)) for i, b in enumerate(DURATION_BUCKETS)
    }
    return list(
        Task.objects.filter(
            status=TaskStatus.COMPLETED, completed_at__gte=now - dt.timedelta(hours=1)
        )
        .values("queue")
        .annotate(total=Count("id"), seconds=Sum("duration"), **buckets)
        .order_by()
    )


def _retries_last_hour(now: dt.datetime) -> dict[str, int]:
    rows = (
        Task.objects.filter(
            status__in=(TaskStatus.COMPLETED, TaskStatus.FAILED),
            completed_at__gte=now - dt.timedelta(hours=1),
            attempt__gt=1,
        )
        .values("queue")
        .annotate(retries=Sum(F("attempt") - 1))
        .order_by()
    )
    return {r["queue"]: r["retries"] or 0 for r in rows}


def _gather() -> dict[str, Any]:
    now = timezone.now()
    return {
        "overview": analytics.queue_overview(now),
        "durations": _durations_last_hour(now),
        "retries": _retries_last_hour(now),
        "dead_letters": analytics.dead_letters_by_queue(),
        "workers": analytics.live_workers(now),
    }


class _CachedSnapshot(analytics.Snapshot):
    def get(self):
        self._ttl = taskhub_settings.METRICS_CACHE_SECONDS
        return super().get()


snapshot = _CachedSnapshot(_gather, ttl=5.0)


class TaskhubCollector(Collector):
    def collect(self):
        data = snapshot.get()
        tasks = GaugeMetricFamily(
            "taskhub_tasks", "Unfinished tasks by queue and state", labels=["queue", "state"]
        )
        finished = GaugeMetricFamily(
            "taskhub_tasks_finished_last_hour",
            "Tasks finished in the last hour",
            labels=["queue", "status"],
        )
        depth = GaugeMetricFamily(
            "taskhub_queue_depth", "Tasks due and waiting to start", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "taskhub_queue_oldest_waiting_seconds",
            "Age of the oldest waiting task",
            labels=["queue"],
        )
        paused = GaugeMetricFamily("taskhub_queue_paused", "1 if paused", labels=["queue"])
        for q in data["overview"]:
            for state in ACTIVE_STATES:
                tasks.add_metric([q["queue"], state], q[state])
            finished.add_metric([q["queue"], "completed"], q["completed_last_hour"])
            finished.add_metric([q["queue"], "failed"], q["failed_last_hour"])
            depth.add_metric([q["queue"]], q["waiting"])
            age.add_metric([q["queue"]], q["oldest_waiting_seconds"] or 0)
            paused.add_metric([q["queue"]], 1 if q["paused"] else 0)
        yield from (tasks, finished, depth, age, paused)
        yield self._durations(data["durations"])
        retries = GaugeMetricFamily(
            "taskhub_task_retries_last_hour",
            "Extra attempts of tasks finished in the last hour",
            labels=["queue"],
        )
        dead = GaugeMetricFamily(
            "taskhub_dead_letters", "Dead letters awaiting an operator", labels=["queue"]
        )
        for q in data["overview"]:
            retries.add_metric([q["queue"]], data["retries"].get(q["queue"], 0))
            dead.add_metric([q["queue"]], data["dead_letters"].get(q["queue"], 0))
        yield retries
        yield dead
        yield GaugeMetricFamily(
            "taskhub_workers_live",
            "Worker processes with a recent heartbeat",
            value=len(data["workers"]),
        )
        yield GaugeMetricFamily(
            "taskhub_worker_threads_live",
            "Threads of live worker processes",
            value=sum(w.threads for w in data["workers"]),
        )

    @staticmethod
    def _durations(rows) -> GaugeHistogramMetricFamily:
        family = GaugeHistogramMetricFamily(
            "taskhub_task_duration_seconds",
            "Run time of tasks completed in the last hour",
            labels=["queue"],
        )
        for row in rows:
            buckets = [(str(b), row[f"le_{i}"]) for i, b in enumerate(DURATION_BUCKETS)]
            buckets.append(("+Inf", row["total"]))
            family.add_metric([row["queue"]], buckets, gsum_value=row["seconds"] or 0.0)
        return family


registry = CollectorRegistry(auto_describe=False)
registry.register(TaskhubCollector())


class MetricsView(TaskhubAPIView):
    """``GET /metrics`` in the Prometheus text format. Needs a viewer's token (Prometheus:
    ``authorization: {type: Token, credentials: ...}``) unless ``METRICS_PUBLIC`` is set."""

    roles = {"GET": VIEWER}
    schema = None  # not part of the REST API's OpenAPI document

    def get_permissions(self):
        if taskhub_settings.METRICS_PUBLIC:
            return [AllowAny()]
        return [RolePermission()]

    def get(self, request):
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
