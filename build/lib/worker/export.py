"""Serialise the state for people and other tools: the graph, findings, lessons, summaries."""

import json
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from rules.policy import Policy
from rules.staleness import is_stale
from schemas.findings import Finding
from schemas.lessons import Lesson
from schemas.records import CIRecord
from worker.cmdb import Cmdb


def node_document(record: CIRecord, policy: Policy, as_of: datetime) -> dict[str, Any]:
    """A CI as the contract's ``cmdb.json`` and ``/api/cis`` show it."""
    return {
        "id": record.id,
        "type": record.type,
        "name": record.name,
        "environment": record.environment,
        "owner": record.owner,
        "criticality": record.criticality,
        "business_service": record.business_service,
        "version": record.version,
        "first_seen": _iso(record.first_seen),
        "last_seen": _iso(record.last_seen),
        "stale": is_stale(policy, record, as_of),
        "aliases": sorted(record.aliases),
        "identifiers": record.identifiers,
        "attributes": record.attributes,
        "seen_by": {source: _iso(at) for source, at in sorted(record.seen_by.items())},
    }


def graph_document(cmdb: Cmdb, policy: Policy, as_of: datetime) -> dict[str, Any]:
    """The graph in NetworkX node-link form, one link per (CI, target, relation type), sorted."""
    export = nx.MultiDiGraph(as_of=_iso(as_of))
    for record in sorted(cmdb.records(), key=lambda record: record.id):
        export.add_node(record.id, **node_document(record, policy, as_of))
    for origin, target, data in sorted(cmdb.graph.edges(data=True), key=lambda e: e[:2]):
        for relation_type, sightings in sorted(data.items()):
            export.add_edge(
                origin,
                target,
                key=relation_type,
                type=relation_type,
                reported_by={source: _iso(at) for source, at in sorted(sightings.items())},
            )
    document: dict[str, Any] = nx.node_link_data(export, edges="links")
    return document


def register_order(lessons: Iterable[Lesson]) -> list[Lesson]:
    """Lessons in filing order: by the number in their id (``LL-0002`` before ``LL-0010``)."""
    return sorted(lessons, key=lambda lesson: (len(lesson.id), lesson.id))


def lessons_document(lessons: Iterable[Lesson]) -> dict[str, Any]:
    """The Lessons Register: register fields first, in the register's order, then the rest."""
    return {
        "lessons_register": [lesson.model_dump(mode="python") for lesson in register_order(lessons)]
    }


class _RegisterDumper(yaml.SafeDumper):
    """Indents list items under their key (``  - id: ...``), as the hand-kept register does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def lessons_yaml(lessons: Iterable[Lesson]) -> str:
    """The register as YAML; long texts stay on one line, ``due`` is a plain YAML date."""
    document = _plain(lessons_document(lessons))
    return yaml.dump(
        document, Dumper=_RegisterDumper, sort_keys=False, allow_unicode=True, width=2**16
    )


def finding_line(finding: Finding) -> str:
    return finding.model_dump_json(exclude_none=False)


def findings_by_kind(findings: Iterable[Finding]) -> dict[str, int]:
    return dict(sorted(Counter(finding.kind for finding in findings).items()))


def write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


def write_lines(path: Path, lines: Iterable[str]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _plain(value: Any) -> Any:
    """Datetimes as RFC 3339 strings, dates left as YAML dates, containers walked."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value
    return value
