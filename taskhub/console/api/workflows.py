"""``/api/workflows`` and ``/api/workflow-definitions``: start, list, inspect and steer workflow
runs; create, change and delete stored definitions.

Views are thin: a serializer checks the body's shape, one service call acts
(``taskhub.workflows.start`` / ``operations`` / ``definitions``). Their InvalidWorkflow is a 400,
a missing run or definition a 404 and a forbidden transition a 409, through the API's exception
handler; every mutation is recorded in the audit log in the transaction that performs it.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from ...workflows import definitions, operations
from ...workflows.document import document_from_spec, spec_from_document
from ...workflows.models import FailurePolicy, WorkflowDefinition, WorkflowRun, WorkflowStatus
from ...workflows.start import start_workflow
from ...workflows.stored import mask_workflow_spec
from ..audit import audited
from ..task_filters import apply_lookups
from .permissions import ADMIN, OPERATOR, VIEWER, RolePermission
from .serializers import StrictSerializer, TaskFilterSerializer
from .tasks import TaskCursorPagination
from .views import TaskhubAPIView

MAX_DEADLINE = 366 * 86400


# -- request bodies ------------------------------------------------------------------------------
class WorkflowStartSerializer(StrictSerializer):
    definition = serializers.CharField(
        max_length=200, help_text="A workflow registered in Python or a stored definition."
    )
    input = serializers.JSONField(required=False, default=dict, help_text="A JSON object.")
    idempotency_key = serializers.CharField(
        required=False, max_length=255, help_text="A second start with this key returns the run."
    )
    context = serializers.JSONField(required=False, help_text="Shared, read-only for steps.")
    deadline_seconds = serializers.FloatField(
        required=False,
        min_value=0.001,
        max_value=MAX_DEADLINE,
        help_text="A run still going this many seconds after it started is cancelled.",
    )
    on_failure = serializers.ChoiceField(choices=FailurePolicy.choices, required=False)
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="A stored definition's version; default newest."
    )
    correlation_id = serializers.CharField(required=False, max_length=200)
    user_id = serializers.CharField(required=False, max_length=200)


class WorkflowCancelSerializer(StrictSerializer):
    compensate = serializers.BooleanField(
        required=False, default=False, help_text="Then undo the completed steps, newest first."
    )
    reason = serializers.CharField(required=False, default="", max_length=1000, allow_blank=True)


class ResolveSerializer(StrictSerializer):
    note = serializers.CharField(required=False, default="", max_length=1000, allow_blank=True)


class WorkflowFilterSerializer(TaskFilterSerializer):
    """``?status=failed,compensation_failed&definition=orders.fulfil&created_after=…``"""

    status = serializers.MultipleChoiceField(choices=WorkflowStatus.choices, required=False)
    definition = serializers.CharField(required=False, max_length=200)
    queue = None
    task = None


SPEC_HELP = '{"initialTask": {...}, "transitions": {"step": {...}}}'
DOCUMENT_HELP = (
    'Instead of spec, the Queue Worker document\'s shape: {"initialTask": "<step name>", '
    '"transitions": [{"name": "<step name>", "type": "<task>", ...}]}; a transition without '
    "after follows the step before it."
)
#: The document's spelling of a field → the one it stands for. A body gives one or the other.
DOCUMENT_ALIASES = {"definition": "spec", "isActive": "is_active"}


class DefinitionChangeSerializer(StrictSerializer):
    """Today's fields, and the document's ``definition`` / ``isActive`` in their place;
    validated data is in today's names, a document-shaped definition translated to a spec."""

    name = serializers.CharField(max_length=200, required=False)
    version = serializers.IntegerField(min_value=1, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    spec = serializers.JSONField(required=False, help_text=SPEC_HELP)
    definition = serializers.JSONField(required=False, help_text=DOCUMENT_HELP)
    is_active = serializers.BooleanField(required=False)
    isActive = serializers.BooleanField(
        required=False, help_text="is_active, as the document spells it"
    )
    on_failure = serializers.ChoiceField(choices=FailurePolicy.choices, required=False)

    def validate(self, data):
        for alias, name in DOCUMENT_ALIASES.items():
            if alias in data and name in data:
                message = f"give {name} or {alias} (the document's shape), not both"
                raise serializers.ValidationError({alias: [message], name: [message]})
        data = dict(data)
        if "definition" in data:
            # Translated here, at the API's edge: one shape is stored, compiled and run.
            data["spec"] = spec_from_document(data.pop("definition"))
        if "isActive" in data:
            data["is_active"] = data.pop("isActive")
        return data


class DefinitionCreateSerializer(DefinitionChangeSerializer):
    name = serializers.CharField(max_length=200)

    def validate(self, data):
        if "spec" not in data and "definition" not in data:
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        "a definition needs its steps: spec (the initialTask / transitions "
                        "object) or definition (the document's shape)"
                    ]
                }
            )
        return super().validate(data)


