"""Handlers for discovery events: observations, retirements and completed scans."""

from datetime import datetime

from cmdb_worker.rules import hygiene, precedence, staleness
from cmdb_worker.schemas.events import CIObserved, CIRetired, InputEvent, ScanCompleted
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.engine.cmdb import Withdrawn, newly_referenced
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.operations import (
    Absorbed,
    MergedAway,
    Referenced,
    TargetMerged,
    TargetRetired,
)
from cmdb_worker.worker.engine.state import State

DISCOVERY_REPORT = "cmdb.ci.observed"
STALE: DeadlineKind = "stale"
ORPHAN: DeadlineKind = "orphan"
PHANTOM: DeadlineKind = "phantom"
UNVERIFIED = "unverified"
"""A flag: every discovery source vouching for the CI is silent, so it is not judged stale."""


def on_observed(
    state: State, event: InputEvent, payload: CIObserved, now: datetime
) -> list[Finding]:
    retracts = event.type == DISCOVERY_REPORT  # a deploy's missing customData is no retraction
    observation = state.cmdb.observe(
        event.source, event.time, payload.ci, retracts, state.follow_identifiers
    )
    if observation is None:
        return []
    record = state.cmdb.get(observation.ci_id)
    assert record is not None
    _hand_over_merges(state, event.time)
    findings = [
        hygiene.ci_duplicate_merged(record, merged, payload.ci.identifiers, now, event.source)
        for merged in observation.merged
    ]
    complete = payload.relations_complete and observation.newest_for_source
    related = state.cmdb.relate(record.id, event.source, event.time, payload.relations, complete)
    findings += _dangling(state, record.id, related.dangling, now, event.time)
    for target in related.unlinked:
        _recheck_orphan(state, target)
    for target, ref in related.targets:
        known = state.cmdb.get(target)  # as this engine's view has it: else nothing to send
        if known is None or newly_referenced(known, event.time):
            state.emit(Referenced(ci_id=target, ref=ref, at=event.time))
    findings += _conflicts(state, record, now)
    return findings + refreshed(state, record, event.source, now)


def _hand_over_merges(state: State, at: datetime) -> None:
    """A merge changed this engine's copies of the merged-away CI and of the CIs pointing at it:
    each is its owner's to write, told by an operation (applied at once when owned here)."""
    for merge in state.cmdb.take_merges():
        state.emit(MergedAway(ci_id=merge.gone, into=merge.kept, at=at, blind=merge.blind))
        for origin in merge.pointing:
            state.emit(TargetMerged(origin=origin, ci_id=merge.gone, into=merge.kept, at=at))
        touched = (merge.gone, *merge.pointing)
        state.cmdb.leave_to_owners(ci for ci in touched if not state.ownership.owns(ci))


def on_merged_away(state: State, merged: MergedAway, now: datetime) -> list[Finding]:
    """A CI this engine owns was merged into another owner's CI: its own value goes (what it
    pointed at may be an orphan now), sent to the survivor if its owner merged it blind."""
    withdrawn = state.cmdb.merged_away(merged.ci_id, merged.into, merged.at)
    if withdrawn is None:
        return []
    if merged.blind:
        state.emit(Absorbed(ci_id=merged.ci_id, into=merged.into, at=merged.at,
                            record=withdrawn.record, edges=withdrawn.edges))  # fmt: skip
    for target in withdrawn.edges:
        _recheck_orphan(state, target)
    return []


def on_absorbed(state: State, absorbed: Absorbed, now: datetime) -> list[Finding]:
    """A CI this engine merged another into, blind: the other's record and edges come in."""
    withdrawn = Withdrawn(absorbed.record, dict(absorbed.edges))
    state.cmdb.absorb(absorbed.into, withdrawn, absorbed.at)
    return []


