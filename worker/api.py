"""Read-only JSON queries over the live state (``/api/...``), answered under the state lock.

Paths arrive still percent-encoded, so a CI id's own ``/`` (``service/payments-api@prod``) may be
sent raw or as ``%2F``. ``/api/cis/{id}/impact`` is the blast radius of ``{id}`` when that CI
exists (``?at=`` as the graph stood then), ``/api/cis/{id}/history`` and
``/api/changes/{id}/history`` the findings about it when the worker knows it; otherwise the whole
path is taken as an id. A CI whose name itself ends in ``/impact`` or ``/history`` is reached by
encoding that slash (``.../x%2Fimpact``).
"""

import heapq
import json
import threading
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import Any
from urllib.parse import unquote

from cmdb_worker.rules.risk import blast_radius, reachable
from cmdb_worker.rules.staleness import human_duration
from cmdb_worker.schemas.changes import ChangeRecord
from cmdb_worker.schemas.history import TimelineEntry
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.engine import history
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.export import lessons_yaml, node_document, register_order

Query = dict[str, list[str]]
JSON, YAML = "application/json", "application/yaml"


class NotFound(LookupError):
    """The path or the entity it names does not exist."""


class BadRequest(ValueError):
    """The path exists but a query parameter is not understood."""


class Gone(LookupError):
    """What was asked is older than the policy keeps (``history.edge_retention``)."""


