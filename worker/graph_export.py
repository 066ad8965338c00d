"""``cmdb-worker graph export``: the CMDB graph as Graphviz DOT or Mermaid, for docs and tickets.

The input is the contract's node-link document (``cmdb.json``), either read from a replay's
output or made by replaying event files. Nodes are labelled with type, name and environment;
stale and unverified CIs are marked (dashed, and said in the label); edges carry their relation
type. ``--around CI --depth N`` keeps the CIs within N relations of CI, in either direction.
"""

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from cmdb_worker.rules.policy import Policy
from cmdb_worker.worker.export import graph_document
from cmdb_worker.worker.replay_command import EXIT_USAGE, replay_files, write_document

Format = Literal["dot", "mermaid"]
FORMATS: tuple[Format, ...] = ("dot", "mermaid")
Node = dict[str, Any]
Link = dict[str, Any]
MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;",
                    "|": "#124;", "\n": " ", "\r": " "}  # fmt: skip
"""Characters that would end or confuse a Mermaid label, as Mermaid's entity codes (``#`` first)."""


class UnknownCI(Exception):
    """``--around`` names no CI of the graph (by id or alias)."""


def read_graph(path: Path) -> dict[str, Any]:
    """A replay's ``cmdb.json``."""
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def neighbourhood(document: dict[str, Any], around: str, depth: int) -> dict[str, Any]:
    """The document cut down to the CIs within ``depth`` relations of ``around``."""
    graph = nx.node_link_graph(document, edges="links")
    centre = _resolve(document["nodes"], around)
    kept = nx.single_source_shortest_path_length(graph.to_undirected(), centre, cutoff=depth)
    nodes = [node for node in document["nodes"] if node["id"] in kept]
    links = [link for link in document["links"]
             if link["source"] in kept and link["target"] in kept]  # fmt: skip
    return {**document, "nodes": nodes, "links": links}


def _resolve(nodes: list[Node], ci: str) -> str:
    for node in nodes:
        if ci == node["id"] or ci in node.get("aliases", ()):
            return str(node["id"])
    raise UnknownCI(f"no CI {ci!r} in the graph (by id or alias)")


def marks(node: Node) -> list[str]:
    """``stale`` and ``unverified``, where they hold."""
    return [mark for mark in ("stale", "unverified") if node.get(mark)]


def label_lines(node: Node) -> list[str]:
    """What a node's box says: its type, its name, its environment, and its marks."""
    lines = [str(node.get("type") or ""), str(node.get("name") or node["id"])]
    lines += [str(node["environment"])] if node.get("environment") else []
    return lines + ([f"({', '.join(marks(node))})"] if marks(node) else [])


def dot_quoted(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, line breaks as ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def to_dot(document: dict[str, Any]) -> str:
    lines = ["digraph cmdb {", "  rankdir=LR;", '  node [shape=box, style="rounded"];']
    for node in document["nodes"]:
        label = dot_quoted("\n".join(label_lines(node)))
        style = ', style="rounded,dashed", color="red"' if marks(node) else ""
        lines.append(f"  {dot_quoted(str(node['id']))} [label={label}{style}];")
    for link in document["links"]:
        ends = f"{dot_quoted(str(link['source']))} -> {dot_quoted(str(link['target']))}"
        lines.append(f"  {ends} [label={dot_quoted(str(link['type']))}];")
    return "\n".join([*lines, "}"]) + "\n"


def mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label."""
    return "".join(MERMAID_ENTITIES.get(character, character) for character in text)


def to_mermaid(document: dict[str, Any]) -> str:
    """Mermaid ``flowchart``: node ids are ``n0``, ``n1``... (CI ids go in the labels only)."""
    ids = {node["id"]: f"n{index}" for index, node in enumerate(document["nodes"])}
    lines = ["flowchart LR", "  classDef flagged stroke:#c00,stroke-dasharray:4 2;"]
    for node in document["nodes"]:
        label = "<br/>".join(mermaid_text(line) for line in label_lines(node))
        lines.append(f'  {ids[node["id"]]}["{label}"]')
    for link in document["links"]:
        relation = mermaid_text(str(link["type"]))
        lines.append(f'  {ids[link["source"]]} -->|"{relation}"| {ids[link["target"]]}')
    flagged = [ids[node["id"]] for node in document["nodes"] if marks(node)]
    lines += [f"  class {','.join(flagged)} flagged;"] if flagged else []
    return "\n".join(lines) + "\n"


RENDERERS: dict[Format, Callable[[dict[str, Any]], str]] = {"dot": to_dot, "mermaid": to_mermaid}


def export_graph(document: dict[str, Any], fmt: Format, around: str | None, depth: int) -> str:
    """The document (or the neighbourhood of ``around`` in it) in ``fmt``."""
    return RENDERERS[fmt](neighbourhood(document, around, depth) if around else document)


def graph_of_replay(policy: Policy, paths: list[Path], as_of: datetime | None) -> dict[str, Any]:
    """Replay ``paths`` as ``replay`` does and return what it would write as ``cmdb.json``."""
    engine, _, moment = replay_files(policy, paths, as_of)
    return graph_document(engine.state.cmdb, engine.policy, moment)


@dataclass(frozen=True)
class GraphRequest:
    """What ``graph export`` was asked for: the format, an optional neighbourhood, the output."""

    format: Format
    around: str | None = None
    depth: int = 2
    output: Path | None = None


def run_graph_export(document: dict[str, Any], request: GraphRequest) -> int:
    try:
        text = export_graph(document, request.format, request.around, request.depth)
    except UnknownCI as error:
        print(f"cmdb-worker graph export: {error}", file=sys.stderr)
        return EXIT_USAGE
    return write_document(text, request.output, "graph export")
