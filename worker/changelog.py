"""The state's changelog: one compacted record per entity, from which any replica rebuilds.

Keys are ``<kind>/<id>``: ``ci/service/api@prod`` holds the CI's record (every field of
``CIRecord``, by name) and its outgoing edges (or ``retired_at`` and the ids merged into it once
retired; a tombstone once merged into another CI), ``events/<digest>`` remembers a batch of
applied event identities, ``timeline/<subject>`` the findings about a subject and
``edge_history/<CI id>`` when that CI's outgoing edges came and went (both bounded by the
policy's ``history`` section); every other kind is a pydantic model store (``MODEL_STORES``).
Rebuild streams the records once, a later value of a key replacing the earlier one as compaction
keeps the last, and re-arms the deadlines when all are in.
"""

import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterable
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
from cmdb_worker.schemas.dora import DoraTeam, MergedChange
from cmdb_worker.schemas.history import ChangedEdges, SubjectHistory
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.lessons import Lesson, OverdueReported
from cmdb_worker.schemas.records import CIRecord, SourceHealth, SourceReport, Suppression
from cmdb_worker.worker.engine import (
    discovery,
    governance,
    history,
    lessons,
    sources,
    suppressions,
)
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.cmdb import Cmdb, EdgeData, interned
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.edge_history import EDGES_EXPIRE
from cmdb_worker.worker.engine.identities import AppliedEvents, IdentityBatch
from cmdb_worker.worker.engine.open_changes import OpenChanges
from cmdb_worker.worker.engine.state import (
    APPLIED_EVENTS,
    CHANGE,
    DORA_TEAM,
    EDGE_HISTORY,
    HISTORY,
    INCIDENT,
    LESSON,
    LESSON_OVERDUE,
    MERGED_CHANGE,
    SOURCE,
    SOURCE_REPORT,
    SUPPRESSION,
    TEAM_HISTORY,
    TEAM_OUTCOMES,
    TIMELINE,
    State,
)

Entry = tuple[str, bytes | None]
CI_PREFIX, EVENTS_PREFIX, LESSON_PREFIX = "ci/", f"{APPLIED_EVENTS}/", "lesson/"
MODEL_STORES: dict[str, tuple[str, type[BaseModel]]] = {
    CHANGE: ("changes", ChangeRecord),
    INCIDENT: ("incidents", IncidentRecord),
    LESSON: ("lessons", Lesson),
    LESSON_OVERDUE: ("overdue_reported", OverdueReported),
    HISTORY: ("histories", CIHistory),
    TEAM_OUTCOMES: ("team_outcomes", ChangeOutcomes),
    TEAM_HISTORY: ("team_histories", TeamHistory),
    SOURCE: ("sources", SourceHealth),
    SOURCE_REPORT: ("source_reports", SourceReport),
    SUPPRESSION: ("suppressions", Suppression),
    DORA_TEAM: ("dora", DoraTeam),
    MERGED_CHANGE: ("merged_changes", MergedChange),
    TIMELINE: ("timelines", SubjectHistory),
    EDGE_HISTORY: ("edge_changes", ChangedEdges),
}
"""Entity kinds kept as pydantic models in a ``State`` dict: kind -> (attribute, model)."""
MERGED_ON_RESTORE: dict[str, Callable[[State, str, Any], None]] = {
    SOURCE: sources.restore_health,
    SOURCE_REPORT: sources.restore_report,
}
"""Kinds whose values read back combine with other keys' (a source's last report is the latest
of its record and its partials) instead of being stored as they are."""


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
    if node is None or "ci" not in node:  # no node, or only other CIs' edges name it
        return _retirement_value(cmdb, ci_id)
    edges = {target: _edge_json(data) for _, target, data in cmdb.graph.out_edges(ci_id, data=True)}
    return {"record": record_json(node["ci"]), "edges": edges}


def _retirement_value(cmdb: Cmdb, ci_id: CIId) -> dict[str, Any] | None:
    """When a retired CI was retired, with the ids merged into it; None (a tombstone) if the
    CI is not retired either."""
    retired_at = cmdb.retired.get(ci_id)
    if retired_at is None:
        return None
    value: dict[str, Any] = {"retired_at": retired_at.isoformat()}
    if aliases := cmdb.retired_aliases.get(ci_id):
        value["aliases"] = sorted(aliases)
    return value


def record_json(record: CIRecord) -> dict[str, Any]:
    """The record as JSON, every field of ``CIRecord`` by its name (see ``FIELD_CODECS``)."""
    return {name: encode(getattr(record, name)) for name, encode, _ in RECORD_CODECS}


