"""Webhook deliveries by outcome, for Prometheus (registered into
``taskhub.console.prometheus.registry``).

Read from the rows, like the engine's metrics, so any web process answers for the whole system.
Finished deliveries are deleted after CLEANUP_RETENTION_DAYS, which bounds both counts.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint


def _attempt_outcome(code: int | None) -> str:
    return "error" if code is None else f"{code // 100}xx"


class DeliveryCollector(Collector):
    def collect(self):
        by_status = GaugeMetricFamily(
            "taskhub_webhook_deliveries", "Webhook deliveries kept, by status", labels=["status"]
        )
        counts = dict(
            WebhookDelivery.objects.order_by().values_list("status").annotate(n=Count("id"))
        )
        for status in DeliveryStatus.values:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status

        attempts = GaugeMetricFamily(
            "taskhub_webhook_attempts_last_hour",
            "Webhook delivery attempts in the last hour, by outcome (2xx, 4xx, 5xx, error)",
            labels=["outcome"],
        )
        since = timezone.now() - dt.timedelta(hours=1)
        outcomes = {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "error": 0}
        recent = DeliveryAttempt.objects.filter(at__gte=since).order_by()
        rows = recent.values_list("response_code").annotate(n=Count("id"))
        for code, n in rows:
            key = _attempt_outcome(code)
            outcomes[key] = outcomes.get(key, 0) + n
        for outcome, n in outcomes.items():
            attempts.add_metric([outcome], n)
        yield attempts

        endpoints = GaugeMetricFamily(
            "taskhub_webhook_endpoints", "Webhook endpoints by state", labels=["state"]
        )
        states = WebhookEndpoint.objects.aggregate(
            n_active=Count("id", filter=Q(active=True)),
            n_disabled=Count("id", filter=Q(active=False)),
        )
        endpoints.add_metric(["active"], states["n_active"])
        endpoints.add_metric(["disabled"], states["n_disabled"])
        yield endpoints


_collector: DeliveryCollector | None = None


def register() -> None:
    """Add the collector to the engine's /metrics registry (once per process)."""
    global _collector
    from taskhub.console.prometheus import registry

    if _collector is None:
        _collector = DeliveryCollector()
        registry.register(_collector)
