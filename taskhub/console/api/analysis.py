"""``/api/metrics`` and ``/api/failures``: what happened over a time range."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from .. import analytics
from .permissions import VIEWER, RolePermission
from .serializers import TimeRangeSerializer
from .views import TaskhubAPIView

_Metrics = inline_serializer(
    "TaskMetrics",
    {
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(),
        "totalTasks": serializers.IntegerField(help_text="Tasks created in the range."),
        "completedTasks": serializers.IntegerField(),
        "failedTasks": serializers.IntegerField(),
        "averageExecutionTime": serializers.FloatField(
            help_text="Milliseconds, over completed tasks' last attempt."
        ),
        "retryRate": serializers.FloatField(
            help_text="Percent of started tasks that needed more than one attempt."
        ),
        "successRate": serializers.FloatField(
            help_text="Percent of finished tasks that completed."
        ),
        "tasksByType": serializers.DictField(child=serializers.IntegerField()),
        "tasksByStatus": serializers.DictField(child=serializers.IntegerField()),
    },
)

_Failures = inline_serializer(
    "FailureAnalysis",
    {
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(),
        "totalFailures": serializers.IntegerField(),
        "truncated": serializers.BooleanField(help_text="More failures than one analysis reads."),
        "failures": inline_serializer(
            "FailureGroup",
            {
                "taskType": serializers.CharField(),
                "errorType": serializers.CharField(),
                "message": serializers.CharField(help_text="Normalised: ids and numbers replaced."),
                "fingerprint": serializers.CharField(),
                "frequency": serializers.IntegerField(),
                "lastOccurrence": serializers.DateTimeField(),
                "lastTaskId": serializers.UUIDField(),
                "lastError": serializers.CharField(),
                "affectedUsers": serializers.IntegerField(),
                "suggestedAction": serializers.CharField(),
            },
            many=True,
        ),
    },
)


class Metrics(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="Task metrics for a time range",
        parameters=[TimeRangeSerializer],
        responses=_Metrics,
    )
    def get(self, request):
        period = TimeRangeSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        return Response(analytics.task_metrics(**period.validated_data))


class Failures(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="Failures grouped by task type and error fingerprint",
        parameters=[TimeRangeSerializer],
        responses=_Failures,
    )
    def get(self, request):
        period = TimeRangeSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        return Response(analytics.failure_groups(**period.validated_data))
