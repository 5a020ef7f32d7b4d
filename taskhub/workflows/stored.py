"""Workflow definitions stored in the database, in the shape operators write by hand::

    {"initialTask": {"type": "kyc.check", "payload": {"user": "$input.user"}},
     "transitions": {
        "notify":  {"type": "notifications.send", "after": "initial", "on": "success",
                    "payload": {"user": "$input.user"}},
        "review":  {"type": "kyc.review", "after": "initial",
                    "on": {"result": {"status": "manual"}}},
        "cleanup": {"type": "kyc.cleanup", "after": ["notify", "review"], "on": "done"}}}

``initialTask`` is the step ``initial`` (or its ``key``); each transition is a step named by its
key. ``after`` is a step key or a list; ``on`` is ``success`` (default), ``failure``, ``done`` or
``{"result": {...}}`` (success with a result matching those values). ``compensation``,
``allowFailure`` and ``compensateFailed`` mean what they mean in the Python builder;
``compensation`` is a task name (it gets the forward step's payload) or
``{"type": <task name>, "payload": {...}}`` (its own payload, checked against the task's schema
when the definition is saved). A string ``"$input"`` or ``"$input.a.b"`` anywhere in a payload
is replaced by the run's input (or that part of it) when the run starts.

The Queue Worker document writes the same definition as a list of named steps
(``taskhub.workflows.document`` translates it to this shape).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..definitions.registry import all_definitions
from ..safety.masking import mask
from .graph import Graph, InvalidWorkflow, Step

_ON = {"success": "all_success", "failure": "any_failed", "done": "all_done"}
_STEP_FIELDS = {
    "key",
    "type",
    "payload",
    "after",
    "on",
    "compensation",
    "allowFailure",
    "compensateFailed",
    "priority",
    "maxAttempts",
    "timeout",
}
_MISSING = object()


def compile_stored(
    name: str, version: int, spec: Any, input: dict[str, Any] | None = None
) -> Graph:
    """Turn a stored definition into a checked graph; ``input`` fills ``$input`` references
    (without it they are left as written, which is how a definition is checked on save)."""
    if not isinstance(spec, dict):
        raise InvalidWorkflow("a definition must be an object", field="spec")
    unknown = set(spec) - {"initialTask", "transitions"}
    if unknown:
        raise InvalidWorkflow(
            f"unknown definition fields: {', '.join(sorted(unknown))}", field="spec"
        )
    initial = spec.get("initialTask")
    transitions = spec.get("transitions", {})
    if not isinstance(initial, dict):
        raise InvalidWorkflow("initialTask must be an object with a type", field="initialTask")
    if not isinstance(transitions, dict):
        raise InvalidWorkflow("transitions must be an object of steps", field="transitions")
    graph = Graph(name=name, version=version)
    graph.add(_step(initial.get("key", "initial"), initial, input, initial=True))
    for key, body in transitions.items():
        graph.add(_step(key, body, input, initial=False))
    graph.validate()
    return graph


def _step(key: str, body: Any, input: dict | None, *, initial: bool) -> Step:
    where = "initialTask" if initial else f"transitions.{key}"
    if not isinstance(body, dict):
        raise InvalidWorkflow(f"{where} must be an object", field=where)
    unknown = set(body) - _STEP_FIELDS
    if unknown:
        raise InvalidWorkflow(f"{where}: unknown fields {', '.join(sorted(unknown))}", field=where)
    if not isinstance(body.get("type"), str):
        raise InvalidWorkflow(f"{where}: type must name a task", field=where)
    payload = body.get("payload", {})
    if not isinstance(payload, dict):
        raise InvalidWorkflow(f"{where}: payload must be an object", field=where)
    after = body.get("after", [])
    after = [after] if isinstance(after, str) else after
    if initial and after:
        raise InvalidWorkflow("initialTask cannot depend on other steps", field=where)
    if not initial and not after:
        raise InvalidWorkflow(f"{where}: after must name the step(s) it follows", field=where)
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise InvalidWorkflow(f"{where}: after must be a step key or a list of them", field=where)
    _check_options(body, where)
    compensation, undo_payload = _compensation(body.get("compensation"))
    _refuse_internal(where, body["type"], compensation)
    if undo_payload is not None:
        if input is None:
            _check_payload_as_written(compensation, undo_payload, f"{where}.compensation")
        else:
            undo_payload = substitute(undo_payload, input, f"{where}.compensation")
    trigger, when = _trigger(body.get("on", "success"), where)
    return Step(
        key=key,
        task=body["type"],
        payload=payload if input is None else substitute(payload, input, where),
        after=after,
        trigger=trigger,
        when=when,
        allow_failure=bool(body.get("allowFailure", False)),
        compensation=compensation,
        compensation_payload=undo_payload,
        compensate_failed=bool(body.get("compensateFailed", False)),
        priority=body.get("priority"),
        max_attempts=body.get("maxAttempts"),
        timeout=body.get("timeout"),
    )


def _compensation(value: Any) -> tuple[str | None, dict | None]:
    """A step's ``compensation`` (already type-checked) as the task and its own payload."""
    if isinstance(value, dict):
        return value["type"], value["payload"]
    return value, None


