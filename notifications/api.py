"""REST API: a user's notifications, and marking one read.

Views are thin (a serializer and one service call). Roles as on the engine API: viewers read,
operators mark read (recorded in the operator audit log).
"""

from __future__ import annotations

from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from taskhub.console.api.permissions import OPERATOR, VIEWER, RolePermission
from taskhub.console.api.views import TaskhubAPIMixin, TaskhubAPIView
from taskhub.console.audit import audited

from . import services
from .models import Notification


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = [
            "id",
            "user_id",
            "type",
            "message",
            "metadata",
            "channels",
            "deliveries",
            "created_at",
            "read_at",
        ]
        read_only_fields = fields


class NotificationPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class NotificationList(TaskhubAPIMixin, generics.ListAPIView):
    """``GET /api/notifications?user_id=…&unread=true`` — newest first.

    Without ``user_id``, the signed-in user's own notifications."""

    serializer_class = NotificationSerializer
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}
    pagination_class = NotificationPagination

    def get_queryset(self):
        params = self.request.query_params
        user_id = params.get("user_id") or str(self.request.user.pk)
        rows = Notification.objects.filter(user_id=user_id)
        if params.get("unread", "").lower() in ("1", "true", "yes"):
            rows = rows.filter(read_at__isnull=True)
        if params.get("type"):
            rows = rows.filter(type=params["type"])
        return rows


class MarkRead(TaskhubAPIView):
    """``POST /api/notifications/{id}/read`` — idempotent; answers the notification."""

    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    serializer_class = NotificationSerializer

    def post(self, request: Request, pk: int) -> Response:
        try:
            with audited(
                request.user,
                "notification.mark_read",
                source="api",
                target_type="notification",
                target_id=pk,
            ):
                notification = services.mark_read(pk)
        except Notification.DoesNotExist:
            raise NotFound("No such notification.") from None
        return Response(NotificationSerializer(notification).data)
