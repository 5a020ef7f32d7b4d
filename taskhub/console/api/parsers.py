"""The API's request parsers: JSON only, unless a view documents another media type.

A NUL character (``\\u0000``) is valid JSON but no database text column stores it (PostgreSQL
refuses it in text and jsonb), so a body with one in any key or string is refused here, as a
400 naming the top-level field that holds it, before any serializer or service sees it.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

NUL = "\x00"
NUL_MESSAGE = "NUL characters (\\u0000) are not allowed"


def contains_nul(value: Any) -> bool:
    """True when a NUL is in any string of a parsed JSON value, keys included."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


def _field_holding_nul(data: Any) -> str:
    """The top-level field whose key or value holds the NUL, as the API's errors name fields."""
    if isinstance(data, dict):
        for name, value in data.items():
            if NUL not in name and contains_nul(value):
                return name
    return "non_field_errors"


class JSONBodyParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise ValidationError(
                {_field_holding_nul(data): [f"{NUL_MESSAGE} in JSON keys or strings."]}
            )
        return data


def _refuse_nul_fields(data) -> None:
    for name in data:
        if NUL in name or any(NUL in str(value) for value in data.getlist(name)):
            raise ParseError(f"{NUL_MESSAGE} in form fields.")


class FormBodyParser(FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _refuse_nul_fields(data)
        return data


class MultiPartBodyParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        _refuse_nul_fields(result.data)
        return result
