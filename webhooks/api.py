"""``/api/webhooks/…``: endpoints (CRUD, secret write-only), deliveries (list, redeliver) and
retry-all. Roles and errors follow the engine's API (``taskhub.console.api``): viewer reads,
operator redelivers, admin manages endpoints; every change is recorded in the operator audit log.

An endpoint's secret is in the response of its creation (and of a rotation) — the only times
it is shown; no serializer here has a field that reads it.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from taskhub.console.api.permissions import ADMIN, OPERATOR, VIEWER, RolePermission
from taskhub.console.api.serializers import StrictSerializer
from taskhub.console.api.views import TaskhubAPIView
from taskhub.console.audit import audited

from . import services
from .models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = (
            "id",
            "url",
            "event_types",
            "description",
            "active",
            "disabled_reason",
            "created_at",
            "updated_at",
        )


class CreatedEndpointSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="Shown this once; store it now.")

    class Meta(EndpointSerializer.Meta):
        fields = (*EndpointSerializer.Meta.fields, "secret")


class EndpointChangeSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, required=False)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=100
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)


class EndpointCreateSerializer(EndpointChangeSerializer):
    url = serializers.CharField(max_length=2000)
    event_types = serializers.ListField(child=serializers.CharField(max_length=100), max_length=100)
    secret = serializers.CharField(
        max_length=200,
        required=False,
        write_only=True,
        help_text="whsec_… ; generated when omitted",
    )


class RotateSecretSerializer(StrictSerializer):
    secret = serializers.CharField(max_length=200, required=False, write_only=True)
    overlap_hours = serializers.FloatField(min_value=0, max_value=24 * 30, required=False)


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ("number", "at", "url", "response_code", "response_body", "duration", "error")


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "endpoint",
            "message_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_response_code",
            "last_error",
            "task_id",
            "created_at",
            "updated_at",
            "delivered_at",
        )


class DeliveryPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DeliverySerializer(many=True)


class DeliveryDetailSerializer(DeliverySerializer):
    log = AttemptSerializer(many=True, read_only=True)

    class Meta(DeliverySerializer.Meta):
        fields = (*DeliverySerializer.Meta.fields, "payload", "log")


class DeliveryFilterSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)
    endpoint = serializers.UUIDField(required=False)
    event_type = serializers.CharField(max_length=100, required=False)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=500, required=False)


class DeliveryPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request):
        from rest_framework.exceptions import NotFound, ValidationError

        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc


def _audited(request, action: str, target_type: str, target_id="", **details):
    return audited(
        request.user, action, source="api", target_type=target_type, target_id=target_id, **details
    )


class EndpointListCreate(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "POST": ADMIN}

    @extend_schema(
        summary="Webhook endpoints, newest first", responses=EndpointSerializer(many=True)
    )
    def get(self, request):
        return Response(EndpointSerializer(WebhookEndpoint.objects.all(), many=True).data)

    @extend_schema(
        summary="Create an endpoint; the response holds its secret, shown only now",
        request=EndpointCreateSerializer,
        responses={201: CreatedEndpointSerializer},
    )
    def post(self, request):
        body = EndpointCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        url, event_types = data.pop("url"), data.pop("event_types")
        with _audited(request, "webhook_endpoint.create", "webhook_endpoint", url=url) as extra:
            endpoint, secret = services.create_endpoint(url, event_types, **data)
            extra.update(target_id=endpoint.id)
        return Response(
            {**EndpointSerializer(endpoint).data, "secret": secret}, status=status.HTTP_201_CREATED
        )


class EndpointDetail(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "PATCH": ADMIN, "PUT": ADMIN, "DELETE": ADMIN}

    @extend_schema(summary="A webhook endpoint (never its secret)", responses=EndpointSerializer)
    def get(self, request, endpoint_id):
        return Response(EndpointSerializer(services.get_endpoint(endpoint_id)).data)

    @extend_schema(
        summary="Change url, event types, description or active",
        request=EndpointChangeSerializer,
        responses=EndpointSerializer,
    )
    def patch(self, request, endpoint_id):
        body = EndpointChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        with _audited(
            request,
            "webhook_endpoint.update",
            "webhook_endpoint",
            endpoint_id,
            fields=sorted(changes),
        ):
            endpoint = services.update_endpoint(endpoint_id, **changes)
        return Response(EndpointSerializer(endpoint).data)

    put = patch

    @extend_schema(summary="Delete an endpoint and its deliveries", responses={204: None})
    def delete(self, request, endpoint_id):
        with _audited(request, "webhook_endpoint.delete", "webhook_endpoint", endpoint_id):
            services.delete_endpoint(endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecret(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": ADMIN}

    @extend_schema(
        summary="Give an endpoint a new secret (the old one signs too for a while)",
        request=RotateSecretSerializer,
        responses=inline_serializer(
            "RotatedSecret", {"id": serializers.UUIDField(), "secret": serializers.CharField()}
        ),
    )
    def post(self, request, endpoint_id):
        body = RotateSecretSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with _audited(request, "webhook_endpoint.rotate_secret", "webhook_endpoint", endpoint_id):
            secret = services.rotate_secret(
                endpoint_id, data.get("secret"), data.get("overlap_hours")
            )
        return Response({"id": str(endpoint_id), "secret": secret})


class DeliveryList(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="Deliveries, newest first (cursor pagination)",
        operation_id="webhooks_deliveries_list",
        parameters=[DeliveryFilterSerializer],
        responses=DeliveryPageSerializer,
    )
    def get(self, request):
        filters = DeliveryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        deliveries = WebhookDelivery.objects.all()
        for param in ("status", "endpoint", "event_type"):
            if filters.validated_data.get(param):
                deliveries = deliveries.filter(**{param: filters.validated_data[param]})
        paginator = DeliveryPagination()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


class DeliveryDetail(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="A delivery with its payload and every attempt", responses=DeliveryDetailSerializer
    )
    def get(self, request, delivery_id):
        return Response(DeliveryDetailSerializer(services.get_delivery(delivery_id)).data)


class Redeliver(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}

    @extend_schema(
        summary="Send a delivery again now, with a fresh retry schedule",
        request=None,
        responses=DeliverySerializer,
    )
    def post(self, request, delivery_id):
        with _audited(request, "webhook_delivery.redeliver", "webhook_delivery", delivery_id):
            delivery = services.redeliver(delivery_id)
        return Response(DeliverySerializer(delivery).data)


class RetryAll(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}

    @extend_schema(
        summary="Redeliver every failed delivery of an active endpoint now",
        description="Answers 200 with how many were queued for redelivery: `count` and a "
        "`message`, as a NestJS controller's bulk action answers, and `redelivered` (the same "
        "number), which earlier clients read.",
        request=None,
        responses=inline_serializer(
            "RetryAllResult",
            {
                "count": serializers.IntegerField(),
                "message": serializers.CharField(),
                "redelivered": serializers.IntegerField(),
            },
        ),
    )
    def post(self, request):
        with _audited(request, "webhook_delivery.retry_all", "webhook_delivery") as extra:
            count = services.retry_all_failed()
            extra.update(count=count)
        noun = "delivery" if count == 1 else "deliveries"
        message = f"{count} failed {noun} queued for redelivery"
        return Response({"count": count, "message": message, "redelivered": count})
