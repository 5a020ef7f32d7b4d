"""The task search language, shared by the API's ``GET /api/tasks?q=`` (and its export) and the
admin's search box::

    name:emails.send error:timeout payload.user_id:42 status:failed,cancelled queue:email id:6f0c

Terms are separated by spaces and must all match. A term is ``qualifier:value`` or a bare word;
double quotes keep spaces in a value (``error:"connection refused"``) or make a word with a colon
a bare word (``"https://x"``). A ``-`` before a term turns it round: the tasks it does *not*
match (``-status:completed``, ``-payload.region:eu``, ``-timeout``; a task without that payload
key does not match it, so it stays); a word that starts with a dash is searched for in quotes
(``"-x"``). The qualifiers (docs/api.md):

- ``name:`` / ``error:`` — the task name / its last error contains the value, ignoring case
  (3 letters or digits in a row at least: what a trigram index can look up);
- ``status:`` / ``queue:`` — one of a comma-separated list, exactly;
- ``id:`` — the id starts with these hex digits (dashes optional; all 32: that id);
- ``correlation_id:``, ``user_id:``, ``dedup_key:`` — exactly;
- ``payload.<key>[.<key>…]:`` — the payload's value at that path of object keys equals the value,
  as a string or as the JSON number, ``true``, ``false`` or ``null`` it spells
  (``payload.user_id:42`` finds ``42`` and ``"42"``).

A bare word matches when the name or the error contains it (if it has 3 letters or digits in a
row), or the id (a full one), correlation id, user id or dedup key equals it — so the admin's
search box still finds a pasted id.

:func:`parse` needs no database and raises :class:`SearchError` (the API answers it 400);
:func:`filter_tasks` turns a search into conditions each index serves on PostgreSQL (the opt-in
indexes of taskhub.console.search_indexes): ``payload @> …`` for the jsonb_path_ops GIN index,
``ILIKE`` for the pg_trgm ones, an id range for the primary key. SQLite runs the same search with
JSON key lookups and ``LIKE``. A negated term is ``NOT`` its condition (which no index serves:
it narrows what the other terms found, or reads the table).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import operator
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import F, Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.db.models.lookups import IContains

from ..errors import TaskhubError
from ..models import TaskStatus

#: Longer queries and more terms are refused: each term is a condition of one query.
MAX_LENGTH = 1000
MAX_TERMS = 20

#: The qualifiers besides ``payload.<key>``; what each means: the module's docstring.
QUALIFIERS = (
    "name",
    "error",
    "status",
    "queue",
    "id",
    "correlation_id",
    "user_id",
    "dedup_key",
)
PAYLOAD = "payload"
#: Words searched inside the name and the error need 3 letters or digits in a row: pg_trgm
#: indexes text in threes of them, and a shorter word makes PostgreSQL read the whole index and
#: recheck every row (seconds on a million rows, where a 3-letter word takes milliseconds).
#: ``name:`` and ``error:`` refuse a shorter one; a shorter bare word is only compared exactly.
_INDEXABLE = re.compile(r"[^\W_]{3}")

# A run of unquoted characters or quoted strings, glued together: one term.
_TERM = re.compile(r'(?:[^\s"]+|"[^"]*")+')
_QUALIFIER = re.compile(r"[A-Za-z_][\w.-]*")  # payload keys may hold "-" (payload.order-id)


class SearchError(TaskhubError, ValueError):
    """A search that can't be understood; the message says what to write instead."""


@dataclass(frozen=True)
class Term:
    """One condition: ``field`` is a qualifier, ``payload``, or ``text`` for a bare word."""

    field: str
    value: str
    path: tuple[str, ...] = ()  # the payload's keys, for ``payload.a.b:``
    negated: bool = False  # ``-term``: the tasks the term does not match


@dataclass(frozen=True)
class Search:
    terms: tuple[Term, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms)


