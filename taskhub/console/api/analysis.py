"""``/api/metrics``, ``/api/metrics/timeseries`` and ``/api/failures``: what happened over a
time range."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from ...definitions.task_types import TaskType
from .. import analytics, timeseries
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
        "tasksByType": serializers.DictField(
            child=serializers.IntegerField(),
            help_text="Tasks created in the range by the type their task declares (every type, "
            "0 when none; other: declares none).",
        ),
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
        "affectedUsersLimit": serializers.IntegerField(
            help_text="The most user ids a group's affectedUsers lists."
        ),
        "failures": inline_serializer(
            "FailureGroup",
            {
                "taskType": serializers.ChoiceField(
                    choices=TaskType.choices, help_text="The type the task declares."
                ),
                "taskName": serializers.CharField(),
                "errorType": serializers.CharField(),
                "message": serializers.CharField(help_text="Normalised: ids and numbers replaced."),
                "fingerprint": serializers.CharField(),
                "frequency": serializers.IntegerField(),
                "lastOccurrence": serializers.DateTimeField(),
                "lastTaskId": serializers.UUIDField(),
                "lastError": serializers.CharField(),
                "affectedUsers": serializers.ListField(
                    child=serializers.CharField(),
                    help_text="Distinct user ids of the failed tasks, the most recently affected "
                    "first; at most affectedUsersLimit.",
                ),
                "affectedUsersCount": serializers.IntegerField(
                    help_text="How many distinct users, all of them."
                ),
                "suggestedAction": serializers.CharField(),
            },
            many=True,
        ),
    },
)


_SERIES = serializers.ListField(child=serializers.FloatField(allow_null=True))
_Timeseries = inline_serializer(
    "TaskTimeseries",
    {
        "window": serializers.ChoiceField(choices=list(timeseries.WINDOWS)),
        "bucketSeconds": serializers.IntegerField(help_text="60 for 1h, 900 for 1d."),
        "from": serializers.DateTimeField(help_text="Start of the first bucket."),
        "to": serializers.DateTimeField(help_text="End of the last bucket (it holds now)."),
        "buckets": serializers.ListField(
            child=serializers.DateTimeField(), help_text="Start of each bucket, oldest first."
        ),
        "queues": inline_serializer(
            "QueueTimeseries",
            {
                "queue": serializers.CharField(),
                "completed": serializers.ListField(
                    child=serializers.IntegerField(), help_text="Tasks completed in each bucket."
                ),
                "failed": serializers.ListField(
                    child=serializers.IntegerField(), help_text="Tasks failed for good."
                ),
                "waitP50": _SERIES,
                "waitP95": _SERIES,
                "runP50": _SERIES,
                "runP95": _SERIES,
            },
            many=True,
        ),
    },
)


class TimeseriesQuery(serializers.Serializer):
    window = serializers.ChoiceField(
        choices=list(timeseries.WINDOWS),
        default="1h",
        help_text="1h: 60 one-minute buckets; 1d: 96 buckets of 15 minutes.",
    )
    queue = serializers.CharField(
        required=False, max_length=100, help_text="One queue; default: every queue."
    )

    def validate_queue(self, value: str) -> str:
        if not timeseries.known_queue(value):
            raise serializers.ValidationError("No such queue.")
        return value


class Timeseries(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="Per-queue throughput, wait and run time over the last hour or day",
        description=(
            "Tasks that finished in each bucket: how many completed and failed, their wait "
            "(queued → started) and run time (completed tasks' last attempt) at p50 and p95, "
            "in seconds; null where a bucket has none."
        ),
        parameters=[TimeseriesQuery],
        responses=_Timeseries,
    )
    def get(self, request):
        query = TimeseriesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(timeseries.series(**query.validated_data))


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
        summary="Failures grouped by task and error fingerprint",
        parameters=[TimeRangeSerializer],
        responses=_Failures,
    )
    def get(self, request):
        period = TimeRangeSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        return Response(analytics.failure_groups(**period.validated_data))
