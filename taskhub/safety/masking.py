"""Masking secrets out of what is shown or logged: payloads, workflow inputs and definitions, URLs
(a stored workflow definition step by step: taskhub.workflows.stored.mask_workflow_spec).

A value is masked when its key is one of the task's ``secret_fields`` or looks like a secret
(``password``, ``api_key``, ``Authorization`` …) at any depth, and a URL anywhere in a value
loses its userinfo and the values of its secret-looking query parameters (``?token=``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

#: Words that make a key name a secret wherever they appear in it (compared lower-case, with
#: ``-`` read as ``_``): ``password``, ``X-Api-Key``, ``client_secret``, ``access_token`` …
SECRET_WORDS = (
    *("password", "passwd", "secret", "token", "api_key", "apikey", "authorization"),
    *("cookie", "private_key", "credential", "session"),
)
#: Query parameter names that carry a credential although they are not secret-looking words.
SECRET_QUERY_PARAMETERS = frozenset({"key", "sig", "signature", "auth", "code", "access_key"})

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def is_secret_key(name: str) -> bool:
    normal = name.lower().replace("-", "_")
    return any(word in normal for word in SECRET_WORDS)


def mask_url(url: str) -> str:
    """The URL with its userinfo and secret query values masked; anything else unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host: not a URL we can take apart
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_parameter(name) for name, _ in pairs):
            masked = [(n, MASK if _secret_parameter(n) else v) for n, v in pairs]
            query = urlencode(masked, safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _secret_parameter(name: str) -> bool:
    return name.lower() in SECRET_QUERY_PARAMETERS or is_secret_key(name)


def mask_urls_in(text: str) -> str:
    """Every URL inside a free text (a log line, an error) masked."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: mask_url(match.group(0)), text)


def mask(value: Any, secret_fields: Iterable[str] = ()) -> Any:
    """A copy of a JSON value with secrets masked, at any depth."""
    secret = frozenset(secret_fields)
    return _mask(value, secret)


def _mask(value: Any, secret: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: MASK if (k in secret or is_secret_key(str(k))) else _mask(v, secret)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask(v, secret) for v in value]
    if isinstance(value, str):
        return mask_urls_in(value)
    return value