# -- response shapes (what the services return, documented for the schema) -------------------
class WorkflowRunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    definition = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=WorkflowStatus.choices)
    on_failure = serializers.ChoiceField(choices=FailurePolicy.choices)
    error = serializers.CharField()
    idempotency_key = serializers.CharField(allow_null=True)
    user_id = serializers.CharField()
    correlation_id = serializers.CharField()
    deadline_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class WorkflowStepSerializer(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField(help_text="forward or compensation")
    task_id = serializers.UUIDField()
    task = serializers.CharField()
    queue = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField()
    trigger = serializers.CharField()
    compensation = serializers.CharField(allow_null=True)
    compensates = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)


class WorkflowEdgeSerializer(serializers.Serializer):
    from_ = serializers.CharField()
    to = serializers.CharField()
    resolved = serializers.BooleanField()
    satisfied = serializers.BooleanField()
    when = serializers.JSONField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class WorkflowEventSerializer(serializers.Serializer):
    kind = serializers.CharField()
    at = serializers.DateTimeField()
    data = serializers.JSONField()


class WorkflowRunDetailSerializer(WorkflowRunSerializer):
    input = serializers.JSONField()
    context = serializers.JSONField()
    steps = WorkflowStepSerializer(many=True)
    edges = WorkflowEdgeSerializer(many=True)
    events = WorkflowEventSerializer(many=True)


class WorkflowRunListSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = WorkflowRunSerializer(many=True)


class WorkflowDefinitionSerializer(serializers.ModelSerializer):
    """A stored definition in both shapes: ``spec`` / ``is_active`` and the document's
    ``definition`` / ``isActive`` (the same steps, secrets masked in both)."""

    definition = serializers.SerializerMethodField(
        help_text="The spec in the document's shape: steps in the order they can run, after "
        "left out where it is the step before."
    )
    isActive = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = WorkflowDefinition
        fields = (
            "id",
            "name",
            "version",
            "description",
            "spec",
            "definition",
            "is_active",
            "isActive",
            "on_failure",
            "created_at",
            "updated_at",
        )

    def to_representation(self, instance):
        shown = super().to_representation(instance)
        shown["spec"] = mask_workflow_spec(shown["spec"])  # its steps' secrets never leave
        return shown

    @extend_schema_field({"type": "object", "nullable": True})
    def get_definition(self, row: WorkflowDefinition) -> dict | None:
        return document_from_spec(mask_workflow_spec(row.spec))


def detail(run: WorkflowRun) -> dict:
    """A run with its steps, edges and its own timeline."""
    return {**operations.run_detail(run), "events": operations.run_events(run)}


# -- runs ----------------------------------------------------------------------------------------
def _filtered(params: dict):
    lookups = {
        "status": "status__in",
        "definition": "name",
        "correlation_id": "correlation_id",
        "user_id": "user_id",
        "created_after": "created_at__gte",
        "created_before": "created_at__lt",
    }
    return apply_lookups(WorkflowRun.objects.all(), params, lookups)


def _audited(request, action: str, run_id="", **details):
    return audited(
        request.user, action, source="api", target_type="workflow_run", target_id=run_id, **details
    )


def _actor(request) -> str:
    return request.user.get_username()


class WorkflowListCreate(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "POST": OPERATOR}

    @extend_schema(
        summary="List workflow runs, newest first (cursor pagination)",
        operation_id="workflows_list",
        parameters=[WorkflowFilterSerializer],
        responses=WorkflowRunListSerializer,
    )
    def get(self, request):
        filters = WorkflowFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = TaskCursorPagination()
        page = paginator.paginate_queryset(_filtered(filters.validated_data), request, view=self)
        return paginator.get_paginated_response([operations.run_summary(r) for r in page])

    @extend_schema(
        summary="Start a workflow run (an existing run with the same idempotency key → 200)",
        request=WorkflowStartSerializer,
        responses={201: WorkflowRunDetailSerializer, 200: WorkflowRunDetailSerializer},
    )
    def post(self, request):
        body = WorkflowStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        name, deadline = data.pop("definition"), data.pop("deadline_seconds", None)
        with _audited(request, "workflow.start", definition=name) as extra:
            run = start_workflow(name, data.pop("input"), deadline=deadline, **data)
            extra.update(target_id=run.id, created=run.created)
        code = status.HTTP_201_CREATED if run.created else status.HTTP_200_OK
        return Response(detail(run), status=code)


_ID = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class WorkflowDetail(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="A run with its steps, edges and timeline",
        parameters=[_ID],
        responses=WorkflowRunDetailSerializer,
    )
    def get(self, request, run_id):
        return Response(detail(operations.get_run(run_id)))


