"""Serialise the state for people and other tools: the graph, findings, lessons, summaries."""

import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from itertools import chain
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from cmdb_worker.rules.policy import Policy
from cmdb_worker.rules.staleness import is_stale
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.lessons import Lesson
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.engine.cmdb import Cmdb
from cmdb_worker.worker.engine.discovery import UNVERIFIED


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
        "stale": is_stale(policy, record, as_of) and UNVERIFIED not in record.flags,
        "unverified": UNVERIFIED in record.flags,
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


class RegisterDumper(yaml.SafeDumper):
    """Indents list items under their key (``  - id: ...``), as the hand-kept register does.

    The reference for the register's format: ``lessons_yaml`` writes the same bytes faster."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


FAST_DUMPER: type[yaml.SafeDumper] | None = getattr(yaml, "CSafeDumper", None)
"""libyaml's emitter (shipped in PyYAML's wheels), many times faster than the pure-Python one."""
LIBYAML_DIFFERS = re.compile("[\x85\u2028\u2029\U00010000-\U0010ffff]")
"""Characters libyaml quotes differently from PyYAML (it escapes those beyond the BMP)."""
STR_TAG = "tag:yaml.org,2002:str"
LESSON_FIELDS = tuple(Lesson.model_fields)
REGISTER_START: tuple[Event, ...] = (
    StreamStartEvent(), DocumentStartEvent(), MappingStartEvent(None, None, True),
    ScalarEvent(None, None, (True, False), "lessons_register"),
    SequenceStartEvent(None, None, True),
)  # fmt: skip
REGISTER_END: tuple[Event, ...] = (
    SequenceEndEvent(), MappingEndEvent(), DocumentEndEvent(), StreamEndEvent(),
)  # fmt: skip
YAML_OPTIONS: dict[str, Any] = {"allow_unicode": True, "width": 2**16}
"""Long texts stay on one line."""
_RESOLVER = yaml.resolver.Resolver()


def lessons_yaml(lessons: Iterable[Lesson]) -> str:
    """The register as YAML; long texts stay on one line, ``due`` is a plain YAML date.

    Byte for byte what ``RegisterDumper`` writes, but fast: the lessons go to libyaml as events
    (skipping PyYAML's Python representer), and libyaml's list items, flush with their key
    (``- id:``), are shifted into the hand-kept layout."""
    rows = [_register_row(lesson) for lesson in register_order(lessons)]
    if FAST_DUMPER is None or any(map(_libyaml_writes_differently, rows)):
        return _reference_yaml({"lessons_register": rows})
    events = chain(REGISTER_START, _register_events(rows), REGISTER_END)
    return _indent_sequences(yaml.emit(events, Dumper=FAST_DUMPER, **YAML_OPTIONS))


def reference_lessons_yaml(lessons: Iterable[Lesson]) -> str:
    """The register as PyYAML's pure-Python dumper writes it: the format's reference."""
    return _reference_yaml(_plain(lessons_document(lessons)))


def _reference_yaml(document: dict[str, Any]) -> str:
    return str(yaml.dump(document, Dumper=RegisterDumper, sort_keys=False, **YAML_OPTIONS))


def _register_row(lesson: Lesson) -> dict[str, Any]:
    """The lesson's fields in the register's order, times as RFC 3339 text (``_plain``'s way)."""
    row = {name: getattr(lesson, name) for name in LESSON_FIELDS}
    row["created_at"], row["updated_at"] = _iso(lesson.created_at), _iso(lesson.updated_at)
    return row


def _register_events(rows: list[dict[str, Any]]) -> Iterator[Event]:
    """Each lesson as a mapping event, styled as PyYAML's safe representer styles it."""
    for row in rows:
        yield MappingStartEvent(None, None, True)
        for key, value in row.items():
            yield _text(key)
            if isinstance(value, list):
                yield SequenceStartEvent(None, None, True)
                yield from map(_text, value)
                yield SequenceEndEvent()
            else:
                yield _scalar(value)
        yield MappingEndEvent()


def _scalar(value: Any) -> ScalarEvent:
    if isinstance(value, str):
        return _text(value)
    # the register's other scalars: an int (occurrences) and a date (due)
    text = value.isoformat() if isinstance(value, date) else str(value)
    return ScalarEvent(None, None, (True, False), text)


@functools.lru_cache(maxsize=65536)
def _text(text: str) -> ScalarEvent:
    """A string's event, plain unless unquoted it would read back as something else (``yes``,
    ``12``, a date); cached, as keys, owners, rules and statuses repeat on every lesson."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return ScalarEvent(None, None, (tag == STR_TAG, True), text)


def _libyaml_writes_differently(row: dict[str, Any]) -> bool:
    texts = [value for value in row.values() if isinstance(value, str)] + row["evidence"]
    return LIBYAML_DIFFERS.search("\n".join(texts)) is not None


def _indent_sequences(text: str) -> str:
    """Under ``lessons_register:`` every line moves right by two, a lesson's own lists by four
    (blank lines, which only occur inside quoted multi-line texts, stay blank)."""
    head, _, rest = text.partition("\n")
    lines = [_shifted(line) for line in rest.split("\n")]
    return "\n".join([head, *lines])


def _shifted(line: str) -> str:
    if not line:
        return line
    return ("    " if line.startswith("  - ") else "  ") + line


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
