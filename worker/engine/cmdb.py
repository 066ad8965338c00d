"""The CMDB graph: CIs merged across sources, typed relations, aliases and retirements.

Edges run from a CI to what it depends on or runs on; an edge's data maps each relation type
to the sources that report it and when, so ``relations_complete`` can drop one source's view.
"""

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import networkx as nx

from cmdb_worker.rules import precedence
from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.ci import CIRef, ObservedCI, Relation
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.engine.claims import ClaimedIndex
from cmdb_worker.worker.engine.deadlines import DeadlineIndex
from cmdb_worker.worker.engine.edge_history import EdgeHistory

EdgeData = dict[str, dict[str, datetime]]
ANY = "*"
StrongKey = tuple[str, str, str]


@dataclass
class Observation:
    """What one observation did: the CI it landed on and the duplicates it merged into it."""

    ci_id: CIId
    merged: list[CIId] = field(default_factory=list)
    newest_for_source: bool = True
    """False when this source had already reported the CI at a later time."""


@dataclass
class Related:
    """What adding one observation's relations found."""

    targets: list[tuple[CIId, CIRef]] = field(default_factory=list)
    """Each live CI a relation named (resolved, as named): ``reference`` them, as their owner."""
    dangling: list[tuple[CIId, str]] = field(default_factory=list)
    """Retired CIs a relation named, with the relation's type."""
    unlinked: list[CIId] = field(default_factory=list)
    """CIs an edge to was dropped (the source's complete report no longer lists it)."""


@dataclass
class Merge:
    """One CI merged into another: ``gone`` into ``kept``, the edges of ``pointing`` moved."""

    kept: CIId
    gone: CIId
    pointing: list[CIId] = field(default_factory=list)
    """CIs whose edge to ``gone`` now points at ``kept``: their owners write them
    (``move_in_edge``), as ``gone``'s owner writes it (``merged_away``)."""
    blind: bool = False
    """``gone`` was neither in the graph nor retired here: new, or a record this engine's view
    had not received yet, which its owner then sends (``absorb``)."""


@dataclass
class Withdrawn:
    """A merged-away CI's value as its owner withdrew it: its record and outgoing edges."""

    record: CIRecord
    edges: dict[CIId, EdgeData]


@dataclass
class Retirement:
    ci_id: CIId
    pointing: list[CIId] = field(default_factory=list)
    """CIs that pointed at the retired CI: their owners drop those edges (``unlink_retired``)."""
    depended_on: list[CIId] = field(default_factory=list)
    """CIs the retired CI pointed at."""


