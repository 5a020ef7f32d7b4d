"""``/api/tasks``: schedule, list, inspect, retry, cancel and delete tasks, one by one or every
task a filter matches."""

from __future__ import annotations

from django.db import transaction
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from ...engine.enqueue import schedule
from ...models import TaskEvent, TaskLog
from .. import bulk, bulk_jobs, services
from ..audit import audited
from ..task_filters import filtered_tasks
from .permissions import ADMIN, OPERATOR, VIEWER, RolePermission
from .serializers import (
    BulkActionRequestSerializer,
    BulkActionResultSerializer,
    BulkActionScheduledSerializer,
    BulkCountChangedSerializer,
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
        page = paginator.paginate_queryset(
            filtered_tasks(filters.validated_data), request, view=self
        )
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


class TaskBulkAction(TaskhubAPIView):
    """``POST /api/tasks/actions/<retry|cancel|delete>``: the action on every task a filter
    matches, in batches (taskhub.console.bulk). Made per action by :func:`bulk_action_view`."""

    permission_classes = [RolePermission]
    action_name = ""

    def post(self, request):
        body = BulkActionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        tasks = filtered_tasks(data["filter"])
        expected = data.get("expected_count")
        try:
            counted = bulk.checked_count(self.action_name, tasks, expected_count=expected)
            if data["dry_run"]:
                result = bulk.BulkResult(counted.matched, counted.eligible, 0, 0)
            elif bulk_jobs.in_background(counted, forced=data["background"]):
                return self._scheduled(request, data, counted)
            else:
                result = bulk.run(
                    self.action_name,
                    tasks,
                    user=request.user,
                    source="api",
                    filters={**data["filter"], **({"all": True} if data["all"] else {})},
                    counted=counted,
                )
        except bulk.CountChanged as exc:
            body = {"error": str(exc), "matched": exc.matched, "expected_count": exc.expected}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response({**result.as_dict(), "dry_run": data["dry_run"]})

    def _scheduled(self, request, data, counted: bulk.BulkCount) -> Response:
        """More eligible rows than BULK_ACTION_INLINE_MAX (or ``background``): the action as a
        ``taskhub.bulk_action`` task, answered 202 with where to follow it."""
        received = request.data.get("filter") or {}
        job = bulk_jobs.schedule_action(
            self.action_name,
            user=request.user,
            source="api",
            filters=dict(received),
            everything=data["all"],
            counted=counted,
            expected_count=data.get("expected_count"),
        )
        url = reverse("taskhub:task-detail", kwargs={"task_id": job.id})
        return Response(
            {
                "matched": counted.matched,
                "eligible": counted.eligible,
                "task_id": str(job.id),
                "status_url": request.build_absolute_uri(url),
            },
            status=status.HTTP_202_ACCEPTED,
        )


_BULK_SUMMARIES = {
    "retry": "Retry every failed or cancelled task a filter matches",
    "cancel": "Cancel every waiting task a filter matches; ask running ones to stop",
    "delete": "Delete every finished task a filter matches, with its history",
}


def bulk_action_view(action: str):
    view = type(
        f"TaskBulk{action.title()}",
        (TaskBulkAction,),
        {"action_name": action, "roles": {"POST": bulk.ACTIONS[action]}},
    )

    def post(self, request):
        return TaskBulkAction.post(self, request)

    view.post = extend_schema(
        summary=_BULK_SUMMARIES[action],
        description=f"Acts on {bulk.RULES[action]}; the other matched tasks are skipped. "
        "Counts first: with expected_count, another count is a 409 and nothing changes; "
        "dry_run only counts. More eligible tasks than BULK_ACTION_INLINE_MAX (or "
        '"background": true) schedule the action as a taskhub.bulk_action task: 202 with the '
        "task's id and status_url, its progress and, once done, its result (these counts).",
        request=BulkActionRequestSerializer,
        responses={
            200: BulkActionResultSerializer,
            202: BulkActionScheduledSerializer,
            409: BulkCountChangedSerializer,
        },
        operation_id=f"tasks_actions_{action}",
    )(post)
    # Each batch commits on its own, even in a project with ATOMIC_REQUESTS.
    return transaction.non_atomic_requests(view.as_view())


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
