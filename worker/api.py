"""Read-only JSON queries over the live state (``/api/...``), answered under the state lock.

Paths arrive still percent-encoded, so a CI id's own ``/`` (``service/payments-api@prod``) may be
sent raw or as ``%2F``. ``/api/cis/{id}/impact`` is the blast radius of ``{id}`` when that CI
exists; otherwise the whole path is taken as a CI id. A CI whose name itself ends in ``/impact``
is reached by encoding that slash (``.../x%2Fimpact``).
"""

import heapq
import json
import threading
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import Any
from urllib.parse import unquote

from cmdb_worker.rules.risk import blast_radius
from cmdb_worker.schemas.changes import ChangeRecord
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.export import lessons_yaml, node_document, register_order

Query = dict[str, list[str]]
JSON, YAML = "application/json", "application/yaml"


class NotFound(LookupError):
    """The path or the entity it names does not exist."""


class BadRequest(ValueError):
    """The path exists but a query parameter is not understood."""


class Api:
    def __init__(self, engine: Engine, lock: threading.RLock, now: Callable[[], datetime]) -> None:
        self.engine, self.lock, self.now = engine, lock, now

    def get(self, path: str, query: Query) -> tuple[str, bytes]:
        """Answer ``path`` (raw, without the ``/api/`` prefix): a content type and a body."""
        with self.lock:
            if path == "lessons":
                return self.lessons(query)
            document = self._route(path.split("/"))
            return JSON, json.dumps(document, default=str).encode()

    def _route(self, segments: list[str]) -> Any:
        head, rest = segments[0], segments[1:]
        if head == "stale" and not rest:
            return self.stale()
        if head == "cis" and any(rest):
            return self._ci_or_impact(rest)
        if head == "changes" and any(rest):
            return self.change(_decoded(rest))
        raise NotFound(f"no such API path: /api/{'/'.join(segments)}")

    def _ci_or_impact(self, segments: list[str]) -> dict[str, Any]:
        if len(segments) > 1 and segments[-1] == "impact":
            target = self.engine.state.cmdb.get(CIId(_decoded(segments[:-1])))
            if target is not None:
                return self.impact(target)
        return self.ci(CIId(_decoded(segments)))

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

    def impact(self, record: CIRecord) -> dict[str, Any]:
        """The blast radius of a CI: every CI depending on it, nearest and most critical first
        (the nearest rings only, ``bounded``, past the policy's ``graph.blast_radius_limit``)."""
        bounds = self.engine.policy.graph
        graph = self.engine.state.cmdb.graph
        hops = blast_radius(
            graph, [record.id], bounds.blast_radius_depth, bounds.blast_radius_limit
        )
        dependents = [_dependent(graph.nodes[ci_id]["ci"], n) for ci_id, n in hops.items()]
        dependents.sort(key=lambda d: (d["hops"], d["criticality"] or 5, d["id"]))
        return {
            "ci": record.id, "depth": bounds.blast_radius_depth, "count": len(dependents),
            "bounded": len(dependents) >= bounds.blast_radius_limit, "dependents": dependents,
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
