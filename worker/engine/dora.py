"""The DORA four keys, kept in the state as each event moves them.

The handlers of deploys, changes and incidents are wrapped: a wrapper notes what it needs before
the handler runs, lets it run, and counts what changed. Only applied events get here (a
redelivery is recognised before any handler), and the totals are state in the changelog, so
neither a redelivery nor a restart counts anything twice.

- deployments: every ``service.deployed``/``upgraded``, by service, environment and the service's
  owner team.
- lead time: from the change's start to the first ``deployed``/``upgraded`` linked to it through
  ``customData.change_id``. The start is the ITSM change's ``requested`` time; for an id no ITSM
  change has, the time of a CDEvents ``change.merged`` naming it. Team: the deployed service's.
- change failures: a change whose outcome becomes a failure (state ``failed``/``rolled_back``, or
  a rollback linked to it), once per change, for the owner of the service it deployed (or names;
  else the change's owner); a ``service.rolledback`` with no change counts as one for the
  service's owner.
- time to restore: from ``incident.detected``/``reported`` to its ``resolved``, for the owner of
  the incident's CI.

Each event adds to its owner partition's totals for the team (``dora_team/<owner>/<team>``, the
partition of ``ownership.home_key``; a change a deploy fails counts in the change's partition, as
its owner links them: ``on_deploy_linked``), so an owner writes only its own keys;
``teams.by_team`` sums them.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cmdb_worker.schemas.changes import ChangeRecord
from cmdb_worker.schemas.dora import DoraTeam, MergedChange
from cmdb_worker.schemas.events import ChangeMerged, Deploy, Incident, InputEvent
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.engine import governance, incidents
from cmdb_worker.worker.engine.operations import DeployLinked
from cmdb_worker.worker.engine.state import DORA_TEAM, MERGED_CHANGE, State

Handler = Callable[[State, InputEvent, Any, datetime], list[Finding]]
NO_TEAM = "none"
DEPLOYS = frozenset({"deployed", "upgraded"})


def totals(state: State, team: str | None, home: str | None) -> DoraTeam:
    """The team's totals among the events of ``home``'s owner partition (an event's
    ``home_key``; a change's id), to add to (created on first use), marked as changed."""
    name = team or NO_TEAM
    partial = DoraTeam(team=name, owner=state.ownership.partition_of(home or name))
    state.touch(DORA_TEAM, partial.key)
    return state.dora.setdefault(partial.key, partial)


def owner_of(state: State, ci_id: str | None) -> str | None:
    record = state.cmdb.get(CIId(ci_id)) if ci_id else None
    return record.owner if record else None


def counting_failures(handler: Handler) -> Handler:
    """``handler`` for an event naming ``payload.change_id``; counts the change if it now failed."""

    def counted(state: State, event: InputEvent, payload: Any, now: datetime) -> list[Finding]:
        failed_before = _failed(state.changes.get(payload.change_id or ""))
        findings = handler(state, event, payload, now)
        change = state.changes.get(payload.change_id or "")
        _count_if_failed(state, change, failed_before, state.home)
        return findings

    return counted


def _change_team(state: State, change: ChangeRecord) -> str | None:
    """The owner of the first service the change deployed (or names), else the change's owner:
    the team its deploys count for, so failures and deployments divide like by like."""
    services = change.deployed_services or [ref.ci_id for ref in change.request.cis]
    return owner_of(state, next(iter(services), None)) or change.request.owner


def _count_if_failed(
    state: State, change: ChangeRecord | None, failed_before: bool, home: str | None
) -> None:
    """A change that has just failed counts once, for its team, in ``home``'s partition."""
    if change is not None and _failed(change) and not failed_before:
        totals(state, _change_team(state, change), home).change_failures += 1


def _failed(change: ChangeRecord | None) -> bool:
    return change is not None and change.outcome == "failure"


def on_deploy(state: State, event: InputEvent, payload: Deploy, now: datetime) -> list[Finding]:
    """Count the deploy and, on a change's first deploy, its lead time; a bare rollback fails."""
    change = state.changes.get(payload.change_id) if payload.change_id else None
    first_link = change is None or not change.deploys
    findings = governance.on_deploy(state, event, payload, now)
    service = state.cmdb.resolve(payload.service.ci_id)
    team = owner_of(state, service)
    if payload.predicate in DEPLOYS:
        counts = totals(state, team, state.home)
        _count_deploy(counts, payload)
        if payload.change_id and first_link:
            _lead_time(state, counts, payload.change_id, event.time)
    elif payload.predicate == "rolledback" and change is None:
        totals(state, team, state.home).change_failures += 1
    return findings


def on_deploy_linked(state: State, linked: DeployLinked, now: datetime) -> list[Finding]:
    """A deploy named a change this engine owns: link them, once; a change its deploy fails
    counts as a failure (in the change's partition's totals), and its first deploy uses up the
    merge that started its lead time."""
    entry, change_id = linked.entry, linked.entity
    change = state.changes.get(change_id)
    if entry.predicate in DEPLOYS and (change is None or not change.deploys):
        _use_up_merge(state, change_id)
    if change is None or entry.event_id in change.deploys:
        return []
    failed_before = _failed(change)
    findings = governance.link(state, entry, change, now)
    _count_if_failed(state, change, failed_before, change.id)
    return findings


def _count_deploy(team: DoraTeam, payload: Deploy) -> None:
    deployments = team.deployments
    key = f"{payload.service.environment or NO_TEAM}|{payload.service.name}"
    deployments[key] = deployments.get(key, 0) + 1


def _lead_time(state: State, team: DoraTeam, change_id: str, deployed_at: datetime) -> None:
    """The change's first deploy: observe the time since it started, if a start is known (the
    change's owner uses up the merge: ``on_deploy_linked``)."""
    merged = state.merged_changes.get(change_id)
    change = state.changes.get(change_id)
    started = change.requested_at if change else merged.merged_at if merged else None
    if started is not None:
        seconds = max((deployed_at - started).total_seconds(), 0.0)
        team.lead_time.observe(seconds)


def _use_up_merge(state: State, change_id: str) -> None:
    if state.merged_changes.pop(change_id, None) is not None:
        state.touch(MERGED_CHANGE, change_id)


def on_change_merged(
    state: State, event: InputEvent, payload: ChangeMerged, now: datetime
) -> list[Finding]:
    """Remember when a change merged (its earliest merge), until its first deploy."""
    change = state.changes.get(payload.change_id)
    known = state.merged_changes.get(payload.change_id)
    if (change is None or not change.deploys) and (known is None or event.time < known.merged_at):
        state.merged_changes[payload.change_id] = MergedChange(
            change_id=payload.change_id, merged_at=event.time
        )
        state.touch(MERGED_CHANGE, payload.change_id)
    return []


def on_incident(state: State, event: InputEvent, payload: Incident, now: datetime) -> list[Finding]:
    """An incident's first resolve observes its time to restore."""
    known = state.incidents.get(payload.incident_id)
    was_open = known is not None and known.resolved_at is None
    findings = incidents.on_incident(state, event, payload, now)
    incident = state.incidents.get(payload.incident_id)
    if was_open and incident is not None and incident.resolved_at is not None:
        seconds = max((incident.resolved_at - incident.detected_at).total_seconds(), 0.0)
        team = owner_of(state, incident.ci)
        totals(state, team, state.home).time_to_restore.observe(seconds)
    return findings