class Cmdb:
    """The dependency graph and its indexes; no rule logic, only bookkeeping."""

    def __init__(self, policy: Policy, deadlines: DeadlineIndex) -> None:
        self.graph: nx.DiGraph = nx.DiGraph()
        self.policy = policy
        self.strong_identifiers = frozenset(policy.identification.strong_identifiers)
        self.aliases: ClaimedIndex[CIId] = ClaimedIndex()
        self.strong_ids: ClaimedIndex[StrongKey] = ClaimedIndex()
        self.retired: dict[CIId, datetime] = {}
        self.merges: list[Merge] = []
        """The merges since the last ``take_merges``."""
        self.retired_aliases: dict[CIId, frozenset[CIId]] = {}
        """Ids merged into a retired CI: they still resolve to it (a late sighting under one is
        dropped as the CI's would be), and its record takes them back if it is observed again."""
        self.by_source: dict[str, set[CIId]] = {}
        self.dirty: set[CIId] = set()
        """CIs (records or tombstones) changed since ``take_dirty``: the changelog's feed."""
        self.edge_history = EdgeHistory(policy.history.edge_retention, deadlines)
        """When edges appeared and disappeared, for the blast radius at a past time."""

    def take_dirty(self) -> set[CIId]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    def resolve(self, ci_id: CIId) -> CIId:
        return self.aliases.get(ci_id, ci_id)

    def get(self, ci_id: CIId) -> CIRecord | None:
        """The CI's record; None if unknown, or if only other CIs' edges name it so far (a
        changelog read can bring an edge before its target's record)."""
        node = self.graph.nodes.get(self.resolve(ci_id))
        return node.get("ci") if node else None

    def first_seen(self, ci_id: CIId) -> datetime | None:
        """When the CI (in the graph now, by its own id) was first observed, if ever."""
        node = self.graph.nodes.get(ci_id)
        record: CIRecord | None = node.get("ci") if node else None
        return record.first_seen if record else None

    def get_unmerged(self, ci_id: CIId) -> CIRecord | None:
        """The CI's record, or None if it is gone or ``ci_id`` was merged into another CI."""
        record = self.get(ci_id)
        return record if record is not None and record.id == ci_id else None

    def records(self) -> Iterator[CIRecord]:
        """Every CI's record (a node only edges name, its record not read yet, has none)."""
        for _, data in self.graph.nodes(data="ci"):
            if data is not None:
                yield data

    def is_retired(self, ci_id: CIId, at: datetime) -> bool:
        retired_at = self.retired.get(self.resolve(ci_id))
        return retired_at is not None and at <= retired_at

    def observe(
        self,
        source: str,
        at: datetime,
        observed: ObservedCI,
        retracts: bool = True,
        follow_identifiers: bool = True,
    ) -> Observation | None:
        """Record that ``source`` saw ``observed`` at ``at``, merging strong-identifier twins
        (unless ``follow_identifiers`` is false).

        ``retracts``: an attribute sent as null withdraws this source's value of it (a discovery
        report does; a deploy without the attribute merely does not say).
        Returns None when the CI was retired at or after ``at`` (a late, stale observation).
        """
        if self.is_retired(observed.ci_id, at):
            return None
        source = sys.intern(source)
        ci_id, merged = self._identify(observed, at, follow_identifiers)
        record = self._record_for(ci_id, observed)
        if record.last_seen is None or at >= record.last_seen:
            self._unindex_identifiers(record)  # an identifier's old value identifies it no more
            _update_fields(record, observed)
        self._index_identifiers(record)
        previous = record.seen_by.get(source)
        if previous is None or at >= previous:
            _remember_values(record, source, self._ranked_given(observed), retracts)
        if previous is None or at > previous:
            record.seen_by[source] = at
        self._rank(record)
        record.first_seen = min(at, record.first_seen or at)
        self.by_source.setdefault(source, set()).add(ci_id)
        self.retired.pop(ci_id, None)
        self.dirty.add(ci_id)
        return Observation(ci_id, merged, previous is None or at >= previous)

    def _ranked_given(self, observed: ObservedCI) -> dict[str, Any]:
        """What the observation says of each attribute whose value is kept per source: the
        ranked fields it carries (null included), and its ``attributes`` if ``*`` is ranked."""
        given = {
            name: getattr(observed, name) for name in precedence.RANKED_ATTRIBUTES
            if name in observed.model_fields_set or getattr(observed, name) is not None
        }  # fmt: skip
        if ANY in self.policy.identification.precedence:
            given |= {precedence.ATTRIBUTE + key: v for key, v in observed.attributes.items()}
        return given

    def _rank(self, record: CIRecord) -> None:
        """Set each ranked attribute to the value of the source the policy trusts most."""
        for attribute in precedence.RANKED_ATTRIBUTES:
            ranking = self.policy.identification.ranking(attribute)
            if ranking is not None:
                setattr(record, attribute, precedence.value_in_force(ranking, record, attribute))
        any_ranking = self.policy.identification.precedence.get(ANY)
        if any_ranking is not None:
            _rank_attributes(record, any_ranking)

    def landing(self, observed: ObservedCI, follow_identifiers: bool = True) -> CIId:
        """The CI an observation of ``observed`` lands on: the first other CI holding one of its
        strong identifiers (if they are followed), else the one its id names (resolved)."""
        reported = self.resolve(observed.ci_id)
        holders = self._holders(observed, reported) if follow_identifiers else []
        return holders[0] if holders else _interned_id(reported)

    def _identify(
        self, observed: ObservedCI, at: datetime, follow_identifiers: bool
    ) -> tuple[CIId, list[CIId]]:
        reported = self.resolve(observed.ci_id)
        holders = self._holders(observed, reported) if follow_identifiers else []
        if not holders:
            return _interned_id(reported), []
        kept = holders[0]
        merged = [reported, *holders[1:]]
        for duplicate in merged:
            self._merge(kept, duplicate, at)
        return kept, merged

    def _holders(self, observed: ObservedCI, reported: CIId) -> list[CIId]:
        """The CIs other than ``reported`` holding one of the observation's strong identifiers."""
        keys = _strong_keys(observed.type, observed.identifiers, self.strong_identifiers)
        holders = dict.fromkeys(self.strong_ids[key] for key in keys if key in self.strong_ids)
        return [holder for holder in holders if holder != reported and holder in self.graph]

    def _record_for(self, ci_id: CIId, ref: CIRef) -> CIRecord:
        node = self.graph.nodes.get(ci_id)
        if node:
            record: CIRecord = node["ci"]
            return record
        record = CIRecord(
            id=ci_id,
            type=sys.intern(ref.type),
            name=ref.name,
            environment=interned(ref.environment),
            aliases=self.retired_aliases.pop(ci_id, frozenset()),
        )
        self.graph.add_node(ci_id, ci=record)
        self.dirty.add(ci_id)
        return record

    def restore(self, record: CIRecord, edges: dict[CIId, EdgeData]) -> None:
        """Put a CI's changelog value, its record and outgoing edges, into the graph and every
        index, in place of an earlier value. Either way the graph ends as a rebuild from this
        value alone would leave it; a refresh (what the indexes hold of the CI and its edges'
        targets, in order, unchanged: most of what a standby applies) skips withdrawing the
        earlier value and only replaces the record and the edges' data."""
        refresh = self._refreshes(record, edges)
        if not refresh:
            self.withdraw(record.id)
        self.retired.pop(record.id, None)
        self.restore_record(record)
        for target, data in edges.items():
            if refresh:
                kept: EdgeData = self.graph.edges[record.id, target]
                kept.clear()
                kept.update(data)
            else:
                self.graph.add_edge(record.id, target, **data)

    def _refreshes(self, record: CIRecord, edges: dict[CIId, EdgeData]) -> bool:
        node = self.graph.nodes.get(record.id)
        earlier: CIRecord | None = node.get("ci") if node else None
        return (
            earlier is not None
            and _indexed(earlier) == _indexed(record)
            and list(self.graph.successors(record.id)) == list(edges)
        )

    def restore_record(self, record: CIRecord) -> None:
        """Put a record read back from the changelog into the graph and every index."""
        self.graph.add_node(record.id, ci=record)
        for alias in record.aliases:
            self.aliases.claim(alias, record.id)
        self._index_identifiers(record)
        for source in record.seen_by:
            self.by_source.setdefault(source, set()).add(record.id)

    def withdraw(self, ci_id: CIId) -> None:
        """Undo what an earlier changelog value of ``ci_id`` restored (a later one replaces it):
        its retirement, or its record, indexes and outgoing edges (the node stays while other
        CIs' edges point at it)."""
        self.retired.pop(ci_id, None)
        self._drop_aliases(ci_id, self.retired_aliases.pop(ci_id, frozenset()))
        node = self.graph.nodes.get(ci_id)
        if node is None or "ci" not in node:
            return
        record: CIRecord = node.pop("ci")
        self._drop_aliases(ci_id, record.aliases)
        self._unindex(record)
        targets = list(self.graph.successors(ci_id))
        self.graph.remove_edges_from([(ci_id, target) for target in targets])
        for node_id in (ci_id, *targets):
            self._drop_if_bare(node_id)

    def restore_retirement(self, ci_id: CIId, at: datetime, aliases: frozenset[CIId]) -> None:
        """Put a retirement read back from the changelog, with the ids merged into the CI."""
        self.retired[ci_id] = at
        if aliases:
            self.retired_aliases[ci_id] = aliases
            for alias in aliases:
                self.aliases.claim(alias, ci_id)

    def _drop_aliases(self, ci_id: CIId, aliases: frozenset[CIId]) -> None:
        for alias in aliases:
            self.aliases.release(alias, ci_id)

    def _drop_if_bare(self, node_id: CIId) -> None:
        """Remove a node that holds no record and that no edge touches any more."""
        if "ci" not in self.graph.nodes[node_id] and not self.graph.degree(node_id):
            self.graph.remove_node(node_id)

    def _index_identifiers(self, record: CIRecord) -> None:
        for key in _strong_keys(record.type, record.identifiers, self.strong_identifiers):
            self.strong_ids.claim(key, record.id)

    def _unindex_identifiers(self, record: CIRecord) -> None:
        for key in _strong_keys(record.type, record.identifiers, self.strong_identifiers):
            self.strong_ids.release(key, record.id)

    def _merge(self, kept: CIId, duplicate: CIId, at: datetime) -> None:
        """Fold ``duplicate`` into ``kept``: aliases, identifiers, sightings and edges."""
        self.aliases.assign(duplicate, kept)
        self.dirty |= {kept, duplicate}
        node = self.graph.nodes.get(duplicate)
        gone: CIRecord | None = node.get("ci") if node is not None else None
        if gone is None:  # known only as retired (its ids come along), or not yet in this view
            blind = self.retired.pop(duplicate, None) is None
            self._take_retired_aliases(kept, duplicate)
        else:
            blind = False
            self._absorb_record(kept, gone)
            self._move_out_edges(duplicate, kept, at)
        pointing = list(self.graph.predecessors(duplicate)) if node is not None else []
        for origin in pointing:
            self.move_in_edge(origin, duplicate, kept, at)
        if duplicate in self.graph:
            self.graph.remove_node(duplicate)
        self.merges.append(Merge(kept, duplicate, pointing, blind))

    def _take_retired_aliases(self, kept: CIId, duplicate: CIId) -> None:
        carried = self.retired_aliases.pop(duplicate, frozenset())
        for alias in carried:
            self.aliases.assign(alias, kept)
        record: CIRecord = self.graph.nodes[kept]["ci"]
        record.aliases = record.aliases | {duplicate} | carried

    def _absorb_record(self, kept: CIId, gone: CIRecord) -> None:
        """Fold ``gone``'s record into ``kept``'s, and every index with it."""
        target: CIRecord = self.graph.nodes[kept]["ci"]
        self._unindex(gone)
        self._unindex_identifiers(target)
        _absorb(target, gone)
        self._rank(target)
        self._index_identifiers(target)
        for source in target.seen_by:
            self.by_source.setdefault(source, set()).add(kept)
        for alias in gone.aliases:
            self.aliases.assign(alias, kept)

    def _move_out_edges(self, old: CIId, new: CIId, at: datetime) -> None:
        for _, target, data in list(self.graph.out_edges(old, data=True)):
            self._remove_edge(old, target, at)
            if target != new:
                _merge_edge_data(self._edge(new, target, at), data)

    def take_merges(self) -> list[Merge]:
        taken, self.merges = self.merges, []
        return taken

    def move_in_edge(self, origin: CIId, gone: CIId, kept: CIId, at: datetime) -> None:
        """``origin``'s edge to ``gone``, merged into ``kept``, now points at ``kept``."""
        if not self.graph.has_edge(origin, gone):
            return  # moved already
        data = self.graph.edges[origin, gone]
        self._remove_edge(origin, gone, at)
        if origin != kept:
            _merge_edge_data(self._edge(origin, kept, at), data)
        self.dirty.add(origin)
        self._drop_if_bare(gone)

    def merged_away(self, gone: CIId, kept: CIId, at: datetime) -> Withdrawn | None:
        """``gone`` was merged into ``kept`` (by ``kept``'s owner, which wrote ``kept``): as
        ``gone``'s owner, withdraw its own value (its record, outgoing edges and retirement),
        leaving the edges other CIs have to it to their owners (``move_in_edge``). Returns the
        record and edges withdrawn, if it had a record."""
        self.aliases.assign(gone, kept)
        self.dirty.add(gone)
        self.retired.pop(gone, None)
        for alias in self.retired_aliases.pop(gone, frozenset()):
            self.aliases.assign(alias, kept)
        node = self.graph.nodes.get(gone)
        if node is None or "ci" not in node:
            return None
        edges = {target: dict(data) for _, target, data in self.graph.out_edges(gone, data=True)}
        for target in edges:  # while its first sighting is known
            self._remove_edge(gone, target, at)
            self._drop_if_bare(target)
        record: CIRecord = node.pop("ci")
        self._unindex(record)
        for alias in record.aliases:
            self.aliases.assign(alias, kept)
        self._drop_if_bare(gone)
        return Withdrawn(record, edges)

    def absorb(self, kept: CIId, withdrawn: Withdrawn, at: datetime) -> None:
        """Fold a merged-away CI's record and edges, as its owner withdrew them, into ``kept``
        (which merged it blind: its view did not have them yet)."""
        node = self.graph.nodes.get(kept)
        if node is None or "ci" not in node:
            return
        self._absorb_record(kept, withdrawn.record)
        for to, data in withdrawn.edges.items():
            if (target_id := self.resolve(to)) != kept:
                _merge_edge_data(self._edge(kept, target_id, at), data)
        self.dirty.add(kept)

    def leave_to_owners(self, ci_ids: Iterable[CIId]) -> None:
        """This engine changed its copy of ``ci_ids``, other owners' CIs: their owners write
        them (told by an operation), so its changelog does not."""
        for ci_id in ci_ids:
            self.dirty.discard(ci_id)
            self.edge_history.dirty.discard(ci_id)

    def _edge(self, origin: CIId, target: CIId, at: datetime) -> EdgeData:
        """The edge's data, the edge added (and its appearance at ``at`` noted) if new."""
        if not self.graph.has_edge(origin, target):
            self.graph.add_edge(origin, target)
            self.edge_history.added(origin, target, at, self.first_seen(origin))
        data: EdgeData = self.graph.edges[origin, target]
        return data

    def _remove_edge(self, origin: CIId, target: CIId, at: datetime) -> None:
        """Remove the edge, noting that it disappeared at ``at``."""
        self.edge_history.removed(origin, target, at, self.first_seen(origin))
        self.graph.remove_edge(origin, target)

    def relate(
        self, ci_id: CIId, source: str, at: datetime, relations: list[Relation], complete: bool
    ) -> Related:
        """Add ``source``'s relations from ``ci_id`` (its own edges only: a target's record is
        its owner's to write, through ``reference``). A relation never brings a retired CI
        back; only its own observation does."""
        related = Related()
        wanted: set[tuple[CIId, str]] = set()
        source = sys.intern(source)
        for relation in relations:
            target = _interned_id(self.resolve(relation.target.ci_id))
            if target in self.retired:
                related.dangling.append((target, relation.type))
                continue
            if target == ci_id:
                continue
            related.targets.append((target, relation.target))
            self._edge(ci_id, target, at).setdefault(sys.intern(relation.type), {})[source] = at
            wanted.add((target, relation.type))
        if complete:
            related.unlinked = self._drop_unlisted(ci_id, source, wanted, at)
        self.dirty.add(ci_id)
        return related

    def reference(self, ci_id: CIId, ref: CIRef, at: datetime) -> CIRecord:
        """A relation named ``ci_id`` (as ``ref``) at ``at``: a CI never observed gets a
        placeholder record, referenced since the earliest naming."""
        record = self._record_for(ci_id, ref)
        if newly_referenced(record, at):
            record.referenced_at = at
            self.dirty.add(ci_id)
        return record

    def _drop_unlisted(
        self, ci_id: CIId, source: str, wanted: set[tuple[CIId, str]], at: datetime
    ) -> list[CIId]:
        """Withdraw ``source``'s relations from ``ci_id`` that it no longer lists; returns the
        targets whose edge went with them."""
        unlinked = []
        for _, target, data in list(self.graph.out_edges(ci_id, data=True)):
            for relation_type in list(data):
                if (target, relation_type) not in wanted:
                    data[relation_type].pop(source, None)
                    if not data[relation_type]:
                        del data[relation_type]
            if not data:
                self._remove_edge(ci_id, target, at)
                unlinked.append(target)
        return unlinked

    def retire(self, ref: CIRef, at: datetime) -> Retirement | None:
        """Take a CI out of the graph with its edges; None if it was seen after ``at``."""
        ci_id = self.resolve(ref.ci_id)
        record = self.get(ci_id)
        if record and record.last_seen and record.last_seen > at:
            return None
        self.retired[ci_id] = max(at, self.retired.get(ci_id, at))
        self.dirty.add(ci_id)
        if record is None:
            return Retirement(ci_id)
        if record.aliases:
            self.retired_aliases[ci_id] = record.aliases
        pointing = list(self.graph.predecessors(ci_id))
        depended_on = list(self.graph.successors(ci_id))
        for target in depended_on:
            self._remove_edge(ci_id, target, at)
        self._unindex(record)
        del self.graph.nodes[ci_id]["ci"]
        self._drop_if_bare(ci_id)
        return Retirement(ci_id, pointing, depended_on)

    def unlink_retired(self, origin: CIId, target: CIId, at: datetime) -> list[str]:
        """``origin``'s edge to ``target``, retired at ``at``, goes; returns its relation types
        (none: there was no such edge). The retirement leaves each such edge to its origin's
        owner."""
        if not self.graph.has_edge(origin, target):
            return []
        kinds = sorted(self.graph.edges[origin, target])
        self._remove_edge(origin, target, at)
        self._drop_if_bare(target)
        self.dirty.add(origin)
        return kinds

    def _unindex(self, record: CIRecord) -> None:
        self._unindex_identifiers(record)
        for source in record.seen_by:
            reported = self.by_source.get(source, set())
            reported.discard(record.id)
            if not reported:
                self.by_source.pop(source, None)

    def seen_by_source(self, source: str) -> set[CIId]:
        return self.by_source.get(source, set())

    def dependents_at(self, ci_id: CIId, at: datetime) -> list[CIId]:
        """The CIs with an edge to ``ci_id`` that stood at ``at`` (event time): edges in the
        graph now and edges since removed, each judged by ``edge_history``."""
        current = self.graph._pred.get(ci_id, {})
        changed = map(CIId, self.edge_history.origins_into(ci_id))
        gone = [origin for origin in changed if origin not in current]
        return [
            origin for origin in [*current, *gone]
            if self.edge_history.valid(origin, ci_id, at, self.first_seen(origin))
        ]  # fmt: skip

    def has_relations(self, ci_id: CIId) -> bool:
        return bool(self.graph.degree(ci_id))


