"""``http.request``: an outgoing HTTP call with the engine's retries.

2xx → success (status code and a body excerpt as the result); 5xx, timeouts and connection
errors → retried by policy; 4xx → permanent failure (retrying the same request won't help).
Requests go through the SSRF guard (taskhub.net): private targets need ALLOW_PRIVATE_TARGETS.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, model_validator

from ..errors import PermanentError
from ..masking import mask_url
from ..net import guarded_client
from ..registry import task
from ..retry import Exponential

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
    with guarded_client(timeout=payload.timeout) as client:
        response = client.request(
            payload.method, str(payload.url), headers=payload.headers,
            json=payload.json_body, content=payload.body,
        )  # fmt: skip
    excerpt = response.text[:BODY_EXCERPT]
    ctx.logger.info("%s %s -> %s", payload.method, mask_url(str(payload.url)), response.status_code)
    if response.status_code >= 500:
        raise HttpServerError(f"server answered {response.status_code}: {excerpt[:200]}")
    if response.status_code >= 400:
        raise PermanentError(f"server answered {response.status_code}: {excerpt[:200]}")
    if response.status_code >= 300:
        raise PermanentError(f"server answered {response.status_code} (redirects not followed)")
    return {"status_code": response.status_code, "body": excerpt}
