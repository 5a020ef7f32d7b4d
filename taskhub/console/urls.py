"""The engine's URLs: health, Prometheus metrics and the REST API under ``/api/``."""

from django.urls import include, path

from . import health
from .prometheus import MetricsView

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("metrics", MetricsView.as_view(), name="prometheus-metrics"),
    path("api/", include(("taskhub.console.api.urls", "taskhub-api"), namespace="api")),
]
