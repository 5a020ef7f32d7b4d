"""One exception handler maps domain errors to responses, so views never catch them.

Every error body has ``error`` (a sentence) and, for bad input, ``errors`` (field → messages).
Views of the established task-queue API set ``error_envelope = {"success": False}`` to keep
their clients' shape.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ...errors import InvalidTaskRequest, InvalidTransition, TaskhubError, TaskNotFound
from ..search import SearchError


class QueueNotFound(exceptions.NotFound):
    default_detail = "No such queue."


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            return (
                f"{field}: {_first_message(value)}"
                if field != "non_field_errors"
                else (_first_message(value))
            )
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def handle_exception(exc, context):
    response = _handle(exc, context)
    envelope = getattr(context.get("view"), "error_envelope", None)
    if envelope and response is not None and isinstance(response.data, dict):
        # The task-queue API's clients read ``message`` on failures as on successes.
        response.data = {**envelope, "message": response.data.get("error", ""), **response.data}
    return response


def _handle(exc, context):
    view = context.get("view")
    envelope: dict = {}
    if isinstance(exc, InvalidTaskRequest):
        errors = exc.errors
        rename = getattr(view, "rename_error_fields", None)
        if rename:
            errors = rename(errors)
        body = {"error": str(exc), "errors": errors}
        return Response({**envelope, **body}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, TaskNotFound) or (
        isinstance(exc, TaskhubError) and isinstance(exc, LookupError)
    ):  # ScheduleNotFound, and domain apps' lookups (EndpointNotFound …) alike
        return Response({**envelope, "error": str(exc)}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, SearchError):  # a search a view did not validate first (?q=)
        body = {"error": f"q: {exc}", "errors": {"q": [str(exc)]}}
        return Response({**envelope, **body}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, InvalidTransition):
        return Response({**envelope, "error": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, exceptions.ValidationError):
        body = {"error": _first_message(exc.detail), "errors": _as_field_errors(exc.detail)}
        return Response({**envelope, **body}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.ParseError):
        body = {"error": str(exc.detail), "errors": {"non_field_errors": [str(exc.detail)]}}
        return Response({**envelope, **body}, status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data = {**envelope, "error": str(response.data["detail"])}
    return response


def _as_field_errors(detail):
    if isinstance(detail, dict):
        return detail
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def not_found(request, exception=None):
    """Django's 404 for a URL no route matches: JSON under ``/api/``, as the API's own 404s
    are (a path parameter holding a ``/`` lands here), the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    return page_not_found(request, exception)
