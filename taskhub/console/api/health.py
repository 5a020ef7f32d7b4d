"""``GET /api/health``: the health report (taskhub.console.health) under the API, for clients and
probes of the systems taskhub replaces (the Queue Worker document's health endpoint). It answers
as ``/healthz`` does: no credentials needed, each check's status for anyone, the details for an
authenticated caller; 503 when a check is down."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from .. import health
from .views import TaskhubAPIView

HEALTH_STATUSES = [health.OK, health.DEGRADED, health.DOWN]
CHECK_STATUSES = [health.OK, health.DEGRADED, health.DOWN, health.SKIPPED]


class Health(TaskhubAPIView):
    # Probes carry no credentials, and a wrong token must not turn the answer into a 401:
    # health.public_report reads the session or token itself, only to decide on the details.
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Health of the database, Redis, the broker, workers, dispatcher, scheduler "
        "and queues",
        description="Each check: `ok`, `degraded` (work runs late or not at all, nothing is "
        "lost) or `down` (work cannot be accepted); `skipped` when it does not apply. The "
        "overall status is the worst; 503 when it is `down`. Anonymous callers get each "
        "check's name and status only.",
        auth=[],
        responses={
            code: inline_serializer(
                f"ApiHealth{code}",
                {
                    "status": serializers.ChoiceField(choices=HEALTH_STATUSES),
                    "timestamp": serializers.DateTimeField(),
                    "checks": serializers.ListField(
                        child=inline_serializer(
                            f"ApiHealthCheck{code}",
                            {
                                "name": serializers.CharField(),
                                "status": serializers.ChoiceField(choices=CHECK_STATUSES),
                            },
                        )
                    ),
                },
            )
            for code in (200, 503)
        },
    )
    def get(self, request):
        body, status = health.public_report(request._request)
        return Response(body, status=status)
