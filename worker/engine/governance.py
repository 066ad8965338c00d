"""Change governance: assess changes, follow them to their outcome, judge deploys against them.

A deploy also refreshes its service like an observation from the pipeline's source (last seen,
owner, criticality, declared ``depends_on``), through the same path as discovery.
"""

from datetime import datetime

from cmdb_worker.rules import authorization, conflicts, precedence, risk
from cmdb_worker.rules import lessons as lesson_rules
from cmdb_worker.schemas.changes import (
    ChangeOutcomes,
    ChangeRecord,
    DeployEntry,
    Outcome,
    TeamHistory,
)
from cmdb_worker.schemas.ci import ObservedCI, Relation
from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.schemas.events import (
    ChangeRequested,
    ChangeUpdated,
    CIObserved,
    CIRetired,
    Deploy,
    InputEvent,
    payload_fields,
)
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.engine import discovery, lessons, teams
from cmdb_worker.worker.engine.operations import ChangeOnCI, DeployLinked
from cmdb_worker.worker.engine.state import (
    CHANGE,
    TEAM_HISTORY,
    TEAM_OUTCOMES,
    State,
)

OUTCOME_OF_STATE: dict[str, Outcome] = {
    "completed": "success", "failed": "failure", "rolled_back": "failure",
}  # fmt: skip


def on_change_requested(
    state: State, event: InputEvent, payload: ChangeRequested, now: datetime
) -> list[Finding]:
    _require_window_in_order(payload)
    change = state.changes.get(payload.change_id) or ChangeRecord(
        request=payload, requested_at=event.time, updated_at=event.time
    )
    return _apply(state, event, change, payload, True, now)


def on_change_updated(
    state: State, event: InputEvent, payload: ChangeUpdated, now: datetime
) -> list[Finding]:
    """Apply the fields that changed; reassess only if one the risk depends on did."""
    change = state.changes.get(payload.change_id)
    if change is None:
        raise InvalidEvent(
            "unknown_change", f"change {payload.change_id!r} was never requested (no "
            "itsm.change.requested for it), so there is nothing to update",
        )  # fmt: skip
    edits = {name: value for name, value in payload_fields(payload).items() if name != "change_id"}
    request = change.request.model_copy(update=edits)
    _require_window_in_order(request)
    return _apply(state, event, change, request, risk.matters(change.request, request), now)


def _require_window_in_order(request: ChangeRequested) -> None:
    start, end = request.planned_start, request.planned_end
    if start and end and end < start:
        raise InvalidEvent(
            "invalid_value", f"change {request.change_id}: planned_end {end.isoformat()} "
            f"is before planned_start {start.isoformat()}",
        )  # fmt: skip


def _apply(
    state: State, event: InputEvent, change: ChangeRecord, request: ChangeRequested,
    reassess: bool, now: datetime,
) -> list[Finding]:  # fmt: skip
    change.request, change.updated_at = request, max(change.updated_at, event.time)
    state.changes[change.id] = change
    state.touch(CHANGE, change.id)
    _remember_change(state, change)
    findings = _assess(state, change, event.time, now) if reassess else []
    change.record_version(event.time)
    index_change(state, change)
    return findings + _follow_state(state, event, change, now)


def index_change(state: State, change: ChangeRecord) -> None:
    """Keep the open-changes index in step with the change (also after a restore)."""
    state.open_changes.update(change, _ci_ids(state, change))


def _ci_ids(state: State, change: ChangeRecord) -> list[CIId]:
    return list(dict.fromkeys(state.cmdb.resolve(ref.ci_id) for ref in change.request.cis))


def _remember_change(state: State, change: ChangeRecord) -> None:
    for ci_id in _ci_ids(state, change):
        state.emit(ChangeOnCI(ci_id=ci_id, change_id=change.id))


def on_change_on_ci(state: State, named: ChangeOnCI, now: datetime) -> list[Finding]:
    """A change named a CI this engine owns: it joins the CI's history, once."""
    known = state.histories.get(named.ci_id)
    if known is None or named.change_id not in known.changes:
        history = state.history(named.ci_id)
        history.changes.append(named.change_id)
        history.keep_last(state.policy.correlation.history_per_ci)
    return []


def _assess(
    state: State, change: ChangeRecord, at: datetime, now: datetime, follow: bool = True
) -> list[Finding]:
    """Assess the change; with ``follow``, also reassess later changes it now conflicts with."""
    previous = change.assessment
    ids = _ci_ids(state, change)
    found = conflicts.find(state.cmdb.graph, change, ids, candidates(state, ids))
    scope = _scope(state, change, ids, found.earlier, now)
    assessment = risk.assess(state.policy, change.request, scope, now, change.revision + 1)
    change.assessment = assessment
    findings = [risk.change_assessed(change, assessment)]
    if assessment.missing_rollback and not (previous and previous.missing_rollback):
        findings.append(risk.change_missing_rollback(change, assessment))
    known_conflicts = previous.conflicts if previous else []
    findings += [
        conflicts.change_conflict(change, conflict, now)
        for conflict in scope.conflicts
        if conflict.change_id not in known_conflicts
    ]
    return findings + (_reassess_later(state, change, found.later, at, now) if follow else [])


