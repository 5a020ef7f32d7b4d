"""The engine's URLs. The REST API and dashboard are added by the operator-surfaces work."""

from django.urls import path

from . import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
]