def parse(query: str) -> Search:
    """The terms of a search; raises :class:`SearchError` for anything it can't read."""
    if len(query) > MAX_LENGTH:
        raise SearchError(f"The search is longer than {MAX_LENGTH} characters.")
    if query.count('"') % 2:
        raise SearchError('A quote (") is not closed.')
    words = _TERM.findall(query)
    if len(words) > MAX_TERMS:
        raise SearchError(f"The search has more than {MAX_TERMS} terms.")
    return Search(tuple(_signed_term(word) for word in words))


def _signed_term(word: str) -> Term:
    """A term, turned round by a leading ``-`` outside quotes (``-`` alone is a bare word)."""
    if word.startswith("-") and len(word) > 1:
        return dataclasses.replace(_term(word[1:]), negated=True)
    return _term(word)


def _term(word: str) -> Term:
    head, colon, rest = word.partition(":")
    if not colon or '"' in head:  # no qualifier, or the colon is inside quotes
        return _bare(word)
    value = rest.replace('"', "")
    if not _QUALIFIER.fullmatch(head):
        raise SearchError(f"{word!r}: not a qualifier; put a word with a colon in quotes.")
    qualifier = head.lower()
    if not value:
        raise SearchError(f"{qualifier}: needs a value, e.g. {qualifier}:something.")
    if qualifier == PAYLOAD or qualifier.startswith(PAYLOAD + "."):
        return _payload_term(head, value)
    if qualifier not in QUALIFIERS:
        known = ", ".join(f"{name}:" for name in QUALIFIERS)
        raise SearchError(
            f"Unknown qualifier {head}:. Known: {known} and payload.<key>:; "
            "put a word with a colon in quotes."
        )
    if qualifier == "status":
        value = value.lower()
        unknown = [s for s in _listed(value) if s not in TaskStatus.values]
        if unknown:
            raise SearchError(
                f"status:{unknown[0]} is not a status. One of: {', '.join(TaskStatus.values)}."
            )
    if qualifier == "id":
        _id_range(value)  # checked here, so that a bad id is a parse error
    if qualifier in ("name", "error"):
        _check_indexable(f"{qualifier}:{value}", value)
    return Term(qualifier, value)


def _bare(word: str) -> Term:
    value = word.replace('"', "")
    if not value:
        raise SearchError('"" searches for nothing: put a word between the quotes.')
    return Term("text", value)


def _check_indexable(term: str, value: str) -> None:
    if not _INDEXABLE.search(value):
        raise SearchError(
            f"{term}: a word searched in names and errors needs 3 letters or digits in a row; "
            "for a short exact value use user_id:, correlation_id:, queue: or id:."
        )


def _payload_term(head: str, value: str) -> Term:
    path = tuple(head.split(".")[1:])
    if not path or not all(path):
        raise SearchError(
            f"{head}: names no payload key; write payload.<key>:value, e.g. payload.user_id:42."
        )
    return Term(PAYLOAD, value, path)


def _listed(value: str) -> list[str]:
    return [part for part in value.split(",") if part]


