"""REST endpoints for payments, Safe transactions and provider callbacks.

Roles as everywhere on the API (``taskhub.console.api.permissions``): viewers read; operators create
payments and Safe transactions, retry and reconcile. Every operator action is recorded in the
operator audit log (``taskhub.console.audit``), in the transaction of the change.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from taskhub.console.api.permissions import OPERATOR, VIEWER, RolePermission
from taskhub.console.api.views import TaskhubAPIMixin, TaskhubAPIView
from taskhub.console.audit import audited

from . import safe, services
from .models import Payment, SafeTransaction
from .providers import CallbackRejected
from .serializers import (
    PaymentDetailSerializer,
    PaymentSerializer,
    SafeTransactionSerializer,
)


def _error_body(exc: Exception, errors: dict) -> dict:
    return {"error": str(exc), "errors": errors}


_IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="1 to 255 characters; the same key and body again returns the stored payment.",
)


class PaymentRequestSerializer(serializers.Serializer):
    """The documented body; ``services.create_payment`` validates it (unknown fields too)."""

    user_id = serializers.CharField(max_length=200)
    amount = serializers.CharField(help_text='A decimal string, e.g. "12.50".')
    currency = serializers.CharField(help_text="ISO 4217 code, e.g. EUR.")
    payment_method_id = serializers.CharField(max_length=200)
    metadata = serializers.DictField(required=False)
    safe_transaction = serializers.DictField(required=False, allow_null=True)


class SafeTransactionRequestSerializer(serializers.Serializer):
    """The documented body; ``safe.create_safe_transaction`` validates it."""

    safe_address = serializers.CharField()
    transaction = serializers.DictField(help_text="The SafeTx: to, value, data, nonce, …")
    user_signature = serializers.CharField()
    user_id = serializers.CharField()


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def _filtered(queryset, params, names):
    for name in names:
        value = params.get(name)
        if value:
            queryset = queryset.filter(**{name: value})
    return queryset


class PaymentListCreate(TaskhubAPIView):
    """``GET /api/payments`` (filters: status, user_id, currency, provider_payment_id) and
    ``POST /api/payments`` with an ``Idempotency-Key`` header."""

    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "POST": OPERATOR}
    error_codes = {"POST": [409]}  # the Idempotency-Key was used with another body
    pagination_class = Pagination

    @extend_schema(operation_id="payments_list", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        rows = _filtered(
            Payment.objects.all(),
            request.query_params,
            ["status", "user_id", "currency", "provider_payment_id"],
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(PaymentSerializer(page, many=True).data)

    @extend_schema(
        operation_id="payments_create",
        parameters=[_IDEMPOTENCY_KEY],
        request=PaymentRequestSerializer,
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        try:
            with audited(
                request.user, "payment.create", source="api", target_type="payment"
            ) as extra:
                payment, created = services.create_payment(
                    idempotency_key=request.headers.get("Idempotency-Key", ""), data=request.data
                )
                extra.update(target_id=payment.id, created=created)
        except (services.PaymentRequestError, safe.SafeRequestError) as exc:
            return Response(_error_body(exc, exc.errors), status=exc.status)
        body = PaymentDetailSerializer(payment).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PaymentDetail(TaskhubAPIMixin, generics.RetrieveAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}
    queryset = Payment.objects.all()
    serializer_class = PaymentDetailSerializer


class SafeTransactionListCreate(TaskhubAPIView):
    """``GET /api/safe-transactions`` (filters: status, user_id, safe_address, safe_tx_hash) and
    ``POST /api/safe-transactions`` ``{safe_address, transaction, user_signature, user_id}``."""

    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "POST": OPERATOR}
    error_codes = {"POST": [409]}
    pagination_class = Pagination

    @extend_schema(
        operation_id="safe_transactions_list", request=None, responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        rows = _filtered(
            SafeTransaction.objects.all(),
            request.query_params,
            ["status", "user_id", "safe_address", "safe_tx_hash"],
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(SafeTransactionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="safe_transactions_create",
        request=SafeTransactionRequestSerializer,
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        try:
            with audited(
                request.user,
                "safe_transaction.create",
                source="api",
                target_type="safe_transaction",
            ) as extra:
                row, created = safe.create_safe_transaction(request.data)
                extra.update(target_id=row.id, created=created)
        except safe.SafeRequestError as exc:
            return Response(_error_body(exc, exc.errors), status=exc.status)
        body = SafeTransactionSerializer(row).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SafeTransactionDetail(TaskhubAPIMixin, generics.RetrieveAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}
    queryset = SafeTransaction.objects.all()
    serializer_class = SafeTransactionSerializer


class PaymentAction(TaskhubAPIView):
    """``POST /api/payments/{id}/retry`` and ``/reconcile``: operator actions."""

    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    error_codes = {"POST": [409, 502]}  # the state forbids it; the provider is unreachable
    action = ""

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk):
        payment = generics.get_object_or_404(Payment, pk=pk)
        try:
            # A reconcile calls the provider: no transaction held open across it.
            with audited(
                request.user,
                f"payment.{self.action}",
                source="api",
                target_type="payment",
                target_id=payment.id,
                atomic=self.action == "retry",
            ) as extra:
                if self.action == "retry":
                    task = services.retry_payment(payment)
                    extra.update(task_id=str(task.id))
                    return Response({"payment_id": str(payment.id), "task_id": str(task.id)})
                new_status = services.reconcile_from_provider(payment)
                extra.update(status=str(new_status))
        except services.InvalidTransition as exc:
            return Response(_error_body(exc, {"status": [str(exc)]}), status=409)
        except Exception as exc:  # the provider is unreachable: say so, change nothing
            message = f"the provider could not be reached ({type(exc).__name__})"
            body = {"error": message, "errors": {"provider": [type(exc).__name__]}}
            return Response(body, status=502)
        return Response({"payment_id": str(payment.id), "status": new_status})


class SafeTransactionReconcile(TaskhubAPIView):
    """``POST /api/safe-transactions/{id}/reconcile``: re-read the outcome from the chain."""

    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    error_codes = {"POST": [409]}

    @extend_schema(
        operation_id="safe_transactions_reconcile", request=None, responses=OpenApiTypes.OBJECT
    )
    def post(self, request, pk):
        row = generics.get_object_or_404(SafeTransaction, pk=pk)
        try:
            # The chain is read: no transaction held open across it.
            with audited(
                request.user,
                "safe_transaction.reconcile",
                source="api",
                target_type="safe_transaction",
                target_id=row.id,
                atomic=False,
            ) as extra:
                new_status = safe.reconcile_from_chain(row)
                extra.update(status=str(new_status))
        except safe.SafeRequestError as exc:
            return Response(_error_body(exc, exc.errors), status=409)
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
