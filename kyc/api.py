"""REST endpoints for KYC cases and signed provider callbacks."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from taskhub.console.api.parsers import FormBodyParser, JSONBodyParser, MultiPartBodyParser
from taskhub.console.api.permissions import OPERATOR, VIEWER, RolePermission
from taskhub.console.api.serializers import StrictSerializer
from taskhub.console.api.views import TaskhubAPIMixin, TaskhubAPIView
from taskhub.console.audit import audited

from . import services
from .models import DocumentType, KycCase, KycProvider, UserKycStatus
from .providers import CallbackRejected


class KycCaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = KycCase
        fields = [
            "id",
            "user_id",
            "provider",
            "document_id",
            "document_type",
            "document_name",
            "external_id",
            "submission",
            "status",
            "reasons",
            "workflow_run_id",
            "created_at",
            "updated_at",
            "decided_at",
        ]


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class KycDocumentSerializer(StrictSerializer):
    """The body's shape; ``services.create_case`` checks the rest (exactly one of file and
    document_ref, the file's size, that the reference exists)."""

    user_id = serializers.CharField(max_length=200)
    document_type = serializers.ChoiceField(choices=DocumentType.choices)
    provider = serializers.ChoiceField(choices=KycProvider.choices, required=False)
    email = serializers.EmailField(required=False, allow_blank=True)
    file = serializers.FileField(required=False, help_text="The document (multipart only).")
    document_ref = serializers.CharField(
        required=False, max_length=500, help_text="A stored document, instead of a file."
    )


def _error_body(exc: Exception, errors: dict) -> dict:
    return {"error": str(exc), "errors": errors}


class KycDocumentCreate(TaskhubAPIView):
    """``POST /api/kyc/documents``: multipart (user_id, document_type, provider?, email?, file)
    or JSON with ``document_ref`` instead of a file."""

    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}
    parser_classes = [MultiPartBodyParser, FormBodyParser, JSONBodyParser]

    @extend_schema(
        operation_id="kyc_documents_create",
        request=KycDocumentSerializer,
        responses={201: KycCaseSerializer},
    )
    def post(self, request):
        body = KycDocumentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        upload = data.pop("file", None)
        try:
            with audited(
                request.user, "kyc_case.create", source="api", target_type="kyc_case"
            ) as extra:
                case = services.create_case(data, upload)
                extra.update(target_id=case.id)
        except services.KycRequestError as exc:
            return Response(_error_body(exc, exc.errors), status=exc.status)
        return Response(KycCaseSerializer(case).data, status=status.HTTP_201_CREATED)


class KycCaseList(TaskhubAPIMixin, generics.ListAPIView):
    """``GET /api/kyc/cases`` (filters: user_id, status, provider)."""

    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}
    serializer_class = KycCaseSerializer
    pagination_class = Pagination

    def get_queryset(self):
        rows = KycCase.objects.all()
        for name in ("user_id", "status", "provider"):
            if self.request.query_params.get(name):
                rows = rows.filter(**{name: self.request.query_params[name]})
        return rows


class KycCaseDetail(TaskhubAPIMixin, generics.RetrieveAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}
    queryset = KycCase.objects.all()
    serializer_class = KycCaseSerializer


class UserKycStatusDetail(TaskhubAPIView):
    """``GET /api/kyc/users/{user_id}``: the user's current KYC status."""

    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}

    @extend_schema(operation_id="kyc_user_status", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request, user_id: str):
        row = UserKycStatus.objects.filter(user_id=user_id).first()
        return Response(
            {
                "user_id": user_id,
                "status": row.status if row else "none",
                "case_id": str(row.case_id) if row and row.case_id else None,
            }
        )


class KycRerun(TaskhubAPIView):
    """``POST /api/kyc/cases/{id}/rerun``: submit the document again (operator action)."""

    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}

    @extend_schema(operation_id="kyc_rerun", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk):
        case = generics.get_object_or_404(KycCase, pk=pk)
        with audited(
            request.user, "kyc_case.rerun", source="api", target_type="kyc_case", target_id=case.id
        ) as extra:
            task = services.rerun_check(case)
            extra.update(task_id=str(task.id))
        return Response({"case_id": str(case.id), "task_id": str(task.id)})


@csrf_exempt
@require_POST
def provider_callback(request, provider: str):
    try:
        event, created = services.receive_callback(provider, request.headers, request.body)
    except CallbackRejected as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    return JsonResponse({"received": True, "duplicate": not created, "event_id": event.event_id})
