"""Checks of a request before any view reads it.

413 for request bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE``: Django enforces that limit only
when ``request.body`` is read; DRF's parsers read the stream directly, so without this an
oversize JSON body would be parsed in full. A multipart body (file uploads) may be larger, up to
``DATA_UPLOAD_MAX_MULTIPART_SIZE``: Django applies ``DATA_UPLOAD_MAX_MEMORY_SIZE`` to its form
fields alone, files stream to disk, and each upload's own limit (a KYC document's
``MAX_DOCUMENT_BYTES``) is checked by its view.

400 for a NUL character in the path or the query string: no database text column stores one
(PostgreSQL refuses it), so a lookup or filter with one would fail in the database instead of
being refused as bad input. Bodies are checked by the parsers (``taskhub.console.api.parsers``).
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import JsonResponse

from .parsers import NUL, NUL_MESSAGE


def _limit(request) -> int | None:
    if request.META.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
        return getattr(settings, "DATA_UPLOAD_MAX_MULTIPART_SIZE", None) or (
            settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _too_large(request) -> JsonResponse | None:
    limit = _limit(request)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if limit is not None and length > limit:
        return _error(f"request body is {length} bytes, over the limit of {limit} bytes", 413)
    return None


def _error(message: str, status: int) -> JsonResponse:
    body = {"error": message, "errors": {"non_field_errors": [message]}}
    return JsonResponse(body, status=status)


def _nul_in_url(request) -> JsonResponse | None:
    if NUL in request.path or any(
        NUL in name or any(NUL in value for value in values) for name, values in request.GET.lists()
    ):
        return _error(f"{NUL_MESSAGE} in the URL.", 400)
    return None


def _refused(request) -> JsonResponse | None:
    return _too_large(request) or _nul_in_url(request)


class RequestLimitsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return _refused(request) or self.get_response(request)

    async def _acall(self, request):
        return _refused(request) or await self.get_response(request)