def newly_referenced(record: CIRecord, at: datetime) -> bool:
    """Whether a relation naming the CI at ``at`` changes its record: never observed, and
    named no earlier."""
    return record.first_seen is None and (record.referenced_at is None or at < record.referenced_at)


def _indexed(record: CIRecord) -> tuple[object, ...]:
    """What the indexes hold of a record (``restore_record`` and ``_unindex``)."""
    return record.type, record.aliases, record.identifiers, record.seen_by.keys()


def _strong_keys(
    ci_type: str, identifiers: dict[str, str], strong: frozenset[str]
) -> list[StrongKey]:
    return [
        (ci_type, name, value) for name, value in identifiers.items() if name in strong and value
    ]


def _update_fields(record: CIRecord, observed: ObservedCI) -> None:
    for name in ("owner", "criticality", "business_service"):
        value = getattr(observed, name)
        if value is not None:
            setattr(record, name, interned(value))
    record.identifiers.update(observed.identifiers)
    record.attributes.update(observed.attributes)


def _remember_values(record: CIRecord, source: str, given: dict[str, Any], retracts: bool) -> None:
    """Keep ``source``'s own value of each ranked attribute; an explicit null retracts it."""
    for attribute, value in given.items():
        if value is not None:
            record.reported.setdefault(attribute, {})[source] = interned(value)
        elif retracts:
            record.reported.get(attribute, {}).pop(source, None)


