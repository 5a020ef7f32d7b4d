from django.urls import path

from . import api

urlpatterns = [
    path("api/payments", api.PaymentListCreate.as_view(), name="payments"),
    path("api/payments/callbacks/<str:provider>", api.provider_callback, name="payment-callback"),
    path("api/payments/<uuid:pk>", api.PaymentDetail.as_view(), name="payment"),
    path("api/payments/<uuid:pk>/retry", api.PaymentAction.as_view(action="retry")),
    path("api/payments/<uuid:pk>/reconcile", api.PaymentAction.as_view(action="reconcile")),
    path("api/safe-transactions", api.SafeTransactionListCreate.as_view(), name="safe-txs"),
    path("api/safe-transactions/<uuid:pk>", api.SafeTransactionDetail.as_view(), name="safe-tx"),
    path("api/safe-transactions/<uuid:pk>/reconcile", api.SafeTransactionReconcile.as_view()),
]
