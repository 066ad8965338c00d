"""Read-only JSON queries over the live state (``/api/...``), answered under the state lock."""

import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from schemas.ids import CIId
from worker.engine import Engine
from worker.export import node_document

Query = dict[str, list[str]]


class NotFound(LookupError):
    """The path or the entity it names does not exist."""


class Api:
    def __init__(self, engine: Engine, lock: threading.RLock, now: Callable[[], datetime]) -> None:
        self.engine, self.lock, self.now = engine, lock, now

    def get(self, path: str, query: Query) -> tuple[str, bytes]:
        """Answer ``path`` (without the ``/api/`` prefix): a content type and a body."""
        with self.lock:
            document = self._route(path, query)
        return "application/json", json.dumps(document, default=str).encode()

    def _route(self, path: str, query: Query) -> Any:
        if path == "stale":
            return self.stale()
        if path.startswith("cis/"):
            return self.ci(CIId(path.removeprefix("cis/")))
        raise NotFound(f"no such API path: /api/{path}")

    def ci(self, ci_id: CIId) -> dict[str, Any]:
        cmdb = self.engine.state.cmdb
        record = cmdb.get(ci_id)
        if record is None:
            raise NotFound(f"no CI {ci_id}")
        graph = cmdb.graph
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

    def stale(self) -> list[dict[str, Any]]:
        now = self.now()
        return [node_document(record, self.engine.policy, now)
                for record in self.engine.state.cmdb.records() if record.stale]  # fmt: skip
