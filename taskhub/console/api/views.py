"""The base of every taskhub API view: its errors take taskhub's shape (``errors.handle_exception``)
whatever the host's ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` says, so taskhub needs no global DRF
setting and leaves the host's own API views' errors alone.

Domain apps building their API on the console use the same: ``TaskhubAPIView`` in place of DRF's
``APIView``, or ``TaskhubErrors`` first among the bases of a generic view::

    class PaymentDetail(TaskhubErrors, generics.RetrieveAPIView): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.views import APIView

from .errors import handle_exception


class TaskhubErrors:
    """Mixin for a DRF view: exceptions become taskhub's error bodies (``{"error": …}``, with
    ``errors`` for bad input). It must come before the DRF view class among the bases."""

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Any]:
        return handle_exception


class TaskhubAPIView(TaskhubErrors, APIView):
    """DRF's ``APIView`` answering errors in taskhub's shape."""
