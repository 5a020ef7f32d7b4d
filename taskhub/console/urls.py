"""taskhub's URLs: health, Prometheus metrics and the REST API under ``api/``.

A host includes them as they are, ``path("", include("taskhub.console.urls"))``: they take the
namespace ``taskhub`` from ``app_name`` (``reverse("taskhub:task-list")``,
``{% url 'taskhub:event-stream' %}``), so no name of the host's is taken.
"""

from django.urls import include, path

from . import health
from .prometheus import MetricsView

app_name = "taskhub"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("metrics", MetricsView.as_view(), name="prometheus-metrics"),
    # The API's routes join this namespace (taskhub:task-list), not one of their own.
    path("api/", include("taskhub.console.api.urls")),
]
