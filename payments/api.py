"""REST endpoints for payments, Safe transactions and provider callbacks.

Permission classes are class attributes so the role classes (viewer / operator) can replace
them without touching the views.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import safe, services
from .models import Payment, SafeTransaction
from .providers import CallbackRejected
from .serializers import (
    PaymentDetailSerializer,
    PaymentSerializer,
    SafeTransactionSerializer,
)


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def _filtered(queryset, params, names):
    for name in names:
        value = params.get(name)
        if value:
            queryset = queryset.filter(**{name: value})
    return queryset


class PaymentListCreate(APIView):
    """``GET /api/payments`` (filters: status, user_id, currency, provider_payment_id) and
    ``POST /api/payments`` with an ``Idempotency-Key`` header."""

    permission_classes = [IsAuthenticated]
    create_permission_classes = [IsAuthenticated]
    pagination_class = Pagination

    def get_permissions(self):
        classes = self.create_permission_classes if self.request.method == "POST" else None
        return [p() for p in (classes or self.permission_classes)]

    @extend_schema(operation_id="payments_list", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        rows = _filtered(Payment.objects.all(), request.query_params,
                         ["status", "user_id", "currency", "provider_payment_id"])  # fmt: skip
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(PaymentSerializer(page, many=True).data)

    @extend_schema(
        operation_id="payments_create", request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        try:
            payment, created = services.create_payment(
                idempotency_key=request.headers.get("Idempotency-Key", ""), data=request.data
            )
        except (services.PaymentRequestError, safe.SafeRequestError) as exc:
            return Response({"errors": exc.errors}, status=exc.status)
        body = PaymentDetailSerializer(payment).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PaymentDetail(generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated]
    queryset = Payment.objects.all()
    serializer_class = PaymentDetailSerializer


class SafeTransactionListCreate(APIView):
    """``GET /api/safe-transactions`` (filters: status, user_id, safe_address, safe_tx_hash) and
    ``POST /api/safe-transactions`` ``{safe_address, transaction, user_signature, user_id}``."""

    permission_classes = [IsAuthenticated]
    create_permission_classes = [IsAuthenticated]
    pagination_class = Pagination

    def get_permissions(self):
        classes = self.create_permission_classes if self.request.method == "POST" else None
        return [p() for p in (classes or self.permission_classes)]

    @extend_schema(
        operation_id="safe_transactions_list", request=None, responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        rows = _filtered(SafeTransaction.objects.all(), request.query_params,
                         ["status", "user_id", "safe_address", "safe_tx_hash"])  # fmt: skip
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(SafeTransactionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="safe_transactions_create",
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request):
        try:
            row, created = safe.create_safe_transaction(request.data)
        except safe.SafeRequestError as exc:
            return Response({"errors": exc.errors}, status=exc.status)
        body = SafeTransactionSerializer(row).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SafeTransactionDetail(generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated]
    queryset = SafeTransaction.objects.all()
    serializer_class = SafeTransactionSerializer


class PaymentAction(APIView):
    """``POST /api/payments/{id}/retry`` and ``/reconcile``: operator actions."""

    permission_classes = [IsAuthenticated]
    action = ""

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk):
        payment = generics.get_object_or_404(Payment, pk=pk)
        try:
            if self.action == "retry":
                task = services.retry_payment(payment)
                return Response({"payment_id": str(payment.id), "task_id": str(task.id)})
            new_status = services.reconcile_from_provider(payment)
        except services.InvalidTransition as exc:
            return Response({"errors": {"status": [str(exc)]}}, status=409)
        except Exception as exc:  # the provider is unreachable: say so, change nothing
            return Response({"errors": {"provider": [type(exc).__name__]}}, status=502)
        return Response({"payment_id": str(payment.id), "status": new_status})


class SafeTransactionReconcile(APIView):
    """``POST /api/safe-transactions/{id}/reconcile``: re-read the outcome from the chain."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="safe_transactions_reconcile",
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, pk):
        row = generics.get_object_or_404(SafeTransaction, pk=pk)
        try:
            new_status = safe.reconcile_from_chain(row)
        except safe.SafeRequestError as exc:
            return Response({"errors": exc.errors}, status=409)
        return Response({"safe_transaction_id": str(row.id), "status": new_status})


@csrf_exempt
@require_POST
def provider_callback(request, provider: str):
    """``POST /api/payments/callbacks/{provider}``: the signature is checked over the raw body
    before anything parses it; a replayed event id is acknowledged and changes nothing."""
    try:
        event, created = services.receive_callback(provider, request.headers, request.body)
    except CallbackRejected as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    return JsonResponse({"received": True, "duplicate": not created, "event_id": event.event_id})