def on_target_merged(state: State, merged: TargetMerged, now: datetime) -> list[Finding]:
    """A CI this engine owns pointed at a CI since merged into another: the edge follows."""
    state.cmdb.move_in_edge(merged.origin, merged.ci_id, merged.into, merged.at)
    return []


def conflict_flag(attribute: str) -> str:
    """The CI flag raised while its sources disagree on ``attribute``."""
    return f"conflict_{attribute}"


def _conflicts(state: State, record: CIRecord, now: datetime) -> list[Finding]:
    """One ``ci_attribute_conflict`` each time sources start to disagree on an attribute."""
    findings = []
    for attribute in precedence.CONFLICTING_ATTRIBUTES:
        flag, values = conflict_flag(attribute), precedence.disagreement(record, attribute)
        if values is None:
            record.discard_flag(flag)
        elif flag not in record.flags:
            record.add_flag(flag)
            findings.append(
                precedence.ci_attribute_conflict(state.policy, record, attribute, values, now)
            )
    return findings


def refreshed(state: State, record: CIRecord, source: str, now: datetime) -> list[Finding]:
    """Re-judge a CI that a source just reported: staleness, owner and orphan checks."""
    findings: list[Finding] = []
    record.discard_flag(PHANTOM)
    if record.stale and not staleness.is_stale(state.policy, record, now):
        record.stale = False
        findings.append(staleness.ci_stale_resolved(record, now, source))
    _schedule_staleness(state, record)
    findings += _owner_check(state, record, source, now)
    _orphan_check(state, record)
    return findings


def _schedule_staleness(state: State, record: CIRecord) -> None:
    deadline = staleness.stale_at(state.policy, record)
    if deadline is not None:
        state.deadlines.schedule(record.id, STALE, deadline)


def _owner_check(state: State, record: CIRecord, source: str, now: datetime) -> list[Finding]:
    if not hygiene.needs_owner(state.policy, record):
        record.discard_flag("no_owner")
        return []
    if "no_owner" in record.flags:
        return []
    record.add_flag("no_owner")
    return [hygiene.ci_no_owner(record, now, source)]


def reschedule(state: State, record: CIRecord) -> None:
    """Re-arm a CI's deadlines, exactly as its last observation armed them."""
    _schedule_staleness(state, record)
    _orphan_check(state, record)
    _phantom_check(state, record)


def rearm(state: State, record: CIRecord) -> None:
    """Re-arm a restored CI's deadlines, keeping its flags as the changelog held them: live, an
    orphan that gained a relation keeps its flag until it is next reported."""
    _schedule_staleness(state, record)
    if not state.cmdb.has_relations(record.id):
        _orphan_check(state, record)
    _phantom_check(state, record)


def _orphan_check(state: State, record: CIRecord) -> None:
    """An unconnected CI of a type that should have relations is an orphan once its grace,
    counted from when it was first seen, has passed."""
    if state.cmdb.has_relations(record.id):
        record.discard_flag(ORPHAN)
        state.deadlines.cancel(record.id, ORPHAN)
    elif _may_become_orphan(state, record) and record.first_seen:
        grace_ends = record.first_seen + state.policy.hygiene.orphan_grace
        state.deadlines.schedule(record.id, ORPHAN, grace_ends)


def _may_become_orphan(state: State, record: CIRecord) -> bool:
    return hygiene.expects_relations(state.policy, record) and ORPHAN not in record.flags


def _dangling(
    state: State, pointing: CIId, targets: list[tuple[CIId, str]], now: datetime, at: datetime
) -> list[Finding]:
    return [
        hygiene.relation_dangling(pointing, target, [kind], now, state.cmdb.retired[target], at)
        for target, kind in targets
    ]


def on_referenced(state: State, referenced: Referenced, now: datetime) -> list[Finding]:
    """A relation named a CI this engine owns: a CI never observed is a placeholder, and a
    phantom once its grace from the first naming ends."""
    record = state.cmdb.reference(referenced.ci_id, referenced.ref, referenced.at)
    _phantom_check(state, record)
    return []


