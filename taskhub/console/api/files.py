"""``GET /api/images/{name}``: the images ``image.process`` stored, to whoever may read tasks.

The task saves its output through Django's default storage under ``IMAGE_STORAGE_DIR``; a local
folder (``MEDIA_ROOT``) is served by nothing in a Django deployment, so the task's result points
here instead (taskhub/builtins/images.py ``result_url``). A name is one file of that folder —
letters, digits, ``-`` and ``_`` and one of the task's extensions — so no path can leave it;
anything else is a 404, as a file that is not there is.
"""

from __future__ import annotations

import re

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation

from ...conf import taskhub_settings
from .permissions import VIEWER, RolePermission
from .views import TaskhubAPIView

#: What image.process writes (taskhub/builtins/images.py FORMATS), by file extension.
CONTENT_TYPES = {"webp": "image/webp", "png": "image/png", "jpg": "image/jpeg"}
IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,200}\.(webp|png|jpg)")


class AnyAccept(BaseContentNegotiation):
    """The answer is the file whatever the client's Accept header says (an ``<img>`` asks for
    image/* only); errors are still JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ImageFile(TaskhubAPIView):
    permission_classes = [RolePermission]
    roles = {"GET": VIEWER}
    content_negotiation_class = AnyAccept

    @extend_schema(
        summary="An image stored by image.process (its result's url)",
        responses={
            (200, "image/webp"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY),
            404: OpenApiResponse(description="No such image."),
        },
    )
    def get(self, request, name: str):
        found = IMAGE_NAME.fullmatch(name)
        path = f"{taskhub_settings.IMAGE_STORAGE_DIR.strip('/')}/{name}"
        if not found or not default_storage.exists(path):
            raise NotFound("No such image.")
        response = FileResponse(
            default_storage.open(path, "rb"), content_type=CONTENT_TYPES[found[1]]
        )
        response["Content-Disposition"] = f'inline; filename="{name}"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, max-age=3600"
        return response
