"""The base of every taskhub API view: its errors take taskhub's shape (``errors.handle_exception``)
whatever the host's ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` says, and it authenticates and
parses as taskhub's API does whatever the host's ``DEFAULT_*`` classes say — so taskhub's API
works with no ``REST_FRAMEWORK`` setting and leaves the host's own API views alone. A view that
sets its own ``permission_classes`` (a role, ``console/api/permissions.py``) or parsers keeps
them. (The OpenAPI document alone needs ``DEFAULT_SCHEMA_CLASS``: drf-spectacular builds each
``@extend_schema`` on it; docs/install.md.)

Domain apps building their API on the console use the same: ``TaskhubAPIView`` in place of DRF's
``APIView``, or ``TaskhubAPIMixin`` first among the bases of a generic view::

    class PaymentDetail(TaskhubAPIMixin, generics.RetrieveAPIView): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from .errors import handle_exception
from .parsers import JSONBodyParser


class TaskhubAPIMixin:
    """Mixin for a DRF view: exceptions become taskhub's error bodies (``{"error": …}``, with
    ``errors`` for bad input); token or session authentication, an authenticated user, JSON
    bodies only (NUL refused). It must come before the DRF view class among the bases."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONBodyParser]

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Any]:
        return handle_exception


class TaskhubAPIView(TaskhubAPIMixin, APIView):
    """DRF's ``APIView`` answering errors in taskhub's shape."""
