"""A lean global view: what a partitioned replica would keep of entities other replicas own.

Under partitioned judgement (docs/architecture.md) every replica applies every changelog record
another replica writes. Today that record goes into a whole engine (``changelog.Restoring``):
decoded field by field, indexed, its deadlines kept armed. The judgements that read another
owner's state read little of it: the graph's edges, a few fields of a CI (blast radius and risk
read its criticality and owner), the ids merged into a CI (to resolve a reference), and open
changes (conflicts). ``LeanView`` keeps exactly that, decoded as records arrive, and every other
value as the raw bytes it came as, to be decoded by the read that wants it (a dependency's recent
changes for correlation, a subject's history for the API). ``bench.partitioning`` times it on
the same changelog as the whole view; ``tests/test_bench_smoke.py`` checks that it holds the
same graph as the whole view.
"""

import json
from collections.abc import Iterable
from typing import Any

import networkx as nx

from cmdb_worker.schemas.changes import ChangeRecord
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.changelog import CI_PREFIX, Entry
from cmdb_worker.worker.engine.claims import ClaimedIndex
from cmdb_worker.worker.engine.state import CHANGE

READ_FIELDS = ("type", "environment", "owner", "criticality", "business_service")
"""A CI record's fields that judgements of another owner read (node attributes here)."""


class LeanView:
    """The graph, aliases and open changes decoded; every other changelog value kept raw."""

    def __init__(self) -> None:
        self.graph: nx.DiGraph = nx.DiGraph()
        self.aliases: ClaimedIndex[CIId] = ClaimedIndex()
        self.claimed: dict[CIId, list[str]] = {}
        """The ids merged into a CI its current value lists (a record's, or its retirement's)."""
        self.changes: dict[str, ChangeRecord] = {}
        self.raw: dict[str, bytes] = {}

    def apply(self, entries: Iterable[Entry]) -> None:
        for key, value in entries:
            self.put(key, value)

    def put(self, key: str, value: bytes | None) -> None:
        kind, _, entity_id = key.partition("/")
        if key.startswith(CI_PREFIX):
            self._put_ci(CIId(entity_id), json.loads(value) if value is not None else {})
        elif kind == CHANGE and value is not None:
            self.changes[entity_id] = ChangeRecord.model_validate_json(value)
        elif kind == CHANGE:
            self.changes.pop(entity_id, None)
        elif value is not None:
            self.raw[key] = value
        else:
            self.raw.pop(key, None)

    def _put_ci(self, ci_id: CIId, value: dict[str, Any]) -> None:
        record = value.get("record")
        targets = set(value["edges"]) if record is not None else set()
        earlier = set(self.graph.succ[ci_id]) if ci_id in self.graph else set()
        self.graph.remove_edges_from((ci_id, target) for target in earlier - targets)
        self.graph.add_edges_from((ci_id, target) for target in targets - earlier)
        self._claim_aliases(ci_id, (record or value).get("aliases", []))
        if record is not None:
            self.graph.add_node(ci_id, **{name: record.get(name) for name in READ_FIELDS})
        elif ci_id in self.graph:
            self.graph.nodes[ci_id].clear()
        self._drop_bare([ci_id, *(earlier - targets)])

    def _claim_aliases(self, ci_id: CIId, listed: list[str]) -> None:
        """The ids the CI's earlier value listed are given up, those it lists now claimed (read
        out of order, two CIs' values may list one id for a while: ``engine.claims``)."""
        for alias in self.claimed.pop(ci_id, []):
            self.aliases.release(CIId(alias), ci_id)
        for alias in listed:
            self.aliases.claim(CIId(alias), ci_id)
        if listed:
            self.claimed[ci_id] = listed

    def _drop_bare(self, node_ids: Iterable[CIId]) -> None:
        """Nodes that hold no record and that no edge touches any more go."""
        for node_id in node_ids:
            bare = node_id in self.graph and not self.graph.nodes[node_id].get("type")
            if bare and not self.graph.degree(node_id):
                self.graph.remove_node(node_id)