class WorkflowCancel(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    error_codes = {"POST": [409]}  # only a running run

    @extend_schema(
        summary="Cancel a running run: nothing new starts; optionally compensate what completed",
        parameters=[_ID],
        request=WorkflowCancelSerializer,
        responses=WorkflowRunDetailSerializer,
    )
    def post(self, request, run_id):
        body = WorkflowCancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        compensate, reason = body.validated_data["compensate"], body.validated_data["reason"]
        with _audited(request, "workflow.cancel", run_id, compensate=compensate):
            run = operations.cancel_run(
                run_id, compensate=compensate, reason=reason, actor=_actor(request)
            )
        return Response(detail(run))


class WorkflowRetry(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    error_codes = {"POST": [409]}  # only a failed or cancelled run, never a compensated one

    @extend_schema(
        summary="Run a failed or cancelled run again from where it stopped "
        "(completed steps never re-run)",
        parameters=[_ID],
        request=None,
        responses=WorkflowRunDetailSerializer,
    )
    def post(self, request, run_id):
        with _audited(request, "workflow.retry", run_id):
            run = operations.retry_run(run_id, actor=_actor(request))
        return Response(detail(run))


class CompensationAction(TaskhubAPIView):
    """The ways out of ``compensation_failed``: retry the failed compensation, skip it and go
    on, or mark the run resolved (compensations not yet attempted are cancelled)."""

    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    error_codes = {"POST": [409]}  # only a run in compensation_failed
    verb = ""

    def post(self, request, run_id):
        note = ""
        if self.verb == "resolve":
            body = ResolveSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            note = body.validated_data["note"]
        with _audited(request, f"workflow.compensation_{self.verb}", run_id):
            actor = _actor(request)
            if self.verb == "retry":
                run = operations.retry_compensation(run_id, actor=actor)
            elif self.verb == "skip":
                run = operations.skip_compensation(run_id, actor=actor)
            else:
                run = operations.resolve_compensation(run_id, actor=actor, note=note)
        run.refresh_from_db()
        return Response(detail(run))


_COMPENSATION_SUMMARIES = {
    "retry": "Run the failed compensation again; the unwinding then goes on",
    "skip": "Leave the failed compensation as it is and go on with the next one",
    "resolve": "Mark the run compensated (settled by hand); the rest is not attempted",
}


def compensation_view(verb: str):
    view = type(f"Compensation{verb.title()}", (CompensationAction,), {"verb": verb})

    def post(self, request, run_id):
        return CompensationAction.post(self, request, run_id)

    view.post = extend_schema(
        summary=_COMPENSATION_SUMMARIES[verb],
        parameters=[_ID],
        request=ResolveSerializer if verb == "resolve" else None,
        responses=WorkflowRunDetailSerializer,
        operation_id=f"workflows_compensation_{verb}",
    )(post)
    return view.as_view()


# -- stored definitions ----------------------------------------------------------------------
def _definition_audited(request, action: str, target="", **details):
    return audited(
        request.user,
        action,
        source="api",
        target_type="workflow_definition",
        target_id=target,
        **details,
    )


class DefinitionListCreate(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "POST": OPERATOR}

    @extend_schema(
        summary="Stored workflow definitions, by name and newest version first",
        parameters=[OpenApiParameter("name", OpenApiTypes.STR)],
        responses=WorkflowDefinitionSerializer(many=True),
    )
    def get(self, request):
        rows = WorkflowDefinition.objects.all()
        if request.query_params.get("name"):
            rows = rows.filter(name=request.query_params["name"])
        return Response(WorkflowDefinitionSerializer(rows, many=True).data)

    @extend_schema(
        summary="Store a definition (checked first: unknown task, cycle, dangling step → 400)",
        request=DefinitionCreateSerializer,
        responses={201: WorkflowDefinitionSerializer},
    )
    def post(self, request):
        body = DefinitionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        with _definition_audited(request, "workflow_definition.create", name=data["name"]) as extra:
            row = definitions.create_definition(**data)
            extra.update(target_id=row.id, version=row.version)
        return Response(WorkflowDefinitionSerializer(row).data, status=status.HTTP_201_CREATED)


_DEFINITION_ID = OpenApiParameter("definition_id", OpenApiTypes.INT, OpenApiParameter.PATH)


class DefinitionDetail(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER, "PATCH": OPERATOR, "PUT": OPERATOR, "DELETE": ADMIN}

    @extend_schema(
        summary="A stored definition",
        parameters=[_DEFINITION_ID],
        responses=WorkflowDefinitionSerializer,
    )
    def get(self, request, definition_id):
        return Response(
            WorkflowDefinitionSerializer(definitions.get_definition(definition_id)).data
        )

    @extend_schema(
        summary="Change a definition (checked as a whole; runs already started keep theirs)",
        parameters=[_DEFINITION_ID],
        request=DefinitionChangeSerializer,
        responses=WorkflowDefinitionSerializer,
    )
    def patch(self, request, definition_id):
        body = DefinitionChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        with _definition_audited(
            request, "workflow_definition.update", definition_id, fields=sorted(changes)
        ):
            row = definitions.update_definition(definition_id, **changes)
        return Response(WorkflowDefinitionSerializer(row).data)

    put = patch

    @extend_schema(
        summary="Delete a stored definition", parameters=[_DEFINITION_ID], responses={204: None}
    )
    def delete(self, request, definition_id):
        with _definition_audited(request, "workflow_definition.delete", definition_id):
            definitions.delete_definition(definition_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
