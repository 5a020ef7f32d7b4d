"""Stored workflow definitions: create, change and delete them, each checked before it is saved.

The API and the admin both come here. A definition is compiled (``stored.compile_stored``)
before anything is written, so an unknown task, a cycle, a dangling step or a malformed spec is
refused with the compiler's message and the table is left as it was.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import TaskhubError
from .graph import InvalidWorkflow
from .models import FailurePolicy, WorkflowDefinition
from .stored import compile_stored

#: What a caller may set on a definition.
FIELDS = ("name", "version", "description", "spec", "is_active", "on_failure")


class DefinitionNotFound(TaskhubError, LookupError):
    """No stored definition has that id."""


def get_definition(definition_id: Any, *, lock: bool = False) -> WorkflowDefinition:
    query = WorkflowDefinition.objects.select_for_update() if lock else WorkflowDefinition.objects
    try:
        return query.get(id=int(str(definition_id)))
    except (ValueError, WorkflowDefinition.DoesNotExist):
        raise DefinitionNotFound(f"no workflow definition with id {definition_id!r}") from None


def check_definition(definition: WorkflowDefinition) -> None:
    """Refuse a definition that could not start: bad name, version or policy, or a spec that
    does not compile (its ``$input`` references are left for each run to fill)."""
    if not isinstance(definition.name, str) or not definition.name.strip():
        raise InvalidWorkflow("name must not be empty", field="name")
    if len(definition.name) > 200:
        raise InvalidWorkflow("name must be at most 200 characters", field="name")
    version = definition.version
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidWorkflow("version must be a whole number from 1", field="version")
    if definition.on_failure not in FailurePolicy.values:
        raise InvalidWorkflow(
            f"on_failure must be one of {', '.join(FailurePolicy.values)}", field="on_failure"
        )
    compile_stored(definition.name, version, definition.spec)


def create_definition(
    *,
    name: str,
    spec: Any,
    version: int = 1,
    description: str = "",
    is_active: bool = True,
    on_failure: str = FailurePolicy.FAIL,
) -> WorkflowDefinition:
    now = timezone.now()
    definition = WorkflowDefinition(
        name=name,
        version=version,
        description=description,
        spec=spec,
        is_active=is_active,
        on_failure=on_failure,
        created_at=now,
        updated_at=now,
    )
    check_definition(definition)
    return _save(definition, force_insert=True)


def update_definition(definition_id: Any, **changes: Any) -> WorkflowDefinition:
    """Change some fields; the definition as it would then be is checked as a whole."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown definition fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        definition = get_definition(definition_id, lock=True)
        for field, value in changes.items():
            setattr(definition, field, value)
        check_definition(definition)
        definition.updated_at = timezone.now()
        return _save(definition)


def delete_definition(definition_id: Any) -> None:
    """Delete a stored definition; runs already started from it keep their own graph."""
    with transaction.atomic():
        get_definition(definition_id, lock=True).delete()


def _save(definition: WorkflowDefinition, **options: Any) -> WorkflowDefinition:
    try:
        with transaction.atomic():
            definition.save(**options)
    except IntegrityError:
        raise InvalidWorkflow(
            f"a definition {definition.name!r} version {definition.version} already exists",
            field="version",
        ) from None
    return definition
