"""Incidents: correlate each with the recent changes and deploys on and upstream of its CI.

Only the histories of the incident's CI and of what it depends on (bounded by
``correlation.max_hops``) are read, never all changes. A second ``detected``/``reported`` for an
incident that is still open adds nothing; one after ``resolved`` is a new occurrence. A
``resolved`` for an incident never seen has no effect.
"""

from collections.abc import Iterator
from datetime import datetime

from cmdb_worker.rules import correlation, risk
from cmdb_worker.rules import lessons as lesson_rules
from cmdb_worker.schemas.changes import DeployEntry, IncidentEntry, IncidentRecord, Suspect
from cmdb_worker.schemas.events import Incident, InputEvent
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.engine import lessons
from cmdb_worker.worker.engine.state import INCIDENT, State


def on_incident(state: State, event: InputEvent, payload: Incident, now: datetime) -> list[Finding]:
    if payload.predicate == "resolved":
        return _resolve(state, event, payload)
    known = state.incidents.get(payload.incident_id)
    if known is not None and known.resolved_at is None:
        return []
    ci = state.cmdb.resolve(payload.service.ci_id) if payload.service else None
    incident = IncidentRecord(
        incident_id=payload.incident_id, ci=ci, detected_at=event.time, event_id=event.id,
        description=payload.description, suspects=_suspects(state, ci, event.time) if ci else [],
    )  # fmt: skip
    state.incidents[incident.incident_id] = incident
    state.touch(INCIDENT, incident.incident_id)
    filings = [_blame(state, incident), _repeats(state, incident)]
    return [correlation.incident_correlated(incident, now), *lessons.file_all(state, filings, now)]


def _resolve(state: State, event: InputEvent, payload: Incident) -> list[Finding]:
    incident = state.incidents.get(payload.incident_id)
    if incident is not None and incident.resolved_at is None:
        incident.resolved_at = event.time
        state.touch(INCIDENT, incident.incident_id)
    return []


def _suspects(state: State, ci: CIId, at: datetime) -> list[Suspect]:
    """Ranked suspects; a change seen on several CIs counts once, at its nearest."""
    reach = {ci: 0}
    if ci in state.cmdb.graph:
        reach |= risk.upstream(state.cmdb.graph, ci, state.policy.correlation.max_hops)
    found: dict[tuple[str, str], Suspect] = {}
    for node, hops in sorted(reach.items(), key=lambda item: item[1]):
        for candidate in _candidates(state, node, hops, at):
            found.setdefault((candidate.kind, candidate.id), candidate)
    return correlation.rank(state.policy, found.values(), at)


def _candidates(state: State, ci: CIId, hops: int, at: datetime) -> Iterator[Suspect]:
    history = state.histories.get(ci)
    if history is None:
        return
    for change_id in history.changes:
        if suspect := _change_suspect(state, change_id, ci, hops, at):
            yield suspect
    for deploy in history.deploys:
        if correlation.in_lookback(state.policy, deploy.at, at):
            yield _deploy_suspect(state, deploy, hops)


def _change_suspect(
    state: State, change_id: str, ci: CIId, hops: int, at: datetime
) -> Suspect | None:
    change = state.changes.get(change_id)
    when = correlation.change_time(change) if change else None
    if change is None or when is None or not correlation.in_lookback(state.policy, when, at):
        return None
    return Suspect(
        kind="change", id=change.id, ci=ci, hops=hops, at=when, change_id=change.id,
        failed=risk.failed(change), no_rollback_plan=not risk.has_rollback_plan(change.request),
    )  # fmt: skip


def _deploy_suspect(state: State, deploy: DeployEntry, hops: int) -> Suspect:
    change = state.changes.get(deploy.change_id) if deploy.change_id else None
    return Suspect(
        kind="deploy", id=deploy.event_id, ci=deploy.service, hops=hops, at=deploy.at,
        change_id=change.id if change else None,
        failed=deploy.predicate == "rolledback" or (change is not None and risk.failed(change)),
        no_rollback_plan=change is not None and not risk.has_rollback_plan(change.request),
        unauthorized=not deploy.authorized,
    )  # fmt: skip


def _blame(state: State, incident: IncidentRecord) -> lesson_rules.Filing | None:
    change_id = correlation.blamed_change(incident.suspects)
    change = state.changes.get(change_id) if change_id else None
    if change is None:
        return None
    return lesson_rules.change_caused_incident(incident, change, incident.suspects[0])


def _repeats(state: State, incident: IncidentRecord) -> lesson_rules.Filing | None:
    """Count the incident on its CI; the Nth within the window files ``repeat_incidents``."""
    if incident.ci is None:
        return None
    history = state.history(incident.ci)
    history.incidents.append(
        IncidentEntry(incident_id=incident.incident_id, at=incident.detected_at)
    )
    history.keep_last(state.policy.correlation.history_per_ci)
    record = state.cmdb.get(CIId(incident.ci))
    return lesson_rules.repeated_incidents(
        state.policy, incident.ci, record.owner if record else None, history.incidents,
        incident.detected_at,
    )  # fmt: skip
