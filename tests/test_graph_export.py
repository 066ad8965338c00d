"""`cmdb-worker graph export`: DOT checked by Graphviz itself, Mermaid by its structure, awkward
ids escaped, stale and unverified CIs marked, neighbourhoods cut by depth."""

import html
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cmdb_worker.worker.cli import main
from cmdb_worker.worker.graph_export import export_graph, label_lines, to_dot, to_mermaid
from tests.events import at, heartbeats, observed

AWKWARD = 'we"ird\\app|<x>#1&y'
"""A CI name with every character DOT or Mermaid could choke on: quote, backslash, pipe, angle
brackets, hash, ampersand."""
MERMAID_NODE = re.compile(r'^  (n\d+)\["([^"]*)"\]$')
MERMAID_EDGE = re.compile(r'^  (n\d+) -->\|"([^"|]*)"\| (n\d+)$')


def node(ci_id: str, **fields: Any) -> dict[str, Any]:
    ci_type, rest = ci_id.split("/", 1)
    name, _, environment = rest.partition("@")
    return {"id": ci_id, "type": ci_type, "name": name, "environment": environment or None,
            "stale": False, "unverified": False, "aliases": [], **fields}  # fmt: skip


def link(source: str, target: str, relation: str = "depends_on") -> dict[str, str]:
    return {"source": source, "target": target, "type": relation, "key": relation}


AWKWARD_ID = f"service/{AWKWARD}@prod"
DOCUMENT: dict[str, Any] = {
    "directed": True, "multigraph": True, "graph": {},
    "nodes": [
        node(AWKWARD_ID),
        node("database/pg@prod", stale=True),
        node("host/h1.example.net", unverified=True),
        node("service/front@prod", aliases=["service/www@prod"]),
    ],
    "links": [
        link(AWKWARD_ID, "database/pg@prod"),
        link(AWKWARD_ID, "host/h1.example.net", 'runs "on" | #1'),
        link("service/front@prod", AWKWARD_ID),
    ],
}  # fmt: skip


def graphviz_json(dot: str) -> dict[str, Any]:
    """What Graphviz's own parser makes of the DOT text (fails if it is not valid DOT)."""
    done = subprocess.run(["dot", "-Tjson"], input=dot, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def label_text(raw: str) -> str:
    """A Graphviz label as displayed: ``\\n`` breaks the line, ``\\\\`` is one backslash."""
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], raw)


def test_graphviz_reads_awkward_ids_and_labels_back_exactly() -> None:
    """Every node and edge survives Graphviz's parser: names, multi-line labels, relation types."""
    parsed = graphviz_json(to_dot(DOCUMENT))
    names = {obj["name"].replace("\\\\", "\\"): obj for obj in parsed["objects"]}
    assert set(names) == {n["id"] for n in DOCUMENT["nodes"]}  # no stray nodes from bad quoting
    for document_node in DOCUMENT["nodes"]:
        shown = label_text(names[document_node["id"]]["label"])
        assert shown == "\n".join(label_lines(document_node))
    objects = parsed["objects"]
    edges = {(objects[e["tail"]]["name"], label_text(e["label"])) for e in parsed["edges"]}
    assert (AWKWARD_ID.replace("\\", "\\\\"), 'runs "on" | #1') in edges
    assert len(parsed["edges"]) == 3


def test_dot_marks_stale_and_unverified_cis_dashed() -> None:
    """Stale and unverified CIs are dashed and red and say so in their label; others are not."""
    parsed = graphviz_json(to_dot(DOCUMENT))
    dashed = {obj["name"] for obj in parsed["objects"] if "dashed" in obj.get("style", "")}
    assert dashed == {"database/pg@prod", "host/h1.example.net"}
    labels = {obj["name"]: label_text(obj["label"]) for obj in parsed["objects"]}
    assert labels["database/pg@prod"] == "database\npg\nprod\n(stale)"
    assert labels["host/h1.example.net"].endswith("(unverified)")


