"""The OpenAPI schema's error answers: every status code a view can return, with its shape.

Views document their successes (and any error with a shape of its own) with ``extend_schema``;
this adds the errors every view shares, so none goes undocumented:

- 400 everywhere: bad input in the body or query, or a NUL character anywhere in the URL
  (``taskhub.console.api.limits``);
- 401 and 403 everywhere: every view needs a role (``taskhub.console.api.permissions``);
- 404 where the path names something (an id, a name, a queue);
- 413 and 415 where there is a request body: too large, or not a media type the view parses;
- the codes a view lists in ``error_codes`` by method, e.g. ``{"POST": [409]}`` for an action
  the row's current state forbids.

The body is ``{"error": …, "errors": {field: [messages]}}``; the task-queue API's views add their
envelope (``error_envelope``: ``success`` / ``found``), which boundary errors answered before
the view (a NUL in the URL, an unknown path) do not carry, so its fields are optional.
"""

from __future__ import annotations

import functools

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

_DESCRIPTIONS = {
    400: "Bad input: the body, a query parameter or the URL (fields named in errors).",
    401: "No credentials, or wrong ones.",
    403: "The user's role does not allow this.",
    404: "Nothing at this path (no such id, name or queue).",
    409: "The action conflicts with the current state.",
    413: "The request body is over the size limit.",
    415: "The body's media type is not one this operation accepts.",
    502: "A provider this action calls could not be reached; nothing changed.",
}


def _error_fields(*, error_required: bool = True) -> dict:
    return {
        "error": serializers.CharField(
            required=error_required, help_text="What went wrong, in a sentence."
        ),
        "errors": serializers.DictField(
            required=False, help_text="Field name → messages (nested for nested fields)."
        ),
    }


def _envelope_field(name: str) -> serializers.Field:
    if name == "message":
        return serializers.CharField(required=False, help_text="The same as error.")
    return serializers.BooleanField(required=False, help_text="false when the view answered.")


def error_serializer(envelope: dict | None) -> serializers.Serializer:
    """The error body of a view with this ``error_envelope``."""
    return _error_serializer(tuple(envelope or ()))


@functools.cache
def _error_serializer(envelope: tuple[str, ...]) -> serializers.Serializer:
    if not envelope:
        return inline_serializer("Error", _error_fields())
    # An envelope view may answer with its envelope alone ({"found": false} for a job in
    # another queue); boundary errors answer without it: so no field is always there.
    fields = {name: _envelope_field(name) for name in (*envelope, "message")}
    component = "ErrorWith" + "".join(name.title() for name in envelope)
    return inline_serializer(component, {**fields, **_error_fields(error_required=False)})


class ApiSchema(AutoSchema):
    def _error_codes(self) -> list[int]:
        codes = [400, 401, 403]
        if "{" in self.path:
            codes.append(404)
        if self._has_request_body():
            codes += [413, 415]
        codes += getattr(self.view, "error_codes", {}).get(self.method, [])
        return sorted(set(codes))

    def _has_request_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        body = error_serializer(getattr(self.view, "error_envelope", None))
        for code in self._error_codes():
            if str(code) not in responses:
                response = self._get_response_for_code(body, str(code), direction=direction)
                responses[str(code)] = {**response, "description": _DESCRIPTIONS[code]}
        return responses