def _is_compensation(value: Any) -> bool:
    if isinstance(value, str):
        return value != ""
    return (
        isinstance(value, dict)
        and set(value) == {"type", "payload"}
        and isinstance(value["type"], str)
        and value["type"] != ""
        and isinstance(value["payload"], dict)
    )


def _check_payload_as_written(task: str | None, payload: dict, where: str) -> None:
    """Check a payload against its task's schema as the definition writes it, before any
    input fills it: a value that is a ``$input`` reference is taken on trust (the run's start
    checks the filled payload), everything else — a missing field, an unknown one, a literal
    of the wrong type — is refused now."""
    definition = all_definitions().get(task) if isinstance(task, str) else None
    if definition is None or definition.schema is None:
        return  # an unknown task is reported by Graph.validate; a schemaless one takes any
    try:
        definition.schema.model_validate(payload)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            if _is_input_reference_at(payload, error["loc"]):
                continue
            location = ".".join(str(part) for part in error["loc"])
            errors.setdefault(".".join(filter(None, (where, "payload", location))), []).append(
                error["msg"]
            )
        if errors:
            summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
            raise InvalidWorkflow(
                f"invalid payload for {definition.name}: {summary}", errors=errors
            ) from None


def _is_input_reference_at(payload: Any, location: tuple) -> bool:
    """Whether the value at ``location`` (or a value on the way to it) is a ``$input`` string."""
    value = payload
    for part in location:
        if _is_input_reference(value):
            return True
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return False  # the error is about something missing, not a reference
    return _is_input_reference(value)


def _is_input_reference(value: Any) -> bool:
    return isinstance(value, str) and (value == "$input" or value.startswith("$input."))


def _refuse_internal(where: str, *names: Any) -> None:
    """A stored definition is written from outside (API, admin): like a task scheduled from
    there, it may not name an internal task (``external=False``), as step or compensation."""
    definitions = all_definitions()
    for name in names:
        definition = definitions.get(name) if isinstance(name, str) else None
        if definition is not None and not definition.external:
            raise InvalidWorkflow(
                f"{where}: task {name!r} is internal: the application schedules it itself",
                field=where,
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


#: The optional step fields with their type: what the engine would otherwise fail on when it
#: reads them (a compensation that is not a task name, a max_attempts that is not a number …).
_OPTIONS: dict[str, tuple[str, Any]] = {
    "compensation": (
        'a task name or {"type": <task name>, "payload": {...}}',
        _is_compensation,
    ),
    "allowFailure": ("true or false", lambda v: isinstance(v, bool)),
    "compensateFailed": ("true or false", lambda v: isinstance(v, bool)),
    "priority": (
        "a priority name or a whole number",
        lambda v: isinstance(v, str) or _is_whole(v),
    ),
    "maxAttempts": (
        "a whole number from 1 to 100",
        lambda v: _is_whole(v) and 1 <= v <= 100,
    ),
    "timeout": ("a number of seconds above 0", lambda v: _is_number(v) and 0 < v < float("inf")),
}


def _check_options(body: dict, where: str) -> None:
    for name, (expected, valid) in _OPTIONS.items():
        value = body.get(name)
        if value is not None and not valid(value):
            raise InvalidWorkflow(f"{where}: {name} must be {expected}", field=where)


def _trigger(on: Any, where: str) -> tuple[str, dict | None]:
    if isinstance(on, str) and on in _ON:
        return _ON[on], None
    if isinstance(on, dict) and set(on) == {"result"} and isinstance(on["result"], dict):
        return "all_success", on["result"]
    raise InvalidWorkflow(
        f'{where}: on must be "success", "failure", "done" or {{"result": {{...}}}}', field=where
    )


def substitute(value: Any, input: dict[str, Any], where: str) -> Any:
    """Replace ``"$input"`` / ``"$input.a.b"`` strings by the input's values."""
    if isinstance(value, dict):
        return {k: substitute(v, input, where) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, input, where) for v in value]
    if _is_input_reference(value):
        found: Any = input
        for part in value.split(".")[1:]:
            found = found.get(part, _MISSING) if isinstance(found, dict) else _MISSING
            if found is _MISSING:
                raise InvalidWorkflow(f"{where}: the input has no {value[7:]!r}", field="input")
        return found
    return value


def mask_workflow_spec(spec: Any) -> Any:
    """A stored workflow definition with each step's payload masked by that step's task
    (taskhub.safety.masking, with the task's ``secret_fields``)."""
    if not isinstance(spec, dict):
        return mask(spec)
    definitions = all_definitions()

    def step(body: Any) -> Any:
        if not isinstance(body, dict):
            return mask(body)
        definition = definitions.get(body.get("type"))
        fields = definition.secret_fields if definition else ()
        masked = {k: mask(v, fields) if k == "payload" else mask(v) for k, v in body.items()}
        if isinstance(body.get("compensation"), dict):  # its own payload, by its own task
            masked["compensation"] = step(body["compensation"])
        return masked

    masked = mask({k: v for k, v in spec.items() if k not in ("initialTask", "transitions")})
    if "initialTask" in spec:
        masked["initialTask"] = step(spec["initialTask"])
    transitions = spec.get("transitions")
    if isinstance(transitions, dict):
        masked["transitions"] = {key: step(body) for key, body in transitions.items()}
    elif "transitions" in spec:
        masked["transitions"] = mask(transitions)
    return masked
