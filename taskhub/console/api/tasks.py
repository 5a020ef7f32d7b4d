"""``/api/tasks``: schedule, list, inspect, retry, cancel and delete tasks."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from ...engine.enqueue import schedule
from ...models import Task, TaskEvent, TaskLog
from .. import search, services
from ..audit import audited
from .permissions import ADMIN, OPERATOR, VIEWER, RolePermission
from .serializers import (
    BulkTaskRequestSerializer,
    HistoryPageQuerySerializer,
    TaskDetailSerializer,
    TaskEventPageSerializer,
    TaskEventSerializer,
    TaskFilterSerializer,
    TaskListSerializer,
    TaskLogPageSerializer,
    TaskLogSerializer,
    TaskRequestSerializer,
    TaskSerializer,
)
from .views import TaskhubAPIView


class TaskCursorPagination(CursorPagination):
    """Newest first along the created_at index; a bad cursor or limit is a 400, not a 404."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound as exc:  # DRF's answer to a cursor it can't decode
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc


def _filtered(params: dict):
    """The tasks a validated TaskFilterSerializer's data selects (the list, its export)."""
    tasks = Task.objects.all()
    lookups = {
        "status": "status__in",
        "queue": "queue",
        "task": "name",
        "correlation_id": "correlation_id",
        "user_id": "user_id",
        "created_after": "created_at__gte",
        "created_before": "created_at__lt",
    }
    for param, lookup in lookups.items():
        if params.get(param) not in (None, "", set()):
            value = params[param]
            tasks = tasks.filter(**{lookup: list(value) if param == "status" else value})
    if params.get("q"):
        tasks = search.filter_tasks(tasks, params["q"])  # checked by the serializer: parses
    return tasks


class TaskListCreate(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "POST": OPERATOR}

    @extend_schema(
        summary="List tasks, newest first (cursor pagination)",
        operation_id="tasks_list",
        parameters=[TaskFilterSerializer],
        responses=TaskListSerializer,
    )
    def get(self, request):
        filters = TaskFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = TaskCursorPagination()
        page = paginator.paginate_queryset(_filtered(filters.validated_data), request, view=self)
        return paginator.get_paginated_response(TaskSerializer(page, many=True).data)

    @extend_schema(
        summary="Schedule a task",
        request=TaskRequestSerializer,
        responses={201: TaskSerializer},
    )
    def post(self, request):
        body = TaskRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        name, payload = data.pop("task"), data.pop("payload", {})
        with audited(request.user, "task.create", source="api", target_type="task") as extra:
            task = schedule(name, payload, **data)
            extra.update(task=name, target_id=task.id)
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskBulkCreate(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}

    @extend_schema(
        summary="Schedule many tasks at once (all or nothing)",
        request=BulkTaskRequestSerializer,
        responses={201: TaskSerializer(many=True)},
    )
    def post(self, request):
        body = BulkTaskRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        requests = body.validated_data["tasks"]
        with audited(
            request.user, "task.bulk_create", source="api", target_type="task", count=len(requests)
        ):
            tasks = services.schedule_batch(requests)
        return Response(TaskSerializer(tasks, many=True).data, status=status.HTTP_201_CREATED)


_ID = OpenApiParameter("task_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class TaskDetail(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "DELETE": ADMIN}
    error_codes = {"DELETE": [409]}  # a task not finished yet

    @extend_schema(
        summary="A task with its newest events and logs (the rest: /events, /logs)",
        parameters=[_ID],
        responses=TaskDetailSerializer,
    )
    def get(self, request, task_id):
        task = services.get_task(task_id)
        return Response(TaskDetailSerializer(task, context={"request": request}).data)

    @extend_schema(
        summary="Delete a finished task and its history", parameters=[_ID], responses={204: None}
    )
    def delete(self, request, task_id):
        with audited(
            request.user, "task.delete", source="api", target_type="task", target_id=task_id
        ):
            services.delete_task(task_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskRetry(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    error_codes = {"POST": [409]}  # only a failed or cancelled task, not a workflow step

    @extend_schema(
        summary="Run a failed or cancelled task again",
        parameters=[_ID],
        request=None,
        responses=TaskSerializer,
    )
    def post(self, request, task_id):
        with audited(
            request.user, "task.retry", source="api", target_type="task", target_id=task_id
        ):
            task = services.retry_task(task_id, actor=request.user.get_username())
        return Response(TaskSerializer(task).data)


class TaskCancel(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    error_codes = {"POST": [409]}  # a task already finished

    @extend_schema(
        summary="Cancel a waiting task, or ask a running one to stop",
        parameters=[_ID],
        request=None,
        responses=TaskSerializer,
    )
    def post(self, request, task_id):
        with audited(
            request.user, "task.cancel", source="api", target_type="task", target_id=task_id
        ):
            task = services.cancel_task(task_id, actor=request.user.get_username())
        return Response(TaskSerializer(task).data)


class HistoryPagination(TaskCursorPagination):
    """A task's events or logs, oldest first, along the (task, id) index."""

    ordering = "id"
    page_size = 100


def _history_page(view: TaskhubAPIView, request, rows, serializer):
    query = HistoryPageQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    paginator = HistoryPagination()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


class TaskEvents(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="Every event of a task, oldest first (cursor pagination)",
        parameters=[_ID, HistoryPageQuerySerializer],
        responses=TaskEventPageSerializer,
    )
    def get(self, request, task_id):
        task = services.get_task(task_id)
        return _history_page(
            self, request, TaskEvent.objects.filter(task=task), TaskEventSerializer
        )


class TaskLogs(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="Every log line of a task, oldest first (cursor pagination)",
        parameters=[_ID, HistoryPageQuerySerializer],
        responses=TaskLogPageSerializer,
    )
    def get(self, request, task_id):
        task = services.get_task(task_id)
        return _history_page(self, request, TaskLog.objects.filter(task=task), TaskLogSerializer)
