"""The pictures of ``/ui/``, drawn on the server as SVG: a CI's neighbourhood and blast radius.

Every node is a link to its CI page with its whole id as a tooltip. Large pictures are cut, not
crammed: at most ``MAX_COLUMN`` CIs a side in a neighbourhood (most critical first), and in a
blast radius at most ``MAX_DRAWN`` dependents on at most ``MAX_RINGS`` rings, the nearest and
most critical first (the order ``Api.impact`` gives); what is not drawn is counted.
"""

import math
from collections.abc import Iterator
from html import escape
from typing import Any

from cmdb_worker.worker.ui_html import ci_href

Doc = dict[str, Any]
Point = tuple[float, float]
MAX_COLUMN, MAX_DRAWN, MAX_RINGS = 10, 40, 4
BOX_W, BOX_H, BOX_GAP = 250, 30, 12
COLUMNS = (20, 325, 630)
WIDTH = 900
RADIUS_SIZE, OUTER_RING, NODE_SPACING = 560, 230, 84
CENTRE = RADIUS_SIZE / 2
CRITICALITY_COLOURS = {1: "#d64545", 2: "#f08c3a", 3: "#e8b931", 4: "#8d99a8"}
NO_CRITICALITY = "#c3cad4"


def neighbourhood(ci: Doc) -> str:
    """The CI in the middle, its direct dependents on the left, what it relates to on the right.

    ``ci`` is ``Api.ci``'s document with each relation's target and dependent's source given
    as a CI document (``id``, ``criticality``, ``stale``) instead of a bare id.
    """
    left, right = _grouped(ci["dependents"], "source"), _grouped(ci["relations"], "target")
    rows = max(min(len(side), MAX_COLUMN + 1) for side in (left, right)) or 1
    height = rows * (BOX_H + BOX_GAP) + 40
    middle = 20 + (rows - 1) * (BOX_H + BOX_GAP) / 2
    parts = [_box(COLUMNS[1], middle, ci, "centre")]
    parts += _side(left, COLUMNS[0], middle, toward_centre=True)
    parts += _side(right, COLUMNS[2], middle, toward_centre=False)
    return _svg("neighbourhood", WIDTH, height, "".join(parts))


Side = dict[str, tuple[Doc, list[str]]]


def _grouped(edges: list[Doc], end: str) -> Side:
    """The CI at the far ``end`` of each edge with its relation types, most critical first."""
    grouped: Side = {}
    for edge in sorted(edges, key=lambda edge: (_rank(edge[end]), edge["type"])):
        grouped.setdefault(edge[end]["id"], (edge[end], []))[1].append(edge["type"])
    return grouped


def _rank(ci: Doc) -> tuple[int, str]:
    return ci.get("criticality") or 5, ci["id"]


def _side(edges: Side, x: float, middle: float, toward_centre: bool) -> list[str]:
    parts = []
    for row, (neighbour, kinds) in enumerate(list(edges.values())[:MAX_COLUMN]):
        y: float = 20 + row * (BOX_H + BOX_GAP)
        parts.append(_box(x, y, neighbour, "neighbour"))
        start: Point = (x + BOX_W, y)
        stop: Point = (COLUMNS[1], middle)
        if not toward_centre:
            start, stop = (COLUMNS[1] + BOX_W, middle), (x, y)
        parts.append(_arrow(start, stop, ", ".join(kinds), toward_centre))
    if len(edges) > MAX_COLUMN:
        bottom = 20 + MAX_COLUMN * (BOX_H + BOX_GAP) + BOX_H / 2
        parts.append(_label(x + 8, bottom, f"+ {len(edges) - MAX_COLUMN} more", "more"))
    return parts


def _box(x: float, y: float, ci: Doc, css: str) -> str:
    colour = CRITICALITY_COLOURS.get(ci.get("criticality") or 0, NO_CRITICALITY)
    dashed = ' stroke-dasharray="5 3"' if ci.get("stale") else ""
    rect = (
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="5" '
        f'stroke="{colour}" stroke-width="2"{dashed}/>'
    )
    label = _label(x + 8, y + BOX_H / 2 + 4, _short(ci["id"], 34), "name")
    return _node(ci["id"], f"ci-node {css}", rect + label)


def _arrow(start: Point, stop: Point, kinds: str, toward_centre: bool) -> str:
    """An edge between two boxes, its relation types written by the neighbour's end."""
    (x1, y1), (x2, y2) = start, stop
    line = (
        f'<line x1="{x1:.0f}" y1="{y1 + BOX_H / 2:.0f}" x2="{x2:.0f}" y2="{y2 + BOX_H / 2:.0f}" '
        'class="edge" marker-end="url(#arrow)"/>'
    )
    if toward_centre:
        return line + _label(x1 + 6, y1 + BOX_H / 2 - 5, kinds, "relation")
    return line + _label(x2 - 6, y2 + BOX_H / 2 - 5, kinds, "relation end")


