"""The Queue Worker document's shape of a stored definition, and its translation to and from the
stored ``spec`` (``taskhub.workflows.stored``), which is the only shape that is stored and run::

    {"initialTask": "reserve",
     "transitions": [
        {"name": "reserve", "type": "http.request",
         "payload": {"method": "POST", "url": "https://shop.example/orders/42/reserve"},
         "compensation": {"type": "http.request",
                          "payload": {"method": "DELETE", "url": "https://shop.example/orders/42"}}},
        {"name": "charge", "type": "payments.charge", "payload": {"order": "$input.order"}},
        {"name": "notify", "type": "notifications.send", "after": ["reserve", "charge"],
         "on": "done"}]}

Each transition is one step, named by ``name``, with the stored shape's step fields (``type``,
``payload``, ``after``, ``on``, ``compensation``, ``allowFailure``, ``compensateFailed``,
``priority``, ``maxAttempts``, ``timeout``). The steps run in this **sequence**: the step that
``initialTask`` names first (the first transition when ``initialTask`` is left out), then every
other transition in list order. A transition without ``after`` follows the step just before it
in that sequence, so a plain list is a chain; ``after`` (a step name or a list) says otherwise.
The initial step follows nothing.
"""

from __future__ import annotations

from typing import Any

from .graph import Graph, InvalidWorkflow, Step

DOCUMENT_FIELDS = {"initialTask", "transitions"}
NAME = "name"


def spec_from_document(document: Any) -> dict[str, Any]:
    """The stored spec for a definition written in the document's shape; a malformed one is
    refused with :class:`InvalidWorkflow` naming the field (the spec is then compiled and
    checked like any other: unknown tasks, dangling ``after``, cycles)."""
    if not isinstance(document, dict):
        raise InvalidWorkflow("definition must be an object", field="definition")
    unknown = set(document) - DOCUMENT_FIELDS
    if unknown:
        raise InvalidWorkflow(
            f"definition: unknown fields {', '.join(sorted(unknown))} "
            "(a definition has initialTask and transitions)",
            field="definition",
        )
    steps = _named_steps(document.get("transitions"))
    initial = _initial_name(document.get("initialTask"), steps)
    sequence = [initial, *(name for name in steps if name != initial)]
    first = {k: v for k, v in steps[initial].items() if k != NAME}
    if first.get("after", []) != []:
        raise InvalidWorkflow(
            f"initialTask {initial!r} is the first step: it cannot have after",
            field="definition.initialTask",
        )
    first.pop("after", None)
    transitions: dict[str, Any] = {}
    for previous, name in zip(sequence, sequence[1:], strict=False):
        body = {k: v for k, v in steps[name].items() if k != NAME}
        body.setdefault("after", previous)
        transitions[name] = body
    return {"initialTask": {"key": initial, **first}, "transitions": transitions}


def _named_steps(transitions: Any) -> dict[str, dict[str, Any]]:
    where = "definition.transitions"
    if not isinstance(transitions, list) or not transitions:
        raise InvalidWorkflow(
            "definition.transitions must be a non-empty list of steps, each with a name",
            field=where,
        )
    steps: dict[str, dict[str, Any]] = {}
    for index, body in enumerate(transitions):
        at = f"{where}[{index}]"
        if not isinstance(body, dict):
            raise InvalidWorkflow(f"{at} must be an object", field=at)
        if "key" in body:
            raise InvalidWorkflow(f"{at}: unknown field key (a step is named by name)", field=at)
        name = body.get(NAME)
        if not isinstance(name, str) or not name:
            raise InvalidWorkflow(f"{at}: name must name the step", field=at)
        if name in steps:
            raise InvalidWorkflow(f"{at}: step {name!r} is defined twice", field=at)
        steps[name] = body
    return steps


def _initial_name(initial: Any, steps: dict[str, dict[str, Any]]) -> str:
    where = "definition.initialTask"
    if initial is None:
        return next(iter(steps))
    if not isinstance(initial, str):
        raise InvalidWorkflow("initialTask must be the name of a step", field=where)
    if initial not in steps:
        raise InvalidWorkflow(
            f"initialTask names {initial!r}, which is not a step in transitions", field=where
        )
    return initial


def document_from_spec(spec: Any) -> dict[str, Any] | None:
    """A stored spec in the document's shape, as responses show it: the steps in the order
    they can run (the initial step first), ``after`` left out where it is the step just
    before. Translating it back gives the same graph. ``None`` for a spec that is not an
    object of the stored shape (a row written by hand before definitions were checked)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("initialTask"), dict):
        return None
    transitions = spec.get("transitions", {})
    if not isinstance(transitions, dict) or not all(
        isinstance(b, dict) for b in transitions.values()
    ):
        return None
    first = dict(spec["initialTask"])
    initial = first.pop("key", "initial")
    if not isinstance(initial, str):
        return None
    bodies = {initial: first, **transitions}
    afters = {name: _after_list(body.get("after")) for name, body in bodies.items()}
    steps = []
    previous = None
    for name in _run_order(initial, afters):
        body = bodies[name]
        step = {NAME: name, **{k: v for k, v in body.items() if k != "after"}}
        if name != initial and afters[name] != [previous]:
            step["after"] = body.get("after")
        steps.append(step)
        previous = name
    return {"initialTask": initial, "transitions": steps}


def _after_list(after: Any) -> list[Any]:
    if after is None:
        return []
    return (
        [after] if isinstance(after, str) else list(after) if isinstance(after, list) else [after]
    )


def _run_order(initial: str, afters: dict[str, list[Any]]) -> list[str]:
    """Dependency order (the graph's own), the initial step first; stored order if the
    dependencies do not make a graph (they always do for a definition that was checked)."""
    graph = Graph(name="order")
    graph.steps = {
        name: Step(
            key=name, task="", after=[a for a in after if isinstance(a, str) and a in afters]
        )
        for name, after in afters.items()
    }
    try:
        order = graph.topological_order()
    except InvalidWorkflow:
        order = list(afters)
    return [initial, *(name for name in order if name != initial)]