def record_from_json(raw: dict[str, Any]) -> CIRecord:
    """The record ``record_json`` wrote; a field an older changelog lacks takes its default."""
    return CIRecord(**{name: decode(raw[name]) for name, _, decode in RECORD_CODECS if name in raw})


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


_parsed = functools.lru_cache(maxsize=4096)(datetime.fromisoformat)
"""A CI's sightings and edges share their event's time: parsed once, one object (as live)."""


def _moment(text: str | None) -> datetime | None:
    return _parsed(text) if text else None


def _iso_map(moments: dict[str, datetime]) -> dict[str, str]:
    return {source: at.isoformat() for source, at in moments.items()}


def _moment_map(texts: dict[str, str]) -> dict[str, datetime]:
    return {sys.intern(source): _parsed(at) for source, at in texts.items()}


def _sorted(members: frozenset[str]) -> list[str]:
    return sorted(members)


def _reported(raw: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per attribute, each source's value; the strings many CIs share are kept once."""
    return {name: {sys.intern(source): interned(value) for source, value in values.items()}
            for name, values in raw.items()}  # fmt: skip


def _same(value: Any) -> Any:
    return value


Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]
FIELD_CODECS: dict[Any, Codec] = {
    datetime | None: (_iso, _moment),
    dict[str, datetime]: (_iso_map, _moment_map),
    frozenset[CIId]: (_sorted, frozenset),
    frozenset[str]: (_sorted, frozenset),
    str | None: (_same, interned),
    dict[str, dict[str, Any]]: (_same, _reported),
}
"""(encode, decode) by a ``CIRecord`` field's type; any other field is JSON as it stands."""
INTERNED_FIELDS = frozenset({"id", "type"})
"""Plain ``str`` fields that many CIs or edges share (the id is also the graph's key)."""


def _codec(field: dataclasses.Field[Any]) -> Codec:
    if field.name in INTERNED_FIELDS:
        return _same, sys.intern
    return FIELD_CODECS.get(field.type, (_same, _same))


RECORD_CODECS = tuple((field.name, *_codec(field)) for field in dataclasses.fields(CIRecord))
"""(name, encode, decode) of every ``CIRecord`` field."""


def _edge_json(data: EdgeData) -> dict[str, dict[str, str]]:
    return {kind: _iso_map(seen) for kind, seen in data.items()}


def _edge_from_json(raw: dict[str, dict[str, str]]) -> EdgeData:
    return {sys.intern(kind): _moment_map(seen) for kind, seen in raw.items()}


def rebuild(engine: Engine, entries: Iterable[Entry]) -> int:
    """Restore ``engine`` from changelog entries (in log order) in one streaming pass: each
    value is parsed, applied and dropped, a later value of a key replacing the earlier one, as
    compaction keeps the last; returns how many keys are live."""
    restoring = Restoring(engine)
    for key, value in entries:
        restoring.put(key, value)
    restoring.finish()
    return restoring.live_keys()


CI_DEADLINES: tuple[DeadlineKind, ...] = (
    discovery.STALE,
    discovery.ORPHAN,
    discovery.PHANTOM,
    lessons.STALE_TOO_LONG,
)
"""The deadlines keyed by a CI's id (``finish`` arms the first three from its record)."""
MODEL_DEADLINES: dict[str, Callable[[Any], list[tuple[str, DeadlineKind]]]] = {
    LESSON: lambda lesson: [(lesson.id, lessons.LESSON_DUE)],
    SOURCE: lambda health: [(health.source, sources.SOURCE_SILENT)],
    SUPPRESSION: lambda held: [
        (suppressions.deadline_key(held.subject, kind), suppressions.SUPPRESSION_ENDS)
        for kind in held.until
    ],
    TIMELINE: lambda timeline: [(timeline.subject, history.TIMELINE_EXPIRES)],
    EDGE_HISTORY: lambda changed: [(changed.origin, EDGES_EXPIRE)],
}
"""The deadlines an entity of a model store may have armed (``_schedule_models``), by kind."""