def _rank_attributes(record: CIRecord, ranking: list[str]) -> None:
    """Each entry of ``attributes`` takes its most trusted source's value (gone if none)."""
    for kept in [name for name in record.reported if name.startswith(precedence.ATTRIBUTE)]:
        value = precedence.value_in_force(ranking, record, kept)
        key = kept.removeprefix(precedence.ATTRIBUTE)
        if value is None:
            record.attributes.pop(key, None)
        else:
            record.attributes[key] = value


def interned(value: Any) -> Any:
    """A string value shared by many CIs (type, environment, owner, source) kept once."""
    return sys.intern(value) if isinstance(value, str) else value


def _interned_id(ci_id: CIId) -> CIId:
    """One string per CI id, shared by its node and every edge and index that names it."""
    return CIId(sys.intern(ci_id))


def _absorb(target: CIRecord, gone: CIRecord) -> None:
    target.aliases = target.aliases | {gone.id, *gone.aliases}
    firsts = [moment for moment in (target.first_seen, gone.first_seen) if moment]
    target.first_seen = min(firsts, default=None)
    for source, at in gone.seen_by.items():
        target.seen_by[source] = max(at, target.seen_by.get(source, at))
    for name in ("owner", "criticality", "business_service", "version"):
        if getattr(target, name) is None:
            setattr(target, name, getattr(gone, name))
    for attribute, values in gone.reported.items():
        target.reported[attribute] = {**values, **target.reported.get(attribute, {})}
    target.identifiers = {**gone.identifiers, **target.identifiers}
    target.attributes = {**gone.attributes, **target.attributes}


def _merge_edge_data(into: EdgeData, other: EdgeData) -> None:
    for relation_type, sightings in other.items():
        merged = into.setdefault(relation_type, {})
        for source, at in sightings.items():
            merged[source] = max(at, merged.get(source, at))
