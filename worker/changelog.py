"""The state's changelog: one compacted record per entity, from which any replica rebuilds.

Keys are ``<kind>/<id>``: ``ci/service/api@prod`` holds the CI's record and its outgoing edges
(or ``retired_at`` once retired; a tombstone once merged into another CI), ``events/<digest>``
remembers a batch of applied event identities. Rebuild keeps the last value per key, as compaction
does, then builds the graph from those values in one pass.
"""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from cmdb_worker.schemas.changes import (
    ChangeOutcomes,
    ChangeRecord,
    CIHistory,
    IncidentRecord,
    TeamHistory,
)
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.lessons import Lesson
from cmdb_worker.schemas.records import CIRecord, SourceHealth, Suppression
from cmdb_worker.worker import governance, lessons, sources, suppressions
from cmdb_worker.worker.cmdb import Cmdb, EdgeData
from cmdb_worker.worker.engine import Engine
from cmdb_worker.worker.identities import IdentityBatch
from cmdb_worker.worker.state import (
    CHANGE,
    HISTORY,
    INCIDENT,
    LESSON,
    SERVICE_OUTCOMES,
    SOURCE,
    SUPPRESSION,
    TEAM_HISTORY,
    TEAM_OUTCOMES,
    State,
)

Entry = tuple[str, bytes | None]
CI_PREFIX, EVENTS_PREFIX, LESSON_PREFIX = "ci/", "events/", "lesson/"
MODEL_STORES: dict[str, tuple[str, type[BaseModel]]] = {
    CHANGE: ("changes", ChangeRecord),
    INCIDENT: ("incidents", IncidentRecord),
    LESSON: ("lessons", Lesson),
    HISTORY: ("histories", CIHistory),
    SERVICE_OUTCOMES: ("service_outcomes", ChangeOutcomes),
    TEAM_OUTCOMES: ("team_outcomes", ChangeOutcomes),
    TEAM_HISTORY: ("team_histories", TeamHistory),
    SOURCE: ("sources", SourceHealth),
    SUPPRESSION: ("suppressions", Suppression),
}
"""Entity kinds kept as pydantic models in a ``State`` dict: kind -> (attribute, model)."""


def changed_entries(engine: Engine) -> list[Entry]:
    """Changelog records for everything that changed since the last call."""
    entries = [
        (f"{kind}/{entity_id}", _encode(engine, kind, entity_id))
        for kind, entity_id in sorted(engine.state.take_dirty())
    ]
    remembered, forgotten = engine.applied.take_changes()
    entries += [(f"{EVENTS_PREFIX}{batch.id}", _batch_value(batch)) for batch in remembered]
    entries += [(f"{EVENTS_PREFIX}{batch_id}", None) for batch_id in forgotten]
    return entries


def _encode(engine: Engine, kind: str, entity_id: str) -> bytes | None:
    if kind in MODEL_STORES:
        model = _store(engine.state, kind).get(entity_id)
        return model.model_dump_json().encode() if model is not None else None
    value = ci_value(engine.state.cmdb, CIId(entity_id))
    return json.dumps(value, separators=(",", ":")).encode() if value is not None else None


def _batch_value(batch: IdentityBatch) -> bytes:
    return json.dumps({"newest": batch.newest.isoformat(), "keys": batch.keys}).encode()


def _batch_from(batch_id: str, value: bytes) -> IdentityBatch:
    raw = json.loads(value)
    return IdentityBatch(batch_id, tuple(raw["keys"]), datetime.fromisoformat(raw["newest"]))


def _store(state: State, kind: str) -> dict[str, Any]:
    store: dict[str, Any] = getattr(state, MODEL_STORES[kind][0])
    return store


def ci_value(cmdb: Cmdb, ci_id: CIId) -> dict[str, Any] | None:
    node = cmdb.graph.nodes.get(ci_id)
    if node is None:
        retired_at = cmdb.retired.get(ci_id)
        return {"retired_at": retired_at.isoformat()} if retired_at else None
    edges = {target: _edge_json(data) for _, target, data in cmdb.graph.out_edges(ci_id, data=True)}
    return {"record": _record_json(node["ci"]), "edges": edges}