def _reassess_later(
    state: State, change: ChangeRecord, later: list[str], at: datetime, now: datetime
) -> list[Finding]:
    """Later changes that ``change`` now overlaps carry the conflict: reassess those that don't."""
    findings: list[Finding] = []
    for other in (state.changes[change_id] for change_id in later):
        if other.assessment is None or change.id not in other.assessment.conflicts:
            findings += _assess(state, other, at, now, follow=False)
            other.record_version(at)
            state.touch(CHANGE, other.id)
    return findings


def _scope(
    state: State, change: ChangeRecord, ids: list[CIId], earlier: list[conflicts.Conflict],
    now: datetime,
) -> risk.Scope:  # fmt: skip
    graph = state.cmdb.graph
    known = [ci_id for ci_id in ids if ci_id in graph]
    bounds = state.policy.graph
    dependents = risk.blast_radius(
        graph, known, bounds.blast_radius_depth, bounds.blast_radius_limit
    )
    nodes = graph._node  # the node-attribute dicts themselves: a blast radius can be large
    records = {ci_id: nodes[ci_id]["ci"] for ci_id in [*known, *dependents]}
    unknown = [ci_id for ci_id in ids if ci_id not in graph]
    return risk.Scope(
        known, unknown, dependents, records, _recent_failures(state, change, known, now),
        earlier, teams.of_team(state.team_histories.values(), change.request.owner or ""),
    )  # fmt: skip


def candidates(state: State, ids: list[CIId]) -> list[conflicts.Candidate]:
    """Open changes on these CIs or next to them in the graph, from the index."""
    nearby = (state.changes[change_id] for change_id in state.open_changes.near(state.cmdb, ids))
    return [conflicts.Candidate(other, _ci_ids(state, other)) for other in nearby]


def _recent_failures(
    state: State, change: ChangeRecord, cis: list[CIId], now: datetime
) -> list[str]:
    """Other changes that failed, and deploys rolled back, on these CIs within the window."""
    since = now - state.policy.risk.recent_failures_window
    found: list[str] = []
    for history in filter(None, (state.histories.get(ci_id) for ci_id in cis)):
        others = (state.changes.get(other) for other in history.changes if other != change.id)
        found += [o.id for o in others if o and risk.failed(o) and o.updated_at >= since]
        found += [
            d.event_id for d in history.deploys if d.predicate == "rolledback" and d.at >= since
        ]
    return list(dict.fromkeys(found))


def _follow_state(
    state: State, event: InputEvent, change: ChangeRecord, now: datetime
) -> list[Finding]:
    current = change.request.state
    findings: list[Finding] = []
    if current in risk.IMPLEMENTED_STATES:
        findings = _implemented(state, change, event.id, event.time, f"state {current}", now)
    if current in OUTCOME_OF_STATE:
        _settle(state, change, OUTCOME_OF_STATE[current], event.time)
    return findings


def _implemented(
    state: State, change: ChangeRecord, event_id: str, at: datetime, how: str, now: datetime
) -> list[Finding]:
    """The change's first implementation: note when, and learn if it had no rollback plan."""
    if change.implemented_at is not None:
        return []
    change.implemented_at = at
    if risk.has_rollback_plan(change.request):
        return []
    subject = next(iter(_ci_ids(state, change)), CIId(change.id))
    return lessons.file(state, lesson_rules.rollback_missing(change, subject, event_id, how), now)


def _settle(state: State, change: ChangeRecord, outcome: Outcome, at: datetime) -> None:
    """Count a finished change once for its owner team (a later failure moves it across), in
    the partials of the change's owner partition (``engine.teams``)."""
    if change.outcome == outcome:
        return
    previous, change.outcome = change.outcome, outcome
    team = change.request.owner
    if team:
        owner = state.ownership.partition_of(change.id)
        _count_for_team(state, ChangeOutcomes(team=team, owner=owner), previous, outcome)
        _remember_for_team(state, TeamHistory(team=team, owner=owner), change.id, at, outcome)


def _count_for_team(
    state: State, partial: ChangeOutcomes, previous: Outcome | None, outcome: Outcome
) -> None:
    counts = state.team_outcomes.setdefault(partial.key, partial)
    if previous:
        counts.count(previous, -1)
    counts.count(outcome, +1)
    state.touch(TEAM_OUTCOMES, counts.key)


def _remember_for_team(
    state: State, partial: TeamHistory, change_id: str, at: datetime, outcome: Outcome
) -> None:
    """The owner team's recent outcomes, from which its change failure rate is judged."""
    history = state.team_histories.setdefault(partial.key, partial)
    history.record(change_id, at, outcome, state.policy.risk.team_history_window)
    state.touch(TEAM_HISTORY, history.key)