class Restoring:
    """A rebuild in progress: what is needed to apply one changelog record after another.

    It may go on after ``finish``: a standby keeps putting the records it tails, and calls
    ``finish`` again when it takes over. After the first ``finish`` the deadlines stay armed as
    records arrive: a CI's record re-arms its own and those of the CIs an edge to came or
    went (whether a CI is an orphan depends on other CIs' edges), and a model's record cancels
    what its earlier value armed; the next ``finish`` then re-derives only what is cheap (the
    model stores' deadlines, open changes, the lesson index, applied identities), so a takeover
    does not re-arm every CI: its cost does not grow with the graph.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.batches: dict[str, IdentityBatch] = {}
        self.armed = False
        """Whether ``finish`` ran once: the deadlines are kept as records arrive from then on."""

    def put(self, key: str, value: bytes | None) -> None:
        kind, _, entity_id = key.partition("/")
        if key.startswith(CI_PREFIX):
            self._put_ci(CIId(sys.intern(entity_id)), value)
        elif kind in MODEL_STORES:
            self._put_model(kind, entity_id, value)
        elif key.startswith(EVENTS_PREFIX):
            self._put_batch(entity_id, value)

    def _put_ci(self, ci_id: CIId, value: bytes | None) -> None:
        cmdb = self.engine.state.cmdb
        earlier = self._targets(ci_id) if self.armed else set()
        raw = json.loads(value) if value is not None else {}
        if "record" in raw:
            edges = {CIId(sys.intern(t)): _edge_from_json(d) for t, d in raw["edges"].items()}
            cmdb.restore(record_from_json(raw["record"]), edges)
        else:
            cmdb.withdraw(ci_id)
            if "retired_at" in raw:
                aliases = frozenset(map(CIId, raw.get("aliases", [])))
                cmdb.restore_retirement(ci_id, _parsed(raw["retired_at"]), aliases)
        if self.armed:  # a target's deadlines change only if an edge to it came or went
            self._rearm_cis({ci_id} | (earlier ^ self._targets(ci_id)))

    def _targets(self, ci_id: CIId) -> set[CIId]:
        """The CIs the edges of ``ci_id`` point at."""
        graph = self.engine.state.cmdb.graph
        return set(graph.successors(ci_id)) if ci_id in graph else set()

    def _rearm_cis(self, ci_ids: set[CIId]) -> None:
        """Arm these CIs' deadlines as ``finish`` would from what is applied now."""
        state = self.engine.state
        for ci_id in ci_ids:
            with state.deadlines.rearming(ci_id, CI_DEADLINES):
                record = state.cmdb.get_unmerged(ci_id)
                if record is not None:
                    self.engine.reschedule(record)

    def _put_model(self, kind: str, entity_id: str, value: bytes | None) -> None:
        store = _store(self.engine.state, kind)
        earlier = store.get(entity_id)
        if self.armed and earlier is not None and kind in MODEL_DEADLINES:
            for key, deadline in MODEL_DEADLINES[kind](earlier):
                self.engine.state.deadlines.cancel(key, deadline)
        if value is None:
            store.pop(entity_id, None)
            return
        model = MODEL_STORES[kind][1].model_validate_json(value)
        if kind in MERGED_ON_RESTORE:
            MERGED_ON_RESTORE[kind](self.engine.state, entity_id, model)
        else:
            store[entity_id] = model

    def _put_batch(self, batch_id: str, value: bytes | None) -> None:
        if value is None:
            self.batches.pop(batch_id, None)
        else:
            self.batches[batch_id] = _batch_from(batch_id, value)

    def finish(self) -> None:
        """Arm every deadline and derive every index once all records are in (the first time;
        later, the CIs' deadlines are already armed: see the class). Anything derived before is
        dropped first, not added to."""
        engine, cmdb = self.engine, self.engine.state.cmdb
        _drop_derived(engine, keep_deadlines=self.armed)
        if self.armed:
            _schedule_models(engine.state)
        else:
            with engine.state.deadlines.batched():
                for record in cmdb.records():
                    engine.reschedule(record)
                _schedule_models(engine.state)
            self.armed = True
        engine.state.take_dirty()
        engine.applied.restore(self.batches.values())

    def live_keys(self) -> int:
        """How many changelog keys hold a value (a pass over every CI: for the start-up log)."""
        state = self.engine.state
        models = sum(len(_store(state, kind)) for kind in MODEL_STORES)
        cis = sum(1 for _ in state.cmdb.records())
        return len(state.cmdb.retired) + cis + models + len(self.batches)


def _drop_derived(engine: Engine, keep_deadlines: bool) -> None:
    """Forget the open-changes index and applied-event identities ``finish`` derives, and the
    deadlines unless they were kept armed."""
    if not keep_deadlines:
        engine.state.deadlines.clear()
    engine.state.open_changes = OpenChanges()
    engine.applied = AppliedEvents(engine.applied.window)


def _schedule_models(state: State) -> None:
    state.index_lessons()
    for lesson in state.lessons.values():
        lessons.schedule_due(state, lesson)
    for change in state.changes.values():
        governance.index_change(state, change)
    for health in state.sources.values():
        sources.schedule_silence(state, health)
    for held in state.suppressions.values():
        suppressions.schedule_ends(state, held)
    for timeline in state.timelines.values():
        history.schedule_expiry(state, timeline)
    state.cmdb.edge_history.index()
