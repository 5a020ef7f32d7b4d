"""Payload validation: everything that can be wrong with a payload is found before any write."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from ..conf import taskhub_settings
from ..errors import InvalidTaskRequest
from ..safety.masking import mask
from ..safety.storable import unstorable_reason
from .registry import TaskDefinition


def encode_json(value: Any, *, what: str) -> str:
    """JSON-encode strictly: no NaN, no objects JSON can't represent, nothing a database cannot
    store (NUL, lone surrogates). Input is refused rather than changed: a handler must receive
    exactly what was asked (results and errors are made storable instead:
    taskhub.safety.storable)."""
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidTaskRequest(f"{what} is not JSON-serialisable: {exc}", field=what) from None
    unstorable = unstorable_reason(value, encoded)
    if unstorable is not None:
        raise InvalidTaskRequest(f"{what} {unstorable}", field=what)
    return encoded


def validate_payload(definition: TaskDefinition, payload: Any) -> dict[str, Any]:
    """Return the payload to store, or raise InvalidTaskRequest naming the problem."""
    return json.loads(validated_json(definition, payload))


def validated_json(definition: TaskDefinition, payload: Any) -> str:
    """The payload to store as JSON text, or raise InvalidTaskRequest naming the problem."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidTaskRequest(
            f"payload must be a JSON object, not {type(payload).__name__}", field="payload"
        )
    encoded = encode_json(payload, what="payload")
    limit = taskhub_settings.MAX_PAYLOAD_BYTES
    if len(encoded.encode()) > limit:
        raise InvalidTaskRequest(
            f"payload is {len(encoded.encode())} bytes, over the limit of {limit} bytes",
            field="payload",
        )
    if definition.schema is not None:
        parse_payload(definition, payload)
    return encoded


def parse_payload(definition: TaskDefinition, payload: dict[str, Any]) -> Any:
    """The handler's view of a payload: a schema instance, or the dict itself."""
    if definition.schema is None:
        return payload
    try:
        return definition.schema.model_validate(payload)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"]) or "payload"
            errors.setdefault(f"payload.{location}", []).append(error["msg"])
        summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
        raise InvalidTaskRequest(
            f"invalid payload for {definition.name}: {summary}", errors=errors
        ) from None


def to_jsonable(value: Any) -> Any:
    """Turn a handler's return value into what is stored as the result."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def redact(definition: TaskDefinition | None, payload: Any) -> Any:
    """A copy of the payload with the task's secret fields, secret-looking keys (at any depth)
    and the credentials in URLs masked (taskhub.safety.masking)."""
    return mask(payload, definition.secret_fields if definition else ())