def _record_json(record: CIRecord) -> dict[str, Any]:
    return {
        "id": record.id, "type": record.type, "name": record.name,
        "environment": record.environment, "owner": record.owner,
        "criticality": record.criticality, "business_service": record.business_service,
        "version": record.version, "identifiers": record.identifiers,
        "attributes": record.attributes, "aliases": sorted(record.aliases),
        "reported": record.reported,
        "seen_by": {source: at.isoformat() for source, at in record.seen_by.items()},
        "first_seen": _iso(record.first_seen), "recounted_from": _iso(record.recounted_from),
        "referenced_at": _iso(record.referenced_at),
        "stale": record.stale, "flags": sorted(record.flags),
    }  # fmt: skip


def _edge_json(data: EdgeData) -> dict[str, dict[str, str]]:
    return {kind: {src: at.isoformat() for src, at in seen.items()} for kind, seen in data.items()}


def rebuild(engine: Engine, entries: Iterable[Entry]) -> int:
    """Restore ``engine`` from changelog entries (in log order); returns how many keys are live."""
    latest: dict[str, bytes] = {}
    for key, value in entries:
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    cis = {key.removeprefix(CI_PREFIX): json.loads(v) for key, v in latest.items()
           if key.startswith(CI_PREFIX)}  # fmt: skip
    _restore_cmdb(engine, cis)
    _restore_models(engine.state, latest)
    engine.applied.restore(
        _batch_from(key.removeprefix(EVENTS_PREFIX), value)
        for key, value in latest.items()
        if key.startswith(EVENTS_PREFIX)
    )
    return len(latest)


def _restore_cmdb(engine: Engine, cis: dict[str, dict[str, Any]]) -> None:
    cmdb = engine.state.cmdb
    for ci_id, value in cis.items():
        if "retired_at" in value:
            cmdb.retired[CIId(ci_id)] = datetime.fromisoformat(value["retired_at"])
        else:
            cmdb.restore_record(_record_from_json(value["record"]))
    for ci_id, value in cis.items():
        for target, data in value.get("edges", {}).items():
            cmdb.graph.add_edge(ci_id, target)
            cmdb.graph.edges[ci_id, target].update(_edge_from_json(data))
    for record in list(cmdb.records()):
        engine.reschedule(record)
    cmdb.take_dirty()


def _restore_models(state: State, latest: dict[str, bytes]) -> None:
    for key, value in latest.items():
        kind, _, entity_id = key.partition("/")
        if kind in MODEL_STORES:
            _store(state, kind)[entity_id] = MODEL_STORES[kind][1].model_validate_json(value)
    state.index_lessons()
    for lesson in state.lessons.values():
        lessons.schedule_due(state, lesson)
    for change in state.changes.values():
        governance.index_change(state, change)
    for health in state.sources.values():
        sources.schedule_silence(state, health)
    for held in state.suppressions.values():
        suppressions.schedule_ends(state, held)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


TIMED_FIELDS = ("first_seen", "recounted_from", "referenced_at")


def _record_from_json(raw: dict[str, Any]) -> CIRecord:
    return CIRecord(
        **{k: v for k, v in raw.items() if k not in ("aliases", "seen_by", "flags", *TIMED_FIELDS)},
        first_seen=_moment(raw["first_seen"]),
        recounted_from=_moment(raw.get("recounted_from")),
        referenced_at=_moment(raw.get("referenced_at")),
        aliases={CIId(alias) for alias in raw["aliases"]},
        seen_by={source: datetime.fromisoformat(at) for source, at in raw["seen_by"].items()},
        flags=set(raw["flags"]),
    )


def _edge_from_json(raw: dict[str, dict[str, str]]) -> EdgeData:
    return {kind: {src: datetime.fromisoformat(at) for src, at in seen.items()}
            for kind, seen in raw.items()}  # fmt: skip