def mermaid_parts(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]], list[str]]:
    """(node id -> label, edges as (from, relation, to), flagged node ids); fails on other lines."""
    lines = text.splitlines()
    assert lines[:2] == ["flowchart LR", "  classDef flagged stroke:#c00,stroke-dasharray:4 2;"]
    nodes: dict[str, str] = {}
    edges, flagged = [], []
    for line in lines[2:]:
        if match := MERMAID_NODE.match(line):
            nodes[match[1]] = match[2]
        elif match := MERMAID_EDGE.match(line):
            edges.append((match[1], match[2], match[3]))
        else:
            match = re.fullmatch(r"  class ([\w,]+) flagged;", line)
            assert match is not None, line
            flagged = match[1].split(",")
    return nodes, edges, flagged


def mermaid_decoded(label: str) -> str:
    """A Mermaid label as displayed: entity codes (``#quot;``, ``#35;``) decoded."""
    entities = re.sub(r"#(\w+);", lambda m: f"&#{m[1]};" if m[1].isdigit() else f"&{m[1]};", label)
    return html.unescape(entities)


def test_mermaid_labels_escape_awkward_ids_and_decode_back() -> None:
    """No quote or pipe leaks out of a label; decoded, each label is the CI's lines again."""
    nodes, edges, flagged = mermaid_parts(to_mermaid(DOCUMENT))
    assert len(nodes) == 4 and len(edges) == 3
    for index, document_node in enumerate(DOCUMENT["nodes"]):
        shown = [mermaid_decoded(part) for part in nodes[f"n{index}"].split("<br/>")]
        assert shown == label_lines(document_node)
    assert ("n0", "runs #quot;on#quot; #124; #35;1", "n2") in edges
    assert sorted(flagged) == ["n1", "n2"]


def test_around_keeps_the_neighbourhood_within_depth_by_alias_too() -> None:
    """Depth 1 around the database reaches its dependent only; depth 2 also that one's others."""
    near = export_graph(DOCUMENT, "mermaid", "database/pg@prod", 1)
    assert len(mermaid_parts(near)[0]) == 2
    wider = export_graph(DOCUMENT, "mermaid", "service/www@prod", 2)  # an alias of front
    nodes, edges, _ = mermaid_parts(wider)
    assert len(nodes) == 4 and len(edges) == 3
    assert len(mermaid_parts(export_graph(DOCUMENT, "mermaid", "service/www@prod", 1))[0]) == 2


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    """An awkwardly named service depending on a database that goes stale."""
    events = [
        observed("pg", ci_type="database", time=at(0)),
        *heartbeats(at(days=8)),  # the source stays alive, so pg is stale, not unverified
        observed(AWKWARD, time=at(days=8), relations=[("depends_on", "database/pg@prod")]),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return path


def test_cli_replays_events_and_writes_valid_dot_to_a_file(events_file: Path, tmp_path: Path):
    """`graph export EVENTS --format dot -o FILE` writes DOT Graphviz parses, stale CI marked."""
    out = tmp_path / "graph.dot"
    assert main(["graph", "export", str(events_file), "--format", "dot", "-o", str(out)]) == 0
    parsed = graphviz_json(out.read_text())
    labels = {obj["name"]: label_text(obj["label"]) for obj in parsed["objects"]}
    assert labels["database/pg@prod"].endswith("(stale)")
    assert len(parsed["edges"]) == 1


def test_cli_reads_a_replays_cmdb_json(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--cmdb takes replay's cmdb.json instead of events and prints Mermaid on standard output."""
    assert main(["replay", str(events_file), "--out", str(tmp_path), "--quiet"]) == 0
    assert main(["graph", "export", "--cmdb", str(tmp_path / "cmdb.json"),
                 "--format", "mermaid"]) == 0  # fmt: skip
    nodes, edges, flagged = mermaid_parts(capsys.readouterr().out)
    assert len(nodes) == 2 and len(edges) == 1 and len(flagged) == 1


def test_an_unknown_around_ci_is_a_usage_error(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--around naming no CI exits 2 and says which."""
    args = ["graph", "export", str(events_file), "--format", "dot", "--around", "service/nope"]
    assert main(args) == 2
    assert "service/nope" in capsys.readouterr().err


def test_events_and_cmdb_together_or_neither_are_refused(events_file: Path, tmp_path: Path):
    """graph export needs exactly one input: event files, or --cmdb."""
    for inputs in ([], [str(events_file), "--cmdb", str(tmp_path / "cmdb.json")]):
        with pytest.raises(SystemExit) as refused:
            main(["graph", "export", "--format", "dot", *inputs])
        assert refused.value.code == 2
