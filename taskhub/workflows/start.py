"""Starting a run: resolve the definition, check every step, then write the run, its steps and
their edges in one transaction. Nothing is dispatched before that commits."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..definitions.payloads import encode_json, validate_payload
from ..definitions.registry import get_definition
from ..engine import transitions
from ..engine.broker import wake_dispatcher
from ..engine.enqueue import _check_queue, _new_row, _resolve_options
from ..engine.events import publish_on_commit
from ..errors import InvalidTaskRequest
from ..models import EventKind, Task, TaskEvent, TaskStatus
from .builder import WorkflowSpec, registered_workflows
from .coordinator import run_event
from .graph import Graph, InvalidWorkflow, Step
from .models import FailurePolicy, StepEdge, WorkflowDefinition, WorkflowRun
from .stored import compile_stored

MAX_INPUT_BYTES = 256 * 1024


def resolve(name: str, input: dict[str, Any], version: int | None = None) -> tuple[Graph, str]:
    """The graph and failure policy of workflow ``name`` for this input: a workflow registered
    in Python, else the active stored definition (the newest version, or ``version``)."""
    spec: WorkflowSpec | None = registered_workflows().get(name)
    if spec is not None and version in (None, spec.version):
        return spec.compile(input), spec.on_failure
    stored = WorkflowDefinition.objects.filter(name=name, is_active=True)
    if version is not None:
        stored = stored.filter(version=version)
    definition = stored.order_by("-version").first()
    if definition is None:
        raise InvalidWorkflow(f"unknown workflow {name!r}", field="definition")
    graph = compile_stored(definition.name, definition.version, definition.spec, input)
    return graph, definition.on_failure


def start_workflow(
    definition: str | Graph,
    input: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    context: dict[str, Any] | None = None,
    deadline: float | dt.datetime | None = None,
    on_failure: str | None = None,
    version: int | None = None,
    user_id: str | int | None = None,
    correlation_id: str | None = None,
) -> WorkflowRun:
    """Start a run of a workflow (its name, or a graph built with WorkflowBuilder).

    Everything is checked first — unknown workflow or task, a cycle, a dangling step, an
    invalid payload or input — and raises :class:`InvalidWorkflow` with nothing written.
    With ``idempotency_key``, a second start with the same key returns the first run
    (``run.created`` is False). ``deadline``: seconds from now, or an aware datetime; a run
    still going then is cancelled. Inside a transaction, nothing runs before it commits.
    """
    input = {} if input is None else input
    if not isinstance(input, dict):
        raise InvalidWorkflow("input must be a JSON object", field="input")
    if len(encode_json(input, what="input")) > MAX_INPUT_BYTES:
        raise InvalidWorkflow(f"input is over {MAX_INPUT_BYTES} bytes", field="input")
    if context is not None and not isinstance(context, dict):
        raise InvalidWorkflow("context must be a JSON object", field="context")
    encode_json(context or {}, what="context")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 255
    ):
        raise InvalidWorkflow(
            "idempotency_key must be 1 to 255 characters", field="idempotency_key"
        )
    if isinstance(definition, Graph):
        graph, policy = definition, FailurePolicy.FAIL
        graph.validate()
    elif isinstance(definition, str):
        graph, policy = resolve(definition, input, version)
    else:
        raise InvalidWorkflow("definition must be a workflow name", field="definition")
    policy = on_failure or policy
    if policy not in FailurePolicy.values:
        raise InvalidWorkflow(
            f"on_failure must be one of {', '.join(FailurePolicy.values)}", field="on_failure"
        )
    now = timezone.now()
    deadline_at = _deadline(deadline, now)
    run = WorkflowRun(
        id=uuid.uuid4(),
        name=graph.name,
        version=graph.version,
        input=input,
        context=context or {},
        idempotency_key=idempotency_key,
        deadline_at=deadline_at,
        on_failure=policy,
        user_id="" if user_id is None else str(user_id),
        correlation_id=str(correlation_id or ""),
        graph=graph.as_json(),
        created_at=now,
        updated_at=now,
    )
    rows = _step_rows(graph, run, now)
    if idempotency_key:
        existing = WorkflowRun.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            existing.created = False
            return existing
    try:
        with transaction.atomic():
            _insert(run, graph, rows, now)
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = WorkflowRun.objects.get(idempotency_key=idempotency_key)
        existing.created = False
        return existing
    run.created = True
    return run


def _deadline(deadline: float | dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    if deadline is None:
        return None
    if isinstance(deadline, dt.datetime):
        if timezone.is_naive(deadline):
            raise InvalidWorkflow("deadline must be timezone-aware", field="deadline")
        return deadline
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0:
        raise InvalidWorkflow("deadline must be a positive number of seconds", field="deadline")
    return now + dt.timedelta(seconds=deadline)


def _step_rows(graph: Graph, run: WorkflowRun, now: dt.datetime) -> dict[str, Task]:
    """One task row per step, every payload and option checked (nothing written yet)."""
    rows: dict[str, Task] = {}
    for key in graph.topological_order():
        step = graph.steps[key]
        try:
            definition = get_definition(step.task)
            _check_queue(definition)
            payload = validate_payload(definition, step.payload)
            if step.compensation:
                _check_compensation(step, payload)
            opts = _resolve_options(
                definition,
                priority=step.priority,
                max_attempts=step.max_attempts,
                delay=None,
                eta=None,
                correlation_id=run.correlation_id,
                user_id=run.user_id,
                timeout=step.timeout,
                now=now,
            )
        except InvalidTaskRequest as exc:
            errors = {f"steps.{key}.{f}": m for f, m in exc.errors.items()}
            raise InvalidWorkflow(f"step {key!r}: {exc}", errors=errors) from None
        row = _new_row(definition, payload, opts, None, now)
        row.workflow_run = run
        row.step_key, row.step_kind = key, "forward"
        row.trigger_rule, row.allow_failure = step.trigger, step.allow_failure
        row.compensation = step.compensation or ""
        row.compensate_failed = step.compensate_failed
        row.deps_remaining = len(step.after)
        rows[key] = transitions.insert_new(row, waiting=bool(step.after))
    return rows


def _check_compensation(step: Step, forward_payload: dict[str, Any]) -> None:
    """The compensation gets its own payload, else the forward step's: it must accept it,
    checked now rather than when the run is already unwinding."""
    definition = get_definition(step.compensation)
    if step.compensation_payload is None:
        validate_payload(definition, forward_payload)
        return
    try:
        validate_payload(definition, step.compensation_payload)
    except InvalidTaskRequest as exc:
        errors = {f"compensation.{field}": m for field, m in exc.errors.items()}
        raise InvalidTaskRequest(f"compensation: {exc}", errors=errors) from None


def _insert(run: WorkflowRun, graph: Graph, rows: dict[str, Task], now: dt.datetime) -> None:
    run.save(force_insert=True)
    Task.objects.bulk_create(rows.values(), batch_size=1000)
    StepEdge.objects.bulk_create(
        (
            StepEdge(run=run, upstream=rows[up], downstream=rows[down], when=graph.steps[down].when)
            for up, down in graph.edges()
        ),
        batch_size=1000,
    )
    events = [
        TaskEvent(
            task_id=row.id,
            kind=EventKind.BLOCKED if row.status == TaskStatus.BLOCKED else EventKind.CREATED,
            attempt=0,
            at=now,
            data={"workflow": str(run.id), "step": key},
        )
        for key, row in rows.items()
    ]
    publish_on_commit(TaskEvent.objects.bulk_create(events, batch_size=1000))
    run_event(run, "started", now, steps=len(rows))
    queues = {r.queue for r in rows.values() if r.status == TaskStatus.PENDING}
    transaction.on_commit(lambda: wake_dispatcher(*queues))
