"""``http.request``: an outgoing HTTP call with the engine's retries.

2xx → success (status code and a body excerpt as the result); 5xx, timeouts and connection
errors → retried by policy; 4xx → permanent failure (retrying the same request won't help).
Requests go through the SSRF guard (taskhub.safety.net): private targets need ALLOW_PRIVATE_TARGETS.
The body is streamed and counted as it is decompressed: a 2xx body over
``HTTP_MAX_RESPONSE_BYTES`` fails the task for good; of an error answer only an excerpt is read.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, model_validator

from ..conf import taskhub_settings
from ..definitions.registry import task
from ..definitions.retry import Exponential
from ..errors import PermanentError
from ..safety.masking import mask_url
from ..safety.net import guarded_client
from .bodies import read_body, read_excerpt, text_of

BODY_EXCERPT = 2048


class HttpRequest(BaseModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: AnyHttpUrl
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: float = Field(default=10.0, gt=0, le=300)

    model_config = {"populate_by_name": True}

    @model_validator(mode="after")
    def one_body(self) -> HttpRequest:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give json or body, not both")
        return self


class HttpServerError(Exception):
    """The server answered 5xx: worth retrying."""


@task(
    "http.request",
    queue="default",
    schema=HttpRequest,
    retry=Exponential(base=2, cap=300),
    secret_fields=("headers",),
)
def http_request(payload: HttpRequest, ctx) -> dict:
    with (
        guarded_client(timeout=payload.timeout) as client,
        client.stream(
            payload.method,
            str(payload.url),
            headers=payload.headers,
            json=payload.json_body,
            content=payload.body,
        ) as response,
    ):
        status = response.status_code
        ctx.logger.info("%s %s -> %s", payload.method, mask_url(str(payload.url)), status)
        if status < 300:
            limit = int(taskhub_settings.HTTP_MAX_RESPONSE_BYTES)
            body = read_body(response, limit, limit_name="HTTP_MAX_RESPONSE_BYTES")
            return {"status_code": status, "body": text_of(response, body)[:BODY_EXCERPT]}
        # An error answer is reported, not kept: its first bytes say enough.
        excerpt = text_of(response, read_excerpt(response, BODY_EXCERPT))[:200]
    if status >= 500:
        raise HttpServerError(f"server answered {status}: {excerpt}")
    if status >= 400:
        raise PermanentError(f"server answered {status}: {excerpt}")
    raise PermanentError(f"server answered {status} (redirects not followed)")