def on_deploy(state: State, event: InputEvent, payload: Deploy, now: datetime) -> list[Finding]:
    """A pipeline deployed, upgraded, rolled back or removed a service."""
    if payload.predicate == "removed":
        retired = CIRetired(ci=payload.service, reason="service.removed")
        return discovery.on_retired(state, event, retired, now)
    findings = _refresh_service(state, event, payload, now)
    service = state.cmdb.get(payload.service.ci_id)
    change = state.changes.get(payload.change_id) if payload.change_id else None
    entry = _entry(event, payload, service.id if service else payload.service.ci_id)
    findings += _authorize(state, entry, change, payload, service.owner if service else None, now)
    if entry.predicate == "rolledback":
        findings.append(risk.deploy_rolled_back(entry, change, now))
    _remember_deploy(state, entry)
    if entry.change_id:
        state.emit(DeployLinked(entry=entry))
    return findings


def _refresh_service(
    state: State, event: InputEvent, payload: Deploy, now: datetime
) -> list[Finding]:
    """The deploy as a sighting by the pipeline's source; its artifact becomes the version."""
    findings = discovery.on_observed(state, event, _as_observation(payload), now)
    service = state.cmdb.get(payload.service.ci_id)
    if service and payload.artifact_id:
        _set_version(state, service, event, payload.artifact_id)
    return findings


def _set_version(state: State, service: CIRecord, event: InputEvent, artifact: str) -> None:
    """The latest deploy's artifact; with ``identification.precedence`` for ``version``, the
    most trusted pipeline's (each pipeline's own kept, as for discovery attributes)."""
    ranking = state.policy.identification.ranking("version")
    if ranking is None:
        if service.last_seen == event.time:
            service.version = artifact
        return
    service.reported.setdefault("version", {})[event.source] = artifact
    service.version = precedence.value_in_force(ranking, service, "version")


def _entry(event: InputEvent, payload: Deploy, service_id: str) -> DeployEntry:
    return DeployEntry(
        event_id=event.id, at=event.time, predicate=payload.predicate, service=service_id,
        artifact_id=payload.artifact_id, change_id=payload.change_id,
    )  # fmt: skip


def _as_observation(payload: Deploy) -> CIObserved:
    ci = ObservedCI(
        **payload.service.model_dump(), owner=payload.owner, criticality=payload.criticality
    )
    relations = [Relation(type="depends_on", target=target) for target in payload.depends_on]
    return CIObserved(ci=ci, relations=relations, relations_complete=False)


def _authorize(
    state: State, entry: DeployEntry, change: ChangeRecord | None, payload: Deploy,
    owner: str | None, now: datetime,
) -> list[Finding]:  # fmt: skip
    """In a governed environment, a deploy needs a change that covers it (a rollback does not)."""
    environment = payload.service.environment
    if entry.predicate == "rolledback" or not state.policy.governance.governs(environment):
        return []
    facts = _facts(state, entry, change, environment)
    reasons = authorization.unauthorized_reasons(state.policy, facts)
    if not reasons:
        return []
    entry.authorized = False
    filing = lesson_rules.unauthorized_deploys(entry, owner, reasons)
    finding = authorization.deploy_unauthorized(entry, reasons, environment, now)
    return [finding, *lessons.file(state, filing, now)]


def _facts(
    state: State, entry: DeployEntry, change: ChangeRecord | None, environment: str | None
) -> authorization.DeployFacts:
    """The deploy with its change as it stood at the deploy's time, its CIs resolved now."""
    version = change.as_of(entry.at) if change else None
    cis = frozenset(state.cmdb.resolve(CIId(ci)) for ci in version.cis) if version else frozenset()
    return authorization.DeployFacts(entry, environment, version, cis)


def _remember_deploy(state: State, entry: DeployEntry) -> None:
    history = state.history(entry.service)
    history.deploys.append(entry)
    history.keep_last(state.policy.correlation.history_per_ci)


def link(state: State, entry: DeployEntry, change: ChangeRecord, now: datetime) -> list[Finding]:
    """A deploy carries out its change: approved (or pre-approved) becomes implementing; a
    rollback fails it."""
    change.deploys.append(entry.event_id)
    change.deployed_services = list(dict.fromkeys([*change.deployed_services, entry.service]))
    current = change.request.state
    if current != "implementing" and authorization.authorising_state(current, change.preapproved):
        change.request = change.request.model_copy(update={"state": "implementing"})
        change.record_version(entry.at)
    state.touch(CHANGE, change.id)
    how = f"{entry.predicate} to {entry.service}"
    findings = _implemented(state, change, entry.event_id, entry.at, how, now)
    if entry.predicate == "rolledback":
        _settle(state, change, "failure", entry.at)
    return findings
