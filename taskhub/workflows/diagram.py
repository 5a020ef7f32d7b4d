"""A run's graph drawn as inline SVG for the console: no JavaScript, no CDN.

Forward steps are laid out left to right by dependency depth (the longest chain of edges
leading to them); compensation steps sit in a band below, each under the step it undoes, with
dashed outlines and their own edge colour. Nodes are filled with their status's colour.

No colour is written here: each element has a class (a node its status's ``th-hue-<hue>``, edges
and arrows their kind) and the console's stylesheet (taskhub/static/taskhub/console.css) colours
them, light or dark with the admin's theme.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.utils.html import escape

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 44, 60, 18, 16
BAND_GAP = 40
#: Above this many steps the drawing would be unreadable; the steps table says it all.
MAX_DRAWN_STEPS = 300
FALLBACK_HUE = "grey"


def depths(keys: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each key's longest distance from a step with no dependency (graphs are acyclic)."""
    upstream: dict[str, list[str]] = defaultdict(list)
    for up, down in edges:
        upstream[down].append(up)
    found: dict[str, int] = {}

    def depth(key: str, seen: frozenset = frozenset()) -> int:
        if key not in found:
            parents = [u for u in upstream[key] if u in keys and u not in seen]
            found[key] = 1 + max((depth(u, seen | {key}) for u in parents), default=-1)
        return found[key]

    for key in keys:
        depth(key)
    return found


def layout(detail: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(x, y) of each step's box."""
    steps = detail["steps"]
    forward = [s["key"] for s in steps if s["kind"] != "compensation"]
    edges = [(e["from"], e["to"]) for e in detail["edges"] if e["from"] and e["to"]]
    level = depths(forward, edges)
    columns: dict[int, list[str]] = defaultdict(list)
    for key in forward:
        columns[level[key]].append(key)
    where: dict[str, tuple[int, int]] = {}
    for column, keys in columns.items():
        for row, key in enumerate(keys):
            where[key] = (PAD + column * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    band = max((y for _, y in where.values()), default=PAD - NODE_H - GAP_Y) + NODE_H + BAND_GAP
    stacked: dict[int, int] = defaultdict(int)
    for step in steps:
        if step["kind"] != "compensation":
            continue
        column = level.get(step.get("compensates") or "", 0)
        where[step["key"]] = (
            PAD + column * (NODE_W + GAP_X),
            band + stacked[column] * (NODE_H + GAP_Y),
        )
        stacked[column] += 1
    return where


def _label(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def draw(detail: Mapping[str, Any], hues: Mapping[str, str]) -> str:
    """The SVG markup (every text escaped), or a short note when there is nothing to draw.
    ``hues`` names each status's hue (a ``th-hue-<hue>`` class of the console's stylesheet)."""
    steps = detail["steps"]
    if not steps:
        return '<p class="th-muted">No steps.</p>'
    if len(steps) > MAX_DRAWN_STEPS:
        return f'<p class="th-muted">{len(steps)} steps: too many to draw; see the steps table.</p>'
    where = layout(detail)
    width = max(x for x, _ in where.values()) + NODE_W + PAD
    height = max(y for _, y in where.values()) + NODE_H + PAD
    kinds = {s["key"]: s["kind"] for s in steps}
    parts = [
        f'<svg class="th-wf-graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="workflow graph">',
        "<defs>"
        '<marker id="th-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path class="th-wf-arrow" '
        'd="M0,0 L10,5 L0,10 z"/></marker>'
        '<marker id="th-arrow-comp" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path class="th-wf-arrow-compensation" '
        'd="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>",
    ]
    for edge in detail["edges"]:
        if edge["from"] in where and edge["to"] in where:
            compensation = kinds.get(edge["to"]) == "compensation"
            parts.append(_edge(where[edge["from"]], where[edge["to"]], edge, compensation))
    for step in steps:
        undoes = step.get("compensates")
        if step["kind"] == "compensation" and undoes in where:
            parts.append(_undoes(where[undoes], where[step["key"]]))
    for step in steps:
        parts.append(_node(step, where[step["key"]], hues))
    parts.append("</svg>")
    return "".join(parts)


def _edge(start: tuple[int, int], end: tuple[int, int], edge: Mapping, compensation: bool) -> str:
    (x1, y1), (x2, y2) = start, end
    if compensation:  # the chain runs right to left, newest first, along the band
        a, b = (x1, y1 + NODE_H // 2), (x2 + NODE_W, y2 + NODE_H // 2)
        if x2 > x1:  # not the usual direction: still from side to side
            a, b = (x1 + NODE_W, y1 + NODE_H // 2), (x2, y2 + NODE_H // 2)
        elif x2 == x1:  # stacked in one column: from one box's edge to the other's
            below = y2 > y1
            a = (x1 + NODE_W // 2, y1 + (NODE_H if below else 0))
            b = (x2 + NODE_W // 2, y2 + (0 if below else NODE_H))
        return (
            f'<line class="th-wf-edge th-wf-edge-compensation" x1="{a[0]}" y1="{a[1]}" '
            f'x2="{b[0]}" y2="{b[1]}" stroke-width="1.5" '
            f'stroke-dasharray="6 3" marker-end="url(#th-arrow-comp)"/>'
        )
    state = "pending"
    if edge.get("resolved"):
        state = "satisfied" if edge.get("satisfied") else "unsatisfied"
    dash = ' stroke-dasharray="2 3"' if state == "unsatisfied" else ""
    title = f"<title>{escape(edge['from'])} → {escape(edge['to'])}"
    if edge.get("when"):
        title += f" when {escape(edge['when'])}"
    return (
        f'<g class="th-wf-edge th-wf-edge-{state}">{title}</title>'
        f'<line x1="{x1 + NODE_W}" y1="{y1 + NODE_H // 2}" x2="{x2}" y2="{y2 + NODE_H // 2}" '
        f'stroke-width="1.5"{dash} marker-end="url(#th-arrow)"/></g>'
    )


def _undoes(forward: tuple[int, int], compensation: tuple[int, int]) -> str:
    """A dotted link from a compensation up to the step it undoes."""
    (fx, fy), (cx, cy) = forward, compensation
    return (
        f'<line class="th-wf-undoes" x1="{cx + NODE_W // 2}" y1="{cy}" x2="{fx + NODE_W // 2}" '
        f'y2="{fy + NODE_H}" stroke-width="1" stroke-dasharray="1 3" opacity="0.6"/>'
    )


def _node(step: Mapping[str, Any], at: tuple[int, int], hues: Mapping[str, str]) -> str:
    x, y = at
    status = step["status"]
    hue = hues.get(status, FALLBACK_HUE)
    kind = "compensation" if step["kind"] == "compensation" else "forward"
    tip = f"{step['key']} — {step['task']} — {status}, attempt {step['attempts']}"
    if step.get("error"):
        tip += f"\n{step['error'][:300]}"
    return (
        f'<g class="th-wf-node th-wf-{kind} th-wf-status-{escape(status)} th-hue-{escape(hue)}" '
        f'data-step="{escape(step["key"])}" data-status="{escape(status)}">'
        f"<title>{escape(tip)}</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
        f'<text x="{x + 8}" y="{y + 17}" font-size="12" font-weight="600">'
        f"{escape(_label(step['key']))}</text>"
        f'<text x="{x + 8}" y="{y + 33}" font-size="10">'
        f"{escape(_label(step['task'], 18))} · {escape(status)}</text></g>"
    )
