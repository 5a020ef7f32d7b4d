"""Making values from outside storable: the one rule for text the engine did not write itself.

Two kinds of character cannot be stored by every supported database: NUL (PostgreSQL refuses it
in ``text`` and, as ``\\u0000``, in ``jsonb``) and lone surrogates (half of a UTF-16 pair, which
no UTF-8 encoder accepts — SQLite's driver refuses them too). Handler results, error messages,
tracebacks, log lines, event data and webhook responses come from code and servers the engine
does not control, so each such character is replaced with U+FFFD (the Unicode replacement
character) before it is recorded. Everything else is kept exactly.

Payloads are input rather than output: :func:`unstorable_reason` lets validation refuse them
instead of changing what a handler will receive (taskhub.definitions.payloads).
"""

from __future__ import annotations

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"

# In a Python str a surrogate code point is always a lone one (a valid pair is one code point).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The same characters as the ASCII JSON encoder writes them (may also match an escaped
# backslash followed by "u0000": only a hint that a closer look is needed).
_UNSTORABLE_ESCAPE = re.compile(r"\\u(0000|d[89a-f])", re.IGNORECASE)


def storable_text(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (the same object if clean)."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable_json(value: Any) -> Any:
    """A JSON value (dicts, lists, strings, numbers …) with every string in it — keys too —
    made storable by :func:`storable_text`; the same object if nothing needed replacing."""
    if isinstance(value, dict | list | tuple) and (not value or not _has_unstorable(value)):
        return value
    return _replaced(value)


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        items = [(_replaced(k), _replaced(v)) for k, v in value.items()]
        same = all(
            k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)
        )
        return value if same else dict(items)
    if isinstance(value, list | tuple):
        replaced = [_replaced(v) for v in value]
        return value if all(r is v for r, v in zip(replaced, value, strict=True)) else replaced
    return value


def unstorable_reason(value: Any, encoded: str | None = None) -> str | None:
    """Why ``value`` (a JSON value) cannot be stored as it is, or None when it can.

    ``encoded``: the value as ``json.dumps`` wrote it (ASCII), when the caller has it already.
    """
    hint = _has_unstorable(value) if encoded is None else _UNSTORABLE_ESCAPE.search(encoded)
    if not hint:
        return None
    found = _first_unstorable(value)
    if found is None:
        return None
    return f"contains {found} (not storable; encode binary data, e.g. as base64)"


def _has_unstorable(value: Any) -> bool:
    # One pass of the C encoder and one regex scan instead of a walk in Python: a clean value
    # (nearly every one) costs about as much as the encoding the caller does anyway.
    try:
        encoded = json.dumps(value, default=str)
    except (TypeError, ValueError):
        return True  # let the walk decide; it looks at strings only
    return _UNSTORABLE_ESCAPE.search(encoded) is not None


def _first_unstorable(value: Any) -> str | None:
    if isinstance(value, str):
        match = _UNSTORABLE.search(value)
        if match is None:
            return None
        return "a NUL character" if match.group() == "\x00" else "a lone surrogate"
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return None
    for item in items:
        found = _first_unstorable(item)
        if found is not None:
            return found
    return None