class Api:
    def __init__(self, engine: Engine, lock: threading.RLock, now: Callable[[], datetime]) -> None:
        self.engine, self.lock, self.now = engine, lock, now

    def get(self, path: str, query: Query) -> tuple[str, bytes]:
        """Answer ``path`` (raw, without the ``/api/`` prefix): a content type and a body."""
        with self.lock:
            if path == "lessons":
                return self.lessons(query)
            document = self._route(path.split("/"), query)
            return JSON, json.dumps(document, default=str).encode()

    def _route(self, segments: list[str], query: Query) -> Any:
        head, rest = segments[0], segments[1:]
        if head == "stale" and not rest:
            return self.stale()
        if head == "cis" and any(rest):
            return self._ci_paths(rest, query)
        if head == "changes" and any(rest):
            return self._change_paths(rest)
        raise NotFound(f"no such API path: /api/{'/'.join(segments)}")

    def _ci_paths(self, segments: list[str], query: Query) -> dict[str, Any]:
        view, ci_id = segments[-1], CIId(_decoded(segments[:-1]))
        if len(segments) > 1 and view == "impact":
            target = self.engine.state.cmdb.get(ci_id)
            if target is not None:
                return self.impact(target, _at(query))
        if len(segments) > 1 and view == "history" and self._knows_ci(ci_id):
            return self.ci_history(ci_id)
        return self.ci(CIId(_decoded(segments)))

    def _change_paths(self, segments: list[str]) -> dict[str, Any]:
        change_id = _decoded(segments[:-1])
        if len(segments) > 1 and segments[-1] == "history" and self._knows_change(change_id):
            return self.change_history(change_id)
        return self.change(_decoded(segments))

    def _knows_ci(self, ci_id: CIId) -> bool:
        cmdb = self.engine.state.cmdb
        return cmdb.get(ci_id) is not None or cmdb.resolve(ci_id) in self.engine.state.timelines

    def _knows_change(self, change_id: str) -> bool:
        state = self.engine.state
        return change_id in state.changes or change_id in state.timelines

    def record(self, ci_id: CIId) -> CIRecord:
        record = self.engine.state.cmdb.get(ci_id)
        if record is None:
            raise NotFound(f"no CI {ci_id}")
        return record

    def ci(self, ci_id: CIId) -> dict[str, Any]:
        """The CI (found by id or alias) with its outgoing relations and its direct dependents."""
        record = self.record(ci_id)
        graph = self.engine.state.cmdb.graph
        relations = [
            {"type": kind, "target": target}
            for _, target, data in graph.out_edges(record.id, data=True)
            for kind in data
        ]
        dependents = [
            {"type": kind, "source": origin}
            for origin, _, data in graph.in_edges(record.id, data=True)
            for kind in data
        ]
        document = node_document(record, self.engine.policy, self.now())
        return document | {"relations": relations, "dependents": dependents}

    def impact(self, record: CIRecord, at: datetime | None = None) -> dict[str, Any]:
        """The blast radius of a CI: every CI depending on it, nearest and most critical first
        (the nearest rings only, ``bounded``, past the policy's ``graph.blast_radius_limit``);
        with ``at``, over the edges that stood then (the CI under its merged ids too)."""
        bounds = self.engine.policy.graph
        depth, limit = bounds.blast_radius_depth, bounds.blast_radius_limit
        if at is None:
            hops = blast_radius(self.engine.state.cmdb.graph, [record.id], depth, limit)
        else:
            hops = self._blast_radius_at(record, at, depth, limit)
        dependents = [self._dependent(ci_id, n) for ci_id, n in hops.items()]
        dependents.sort(key=lambda d: (d["hops"], d["criticality"] or 5, d["id"]))
        return {
            "ci": record.id, **({"at": at.isoformat()} if at else {}), "depth": depth,
            "count": len(dependents), "bounded": len(dependents) >= limit,
            "dependents": dependents,
        }  # fmt: skip

    def _blast_radius_at(
        self, record: CIRecord, at: datetime, depth: int, limit: int
    ) -> dict[CIId, int]:
        retention = self.engine.policy.history.edge_retention
        if at < self.now() - retention:
            raise Gone(
                f"at={at.isoformat()} is older than the edge history kept "
                f"(history.edge_retention: {human_duration(retention)})"
            )
        cmdb = self.engine.state.cmdb
        roots = [record.id, *sorted(record.aliases)]
        return reachable(lambda ci_id: cmdb.dependents_at(ci_id, at), roots, depth, limit)

    def _dependent(self, ci_id: CIId, hops: int) -> dict[str, Any]:
        record = self.engine.state.cmdb.get_unmerged(ci_id)
        if record is None:  # gone from the graph since (retired or merged away)
            return {"id": ci_id, "hops": hops, "criticality": None, "in_graph": False}
        return _dependent(record, hops)

    def ci_history(self, ci_id: CIId) -> dict[str, Any]:
        """Every finding about the CI (found by id or alias; under the ids merged into it
        too), oldest first."""
        cmdb = self.engine.state.cmdb
        record = cmdb.get(ci_id)
        subjects = [record.id, *sorted(record.aliases)] if record else [cmdb.resolve(ci_id)]
        return self._history(subjects[0], history.entries_about(self.engine.state, subjects))

    def change_history(self, change_id: str) -> dict[str, Any]:
        """Every finding about the change, its assessments (``change_assessed``) among them,
        oldest first."""
        return self._history(change_id, history.entries_about(self.engine.state, [change_id]))

    def _history(self, subject: str, entries: list[TimelineEntry]) -> dict[str, Any]:
        bounds = self.engine.policy.history
        return {
            "subject": subject, "retention": human_duration(bounds.retention),
            "max_entries": bounds.max_entries_per_subject, "count": len(entries),
            "entries": [_history_entry(entry) for entry in entries],
        }  # fmt: skip

    def cis(
        self, wanted: Callable[[CIRecord], bool] = lambda record: True, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The CIs ``wanted`` picks, the first ``limit`` by id, as ``/api/cis/{id}`` shows them
        (without relations); documents are built only for those returned."""
        picked = (record for record in self.engine.state.cmdb.records() if wanted(record))
        by_id = attrgetter("id")
        first = heapq.nsmallest(limit, picked, key=by_id) if limit else sorted(picked, key=by_id)
        now = self.now()
        return [node_document(record, self.engine.policy, now) for record in first]

    def stale(self) -> list[dict[str, Any]]:
        """The CIs the staleness deadlines have marked stale (what the stale-CI gauges count)."""
        now = self.now()
        stale = [record for record in self.engine.state.cmdb.records() if record.stale]
        stale.sort(key=lambda record: (record.last_seen or now, record.id))
        return [node_document(record, self.engine.policy, now) for record in stale]

    def change(self, change_id: str) -> dict[str, Any]:
        """A change's current request fields, its progress, and its latest risk assessment."""
        record = self.engine.state.changes.get(change_id)
        if record is None:
            raise NotFound(f"no change {change_id}")
        return _change_document(record)

    def lessons(self, query: Query) -> tuple[str, bytes]:
        """The Lessons Register as JSON, or with ``?format=yaml`` as the register's YAML."""
        lessons = self.engine.state.lessons.values()
        wanted = query.get("format", ["json"])[-1]
        if wanted == "yaml":
            return YAML, lessons_yaml(lessons).encode()
        if wanted != "json":
            raise BadRequest(f"format must be json or yaml, not {wanted!r}")
        register = [lesson.model_dump(mode="json") for lesson in register_order(lessons)]
        return JSON, json.dumps({"lessons_register": register}).encode()


def _decoded(segments: list[str]) -> str:
    return unquote("/".join(segments))


def _at(query: Query) -> datetime | None:
    """The ``at`` parameter: an RFC 3339 time with its offset (``Z`` or ``%2B01:00``)."""
    if "at" not in query:
        return None
    text = query["at"][-1]
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise BadRequest(
            f"at must be an RFC 3339 time with an offset, such as 2026-11-20T10:00:00Z "
            f"(a + in the offset encoded as %2B), not {text!r}"
        )
    return at


def _history_entry(entry: TimelineEntry) -> dict[str, Any]:
    finding = json.loads(entry.finding)
    envelope = {name: finding[name] for name in ("id", "type", "time")}
    return {**envelope, "suppressed": entry.suppressed, **finding["data"]}


def _dependent(record: CIRecord, hops: int) -> dict[str, Any]:
    return {
        "id": record.id, "hops": hops, "type": record.type, "environment": record.environment,
        "owner": record.owner, "criticality": record.criticality, "stale": record.stale,
    }  # fmt: skip


def _change_document(record: ChangeRecord) -> dict[str, Any]:
    progress = record.model_dump(mode="json", exclude={"request", "assessment"})
    return {
        "change_id": record.id,
        **record.request.model_dump(mode="json", exclude={"change_id"}),
        **progress,
        "assessment": record.assessment.model_dump(mode="json") if record.assessment else None,
    }
