"""413 for request bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, before anything reads them.

Django enforces that limit only when ``request.body`` is read; DRF's parsers read the stream
directly, so without this an oversize JSON body would be parsed in full.

A multipart body (file uploads) may be larger, up to ``DATA_UPLOAD_MAX_MULTIPART_SIZE``: Django
applies ``DATA_UPLOAD_MAX_MEMORY_SIZE`` to its form fields alone, files stream to disk, and each
upload's own limit (a KYC document's ``MAX_DOCUMENT_BYTES``) is checked by its view.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import JsonResponse


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
        message = f"request body is {length} bytes, over the limit of {limit} bytes"
        return JsonResponse({"error": message, "errors": {"non_field_errors": [message]}},
                            status=413)  # fmt: skip
    return None


class BodySizeLimitMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return _too_large(request) or self.get_response(request)

    async def _acall(self, request):
        return _too_large(request) or await self.get_response(request)
