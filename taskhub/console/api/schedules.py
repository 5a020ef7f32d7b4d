"""``/api/schedules``: list, create, change, delete and run schedules now.

Views are thin: a serializer checks the body's shape, ``taskhub.scheduler.schedules`` validates the
definition (cron, time zone, task, payload) and acts; its InvalidSchedule is a 400 and its
ScheduleNotFound a 404 through the API's exception handler.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from ...definitions.payloads import redact
from ...definitions.registry import all_definitions
from ...models import ScheduleRun, TaskSchedule
from ...scheduler import schedules
from ...scheduler.cron import MAX_INTERVAL
from ..audit import audited
from .permissions import ADMIN, OPERATOR, VIEWER, RolePermission
from .serializers import StrictSerializer
from .views import TaskhubAPIView


class ScheduleSerializer(serializers.ModelSerializer):
    task = serializers.CharField(source="task_name")
    interval = serializers.FloatField(source="interval_seconds", allow_null=True)
    payload = serializers.SerializerMethodField()

    class Meta:
        model = TaskSchedule
        fields = (
            "id",
            "name",
            "task",
            "payload",
            "kind",
            "cron",
            "interval",
            "run_at",
            "timezone",
            "enabled",
            "source",
            "next_run_at",
            "last_run_at",
            "last_task_id",
            "last_status",
            "created_at",
            "updated_at",
        )

    def get_payload(self, row) -> dict:
        definition = all_definitions().get(row.task_name)
        return redact(definition, row.payload)  # fields marked secret never leave


class ScheduleRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduleRun
        fields = ("id", "slot", "trigger", "task_id", "status", "error", "created_at")


class ScheduleChangeSerializer(StrictSerializer):
    """What may change; exactly one of cron, interval and run_at is checked by the service."""

    task = serializers.CharField(max_length=200, required=False)
    payload = serializers.DictField(required=False)
    cron = serializers.CharField(max_length=200, required=False)
    interval = serializers.FloatField(min_value=0.001, max_value=MAX_INTERVAL, required=False)
    run_at = serializers.DateTimeField(required=False)
    timezone = serializers.CharField(max_length=64, required=False)
    enabled = serializers.BooleanField(required=False)


class ScheduleCreateSerializer(ScheduleChangeSerializer):
    name = serializers.CharField(max_length=200)
    task = serializers.CharField(max_length=200)


def _audited(request, action: str, name: str, **details):
    return audited(
        request.user, action, source="api", target_type="schedule", target_id=name, **details
    )


class ScheduleListCreate(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "POST": ADMIN}

    @extend_schema(summary="Every schedule, by name", responses=ScheduleSerializer(many=True))
    def get(self, request):
        return Response(ScheduleSerializer(schedules.list_schedules(), many=True).data)

    @extend_schema(
        summary="Create a schedule (cron, interval or one-off run_at)",
        request=ScheduleCreateSerializer,
        responses={201: ScheduleSerializer},
    )
    def post(self, request):
        body = ScheduleCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        name, task = data.pop("name"), data.pop("task")
        if "timezone" in data:
            data["timezone_name"] = data.pop("timezone")
        with _audited(request, "schedule.create", name, task=task):
            row = schedules.create_schedule(name, task, **data)
        return Response(ScheduleSerializer(row).data, status=status.HTTP_201_CREATED)


class ScheduleDetail(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "PATCH": ADMIN, "PUT": ADMIN, "DELETE": ADMIN}

    @extend_schema(summary="A schedule with its latest runs", responses=ScheduleSerializer)
    def get(self, request, name):
        row = schedules.get_schedule(name)
        runs = schedules.schedule_runs(row.name, limit=20)
        data = {**ScheduleSerializer(row).data, "runs": ScheduleRunSerializer(runs, many=True).data}
        return Response(data)

    @extend_schema(
        summary="Change a schedule; takes effect at the scheduler's next poll",
        request=ScheduleChangeSerializer,
        responses=ScheduleSerializer,
    )
    def patch(self, request, name):
        body = ScheduleChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        with _audited(request, "schedule.update", name, fields=sorted(changes)):
            row = schedules.update_schedule(name, **changes)
        return Response(ScheduleSerializer(row).data)

    put = patch

    @extend_schema(summary="Delete a stored schedule and its history", responses={204: None})
    def delete(self, request, name):
        with _audited(request, "schedule.delete", name):
            schedules.delete_schedule(name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleRunNow(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}

    @extend_schema(
        summary="Schedule the schedule's task now (its regular slots are unaffected)",
        request=None,
        responses={201: ScheduleRunSerializer},
    )
    def post(self, request, name):
        with _audited(request, "schedule.run_now", name) as extra:
            run = schedules.run_now(name)
            extra.update(task_id=str(run.task_id) if run.task_id else "")
        return Response(ScheduleRunSerializer(run).data, status=status.HTTP_201_CREATED)
