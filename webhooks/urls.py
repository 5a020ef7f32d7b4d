"""The webhooks API, mounted at the site root by config/urls.py (paths start with api/webhooks)."""

from django.urls import path

from . import api

_base = "api/webhooks"

urlpatterns = [
    path(f"{_base}/endpoints", api.EndpointListCreate.as_view(), name="webhook-endpoint-list"),
    path(
        f"{_base}/endpoints/<str:endpoint_id>",
        api.EndpointDetail.as_view(),
        name="webhook-endpoint-detail",
    ),
    path(
        f"{_base}/endpoints/<str:endpoint_id>/rotate-secret",
        api.EndpointRotateSecret.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(f"{_base}/deliveries", api.DeliveryList.as_view(), name="webhook-delivery-list"),
    path(
        f"{_base}/deliveries/<str:delivery_id>",
        api.DeliveryDetail.as_view(),
        name="webhook-delivery-detail",
    ),
    path(
        f"{_base}/deliveries/<str:delivery_id>/redeliver",
        api.Redeliver.as_view(),
        name="webhook-delivery-redeliver",
    ),
    path(f"{_base}/retry-all", api.RetryAll.as_view(), name="webhook-retry-all"),
]