def _phantom_check(state: State, record: CIRecord) -> None:
    """A CI only relations name gets ``ci_phantom`` once its grace from the first naming ends."""
    if record.first_seen is None and record.referenced_at and PHANTOM not in record.flags:
        grace_ends = record.referenced_at + state.policy.hygiene.phantom_grace
        state.deadlines.schedule(record.id, PHANTOM, grace_ends)


def _unverified(state: State, record: CIRecord) -> list[Finding]:
    record.add_flag(UNVERIFIED)
    state.touch("ci", record.id)
    return []


def on_retired(state: State, event: InputEvent, payload: CIRetired, now: datetime) -> list[Finding]:
    retirement = state.cmdb.retire(payload.ci, event.time)
    if retirement is None:
        return []
    ci_id, retired_at = retirement.ci_id, state.cmdb.retired[retirement.ci_id]
    for origin in retirement.pointing:
        state.emit(TargetRetired(origin=origin, ci_id=ci_id, at=event.time, retired_at=retired_at))
    for target in retirement.depended_on:
        _recheck_orphan(state, target)
    return []


def on_target_retired(state: State, gone: TargetRetired, now: datetime) -> list[Finding]:
    """A CI this engine owns pointed at a retired CI: the edge goes, the relation dangles."""
    kinds = state.cmdb.unlink_retired(gone.origin, gone.ci_id, gone.at)
    if not kinds:
        return []  # applied already
    _recheck_orphan(state, gone.origin)
    return [hygiene.relation_dangling(gone.origin, gone.ci_id, kinds, now, gone.retired_at)]


def _recheck_orphan(state: State, ci_id: CIId) -> None:
    """A CI that lost an edge (a retirement, a complete report no longer listing it) may now be
    an orphan, as a restart (which re-arms every CI's checks: ``rearm``) would find it."""
    record = state.cmdb.get_unmerged(ci_id)
    if record is not None and not state.cmdb.has_relations(ci_id):
        _orphan_check(state, record)


def on_scan_completed(
    state: State, event: InputEvent, payload: ScanCompleted, now: datetime
) -> list[Finding]:
    scope = payload.scope
    findings = []
    for ci_id in sorted(state.cmdb.seen_by_source(event.source)):
        record = state.cmdb.get(ci_id)
        if record is None or not _in_scope(record, scope.types, scope.environment):
            continue
        if record.seen_by[event.source] < payload.started_at:
            findings.append(
                hygiene.ci_missing_from_scan(record, event.source, payload.started_at, now)
            )
    return findings


def _in_scope(record: CIRecord, types: list[str] | None, environment: str | None) -> bool:
    return (types is None or record.type in types) and (
        environment is None or record.environment == environment
    )


def on_deadline(state: State, ci_id: str, kind: str, now: datetime) -> list[Finding]:
    """A CI's deadline passed: it may have gone stale (or, if only silent sources vouch for it,
    unverified), or stayed unconnected too long."""
    record = state.cmdb.get_unmerged(CIId(ci_id))
    if record is None:
        return []
    if kind == STALE and not record.stale and staleness.is_stale(state.policy, record, now):
        if state.unverified(record):
            return _unverified(state, record)
        record.stale = True
        state.touch("ci", record.id)  # the flag must reach the changelog, or a restart re-raises
        return [staleness.ci_stale(state.policy, record, now)]
    if kind == ORPHAN and not state.cmdb.has_relations(record.id):
        record.add_flag(ORPHAN)
        state.touch("ci", record.id)
        return [hygiene.ci_orphan(state.policy, record, now)]
    if kind == PHANTOM and record.first_seen is None:
        record.add_flag(PHANTOM)
        state.touch("ci", record.id)
        referenced_by = sorted(state.cmdb.graph.predecessors(record.id))
        return [hygiene.ci_phantom(state.policy, record, referenced_by, now)]
    return []
