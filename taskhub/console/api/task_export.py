"""``GET /api/tasks/export``: the task list's filters (``q`` included), every matching row, as a
CSV or JSON Lines download (taskhub.console.export streams it)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer

from ..audit import record
from ..export import FORMATS, export_response
from ..task_filters import filtered_tasks  # one place decides what the list's filters select
from .permissions import VIEWER, RolePermission
from .serializers import TaskFilterSerializer
from .views import TaskhubAPIView


class TaskExportQuerySerializer(TaskFilterSerializer):
    format = serializers.ChoiceField(
        choices=sorted(FORMATS), help_text="csv, or jsonl (JSON Lines: also payload and result)."
    )
    cursor = None  # every matching row, not a page
    limit = None


class _FormatIsTheFileFormat(DefaultContentNegotiation):
    """``?format=`` names the download's format here, not one of DRF's renderers (which would
    answer 404 for ``csv``); errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class TaskExport(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _FormatIsTheFileFormat

    @extend_schema(
        summary="Download the tasks the list's filters select, as CSV or JSON Lines (streamed)",
        operation_id="tasks_export",
        parameters=[TaskExportQuerySerializer],
        responses={
            (200, media_type.split(";")[0]): OpenApiResponse(
                OpenApiTypes.STR, description=f"The tasks, newest first, as {name}."
            )
            for name, media_type in FORMATS.items()
        },
    )
    def get(self, request):
        query = TaskExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = dict(query.validated_data)
        file_format = filters.pop("format")
        record(
            request.user,
            "task.export",
            source="api",
            target_type="task",
            format=file_format,
            filters={
                k: sorted(v) if isinstance(v, set | list) else str(v) for k, v in filters.items()
            },
        )
        return export_response(filtered_tasks(filters), file_format)