def blast_radius(impact: Doc) -> str:
    """The CI at the centre, its dependents on one ring per hop, nearest and most critical first."""
    rings = _rings(impact["dependents"])
    parts = []
    for hop, ring in enumerate(rings, start=1):
        radius = _ring_radius(hop, len(rings))
        parts += [_ring_outline(radius, hop), *_ring_nodes(ring, radius, hop)]
    name = _label(CENTRE, CENTRE + 28, _short(impact["ci"].split("/", 1)[-1], 24), "name middle")
    parts.append(_node(impact["ci"], "ci-node centre", _dot(CENTRE, CENTRE, {}, 14) + name))
    parts += [_label(12, RADIUS_SIZE - 12, _caption(impact, rings), "caption"), _legend()]
    return _svg("blast-radius", RADIUS_SIZE, RADIUS_SIZE, "".join(parts))


def _ring_radius(hop: int, rings: int) -> float:
    return OUTER_RING * hop / max(rings, 1)


def _rings(dependents: list[Doc]) -> list[list[Doc]]:
    """The dependents drawn, one list per hop: each ring as many as fit, ``MAX_DRAWN`` in all."""
    rings: list[list[Doc]] = [[] for _ in range(min(_deepest(dependents), MAX_RINGS))]
    drawn = 0
    for dependent in dependents:
        hop = dependent["hops"]
        fits = hop <= len(rings) and len(rings[hop - 1]) < _capacity(_ring_radius(hop, len(rings)))
        if fits and drawn < MAX_DRAWN:
            rings[hop - 1].append(dependent)
            drawn += 1
    return rings


def _deepest(dependents: list[Doc]) -> int:
    return max((dependent["hops"] for dependent in dependents), default=0)


def _capacity(radius: float) -> int:
    return max(int(2 * math.pi * radius / NODE_SPACING), 1)


def _ring_outline(radius: float, hop: int) -> str:
    circle = f'<circle cx="{CENTRE:.0f}" cy="{CENTRE:.0f}" r="{radius:.0f}" class="ring"/>'
    corner = CENTRE - radius * math.sqrt(0.5)
    return circle + _label(corner - 4, corner - 4, f"hop {hop}", "hop")


def _ring_nodes(ring: list[Doc], radius: float, hop: int) -> Iterator[str]:
    for index, dependent in enumerate(ring):
        angle = -math.pi / 2 + 2 * math.pi * (index + 0.5 * (hop % 2)) / len(ring)
        x, y = CENTRE + radius * math.cos(angle), CENTRE + radius * math.sin(angle)
        name = _label(x, y + 20, _short(dependent["id"].split("/", 1)[-1], 17), "name middle small")
        yield _node(dependent["id"], "ci-node dependent", _dot(x, y, dependent, 9) + name)


def _dot(x: float, y: float, ci: Doc, size: int) -> str:
    colour = CRITICALITY_COLOURS.get(ci.get("criticality") or 0, NO_CRITICALITY)
    dashed = ' stroke-dasharray="3 2" class="stale"' if ci.get("stale") else ""
    return (
        f'<circle cx="{x:.0f}" cy="{y:.0f}" r="{size}" fill="{colour}" stroke="#1d2330" '
        f'stroke-width="1.5"{dashed}/>'
    )


def _legend() -> str:
    """What the colours and the dashed outline mean, in the top left corner."""
    keys = [({"criticality": level}, f"criticality {level}") for level in CRITICALITY_COLOURS]
    keys += [({}, "unset"), ({"stale": True}, "stale")]
    return "".join(
        _dot(16, 16 + 16 * row, ci, 5) + _label(26, 20 + 16 * row, words, "legend")
        for row, (ci, words) in enumerate(keys)
    )


def _caption(impact: Doc, rings: list[list[Doc]]) -> str:
    drawn = sum(len(ring) for ring in rings)
    count = f"at least {impact['count']}" if impact["bounded"] else str(impact["count"])
    rest = impact["count"] - drawn
    return f"{count} dependents; {drawn} drawn" + (f", {rest} more not drawn" if rest else "")


def _node(ci_id: str, css: str, inner: str) -> str:
    title = f"<title>{escape(ci_id)}</title>"
    return (
        f'<a href="{escape(ci_href(ci_id))}" class="{css}" data-ci="{escape(ci_id)}">'
        f"{title}{inner}</a>"
    )


def _label(x: float, y: float, words: str, css: str) -> str:
    return f'<text x="{x:.0f}" y="{y:.0f}" class="{css}">{escape(words)}</text>'


def _short(words: str, limit: int) -> str:
    return words if len(words) <= limit else words[: limit - 1] + "\u2026"


def _svg(name: str, width: float, height: float, inner: str) -> str:
    style = (
        "<style>text{font:12px system-ui,sans-serif;fill:#1d2330}"
        ".middle{text-anchor:middle}.end{text-anchor:end}.small{font-size:10px}.relation,.hop,.caption,.more,.legend{fill:#5b6474;font-size:11px}"
        "rect{fill:#fff}.centre rect{fill:#e8efff}.edge{stroke:#8d99a8;stroke-width:1.5}"
        ".ring{fill:none;stroke:#dde1ea;stroke-dasharray:4 4}</style>"
    )
    marker = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#8d99a8"/></marker></defs>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{name}" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img">'
        f"{style}{marker}{inner}</svg>"
    )