def _id_range(value: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The lowest and highest id starting with these hex digits (a full id: itself twice)."""
    digits = value.replace("-", "").lower()
    if not digits or len(digits) > 32 or not re.fullmatch(r"[0-9a-f]+", digits):
        raise SearchError(f"id:{value} is not the start of a task id (hex digits, dashes).")
    low = uuid.UUID(digits.ljust(32, "0"))
    high = uuid.UUID(digits.ljust(32, "f"))
    return low, high


# --- the conditions ---------------------------------------------------------------------------


class ContainsIgnoringCase(IContains):
    """``icontains`` that PostgreSQL runs as ``col ILIKE '%…%'``, the form a pg_trgm index on
    the column serves. (Django's own is ``UPPER(col::text) LIKE UPPER('%…%')``, which it does
    not.) Other databases run Django's ``icontains``."""

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = compiler.compile(self.lhs)
        rhs, rhs_params = self.process_rhs(compiler, connection)  # '%…%', with % and _ escaped
        return f"{lhs} ILIKE {rhs}", (*lhs_params, *rhs_params)


def filter_tasks(tasks: QuerySet, search: Search | str) -> QuerySet:
    """``tasks`` narrowed to those the search matches; a string is parsed first (and may raise
    :class:`SearchError`)."""
    if isinstance(search, str):
        search = parse(search)
    postgres = connections[tasks.db].vendor == "postgresql"
    for number, term in enumerate(search.terms):
        if term.field == PAYLOAD and not postgres:
            # No JSON containment here: JSON_EXTRACT(payload, '$."a"."b"') = value, on an alias
            # built from KeyTransforms, so that no key is read as a lookup (payload.contains:x)
            # and a key holding "__" stays one key.
            alias = f"_search_payload_{number}"
            tasks = tasks.alias(**{alias: _key_path(term.path)})
            values = json_values(term.value)
            equal = _any(Q(**{f"{alias}__exact": v}) for v in values)
            if term.negated:
                # JSON_EXTRACT of a missing key (or of a JSON null) is SQL NULL, and NOT (NULL =
                # v) matches nothing: say that those rows do not equal the value.
                unequal = Q(**{f"{alias}__isnull": True})
                if None not in values:
                    unequal |= Q(**{alias: None})
                equal = ~equal | unequal
            tasks = tasks.filter(equal)
        elif term.negated:
            # Every column a condition reads is NOT NULL but dedup_key, which exclude() handles.
            tasks = tasks.exclude(_condition(term))
        else:
            tasks = tasks.filter(_condition(term))
    return tasks


def _condition(term: Term) -> Q:
    value = term.value
    if term.field == "text":
        return _bare_condition(value)
    if term.field == "name":
        return _contains("name", value)
    if term.field == "error":
        return _error_contains(value)
    if term.field in ("status", "queue"):
        return Q(**{f"{term.field}__in": _listed(value)})
    if term.field == "id":
        low, high = _id_range(value)
        return Q(pk=low) if low == high else Q(pk__gte=low, pk__lte=high)
    if term.field == PAYLOAD:
        return _contained_payload(term.path, value)
    return Q(**{term.field: value})  # correlation_id, user_id, dedup_key


def _contains(field: str, value: str) -> Q:
    return Q(ContainsIgnoringCase(F(field), value))


def _error_contains(value: str) -> Q:
    # ``error > ''`` is the condition of the partial index task_error_trgm (most rows have no
    # error, and stay out of it): stating it lets PostgreSQL use that index.
    return Q(error__gt="") & _contains("error", value)


def _bare_condition(value: str) -> Q:
    condition = Q(correlation_id=value) | Q(user_id=value) | Q(dedup_key=value)
    if _INDEXABLE.search(value):  # a shorter word ("u-9") is only looked for as an exact value
        condition |= _contains("name", value) | _error_contains(value)
    try:
        condition |= Q(pk=uuid.UUID(value))
    except ValueError:
        pass
    return condition


def json_values(text: str) -> list[Any]:
    """What a payload value may be stored as: the string itself, and the JSON scalar it spells
    (a finite number, ``true``, ``false``, ``null``) if it spells one."""
    values: list[Any] = [text]
    try:
        parsed = json.loads(text)
    except ValueError:
        return values
    scalar = parsed is None or isinstance(parsed, bool)
    number = isinstance(parsed, int | float) and math.isfinite(parsed)  # not NaN, Infinity, 1e999
    if scalar or number:
        values.append(parsed)
    return values


def _contained_payload(path: tuple[str, ...], text: str) -> Q:
    """payload @> '{"a": {"b": value}}' for each value the text may be stored as: what the
    jsonb_path_ops GIN index serves (PostgreSQL)."""
    conditions = []
    for value in json_values(text):
        nested: Any = value
        for key in reversed(path):
            nested = {key: nested}
        conditions.append(Q(payload__contains=nested))
    return _any(conditions)


def _key_path(path: tuple[str, ...]) -> KeyTransform:
    target: Any = "payload"
    for key in path:
        target = KeyTransform(key, target)
    return target


def _any(conditions: Iterable[Q]) -> Q:
    return functools.reduce(operator.or_, conditions)
