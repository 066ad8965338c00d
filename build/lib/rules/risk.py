"""Change risk and deploy governance: score a change, route it, and judge deploys against it.

A change's score is the sum of the points of the reasons that apply (capped at 100); each reason
is one small function below, listed in ``REASON_RULES``. A change counts as *approved* for a
deploy in states ``approved``, ``implementing`` and ``completed``: the ITSM system said yes and
has not since said it failed. ``requested``, ``rejected``, ``cancelled``, ``failed`` and
``rolled_back`` do not authorise a deploy.
"""

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import networkx as nx

from rules.findings import make_finding
from rules.policy import Policy
from rules.staleness import is_stale
from schemas.changes import (
    LEVELS,
    Assessment,
    ChangeRecord,
    Dependent,
    DeployEntry,
    Level,
    Route,
)
from schemas.events import ChangeFields, ChangeRequested
from schemas.findings import Finding, Reason, Severity
from schemas.ids import CIId
from schemas.records import CIRecord

APPROVED_STATES = frozenset({"approved", "implementing", "completed"})
IMPLEMENTED_STATES = frozenset({"implementing", "completed", "failed", "rolled_back"})
FAILED_STATES = frozenset({"failed", "rolled_back"})
RISK_FIELDS = ("type", "cis", "rollback_plan", "rollback_automated", "canary", "db_migration")
SEVERITY: dict[Level, Severity] = {
    "low": "info", "medium": "info", "high": "warning", "critical": "critical",
}  # fmt: skip


@dataclass(frozen=True)
class Scope:
    """What the CMDB knows about a change's CIs, gathered by the worker for the rules."""

    cis: list[CIId]
    """The change's CIs that the CMDB knows, resolved through aliases."""
    unknown: list[CIId]
    dependents: dict[CIId, int]
    """The blast radius: each dependent CI with its distance in hops."""
    records: Mapping[CIId, CIRecord]
    """The records of every CI in ``cis`` and ``dependents``."""
    recent_failures: list[str]
    """Failed changes and rolled-back deploys on the CIs in scope, within the policy's window."""


def reachable(
    neighbours: Callable[[CIId], Iterable[CIId]], roots: Iterable[CIId], depth: int
) -> dict[CIId, int]:
    """Every CI within ``depth`` hops of ``roots``, with its hop count; each once, roots excluded.

    Breadth first, so each CI gets its shortest distance; cycles and diamonds are visited once.
    """
    seen = set(roots)
    hops: dict[CIId, int] = {}
    frontier = list(seen)
    for distance in range(1, depth + 1):
        frontier = _next_ring(neighbours, frontier, seen)
        if not frontier:
            break
        hops.update(dict.fromkeys(frontier, distance))
    return hops


def _next_ring(
    neighbours: Callable[[CIId], Iterable[CIId]], frontier: list[CIId], seen: set[CIId]
) -> list[CIId]:
    found: list[CIId] = []
    for node in frontier:
        for neighbour in neighbours(node):
            if neighbour not in seen:
                seen.add(neighbour)
                found.append(neighbour)
    return found


def blast_radius(graph: nx.DiGraph, roots: Iterable[CIId], depth: int) -> dict[CIId, int]:
    """The CIs that depend on ``roots``, directly or transitively (edges point at dependencies)."""
    return reachable(graph.pred.__getitem__, roots, depth)


def upstream(graph: nx.DiGraph, root: CIId, depth: int) -> dict[CIId, int]:
    """What ``root`` depends on, directly or transitively, with hop counts."""
    return reachable(graph.succ.__getitem__, [root], depth)


def has_rollback_plan(change: ChangeFields) -> bool:
    """An empty or blank ``rollback_plan`` counts as none."""
    return bool(change.rollback_plan and change.rollback_plan.strip())


def matters(before: ChangeFields, after: ChangeFields) -> bool:
    """Whether an update touched a field the assessment depends on."""
    return any(getattr(before, name) != getattr(after, name) for name in RISK_FIELDS)


def approves(change: ChangeRecord | None) -> bool:
    return change is not None and change.request.state in APPROVED_STATES


def failed(change: ChangeRecord) -> bool:
    return change.outcome == "failure" or change.request.state in FAILED_STATES


def _reason(policy: Policy, code: str, detail: str) -> Reason:
    return Reason(code=code, points=getattr(policy.risk.weights, code), detail=detail)


ReasonRule = Callable[[Policy, ChangeRequested, Scope, datetime], Reason | None]


def _rollback(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    if not has_rollback_plan(change):
        return _reason(policy, "no_rollback_plan", "no rollback plan: a failure cannot be undone")
    if not change.rollback_automated:
        return _reason(policy, "rollback_manual", "the rollback plan is manual, not automated")
    return None


def _db_migration(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    if not change.db_migration:
        return None
    return _reason(policy, "db_migration", "includes a database migration, hard to reverse")


def _canary(policy: Policy, change: ChangeRequested, scope: Scope, now: datetime) -> Reason | None:
    if change.canary:
        return None
    return _reason(policy, "no_canary", "no canary: the change reaches all traffic at once")


def _emergency(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    if change.type != "emergency":
        return None
    return _reason(policy, "emergency", "emergency change: less time to review and test")


def _critical_ci(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    limit = policy.risk.critical_criticality
    critical = sorted(
        (scope.dependents.get(ci_id, 0), ci_id, record.criticality)
        for ci_id, record in scope.records.items()
        if record.criticality is not None and record.criticality <= limit
    )
    if not critical:
        return None
    named = [f"{ci_id} (criticality {level}, {_where(hops)})" for hops, ci_id, level in critical]
    return _reason(policy, "critical_ci", "critical CIs affected: " + _listed(named))


def _where(hops: int) -> str:
    return "in scope" if hops == 0 else f"dependent at {hops} hop{'s' * (hops > 1)}"


def _listed(items: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` items, then how many more: a reason stays readable at any scale."""
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")


def _large_blast_radius(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    count, limit = len(scope.dependents), policy.risk.large_blast_radius
    if count < limit:
        return None
    return _reason(policy, "large_blast_radius", f"{count} dependent CIs (large from {limit})")


def _stale_ci(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    stale = [ci for ci in scope.cis if is_stale(policy, scope.records[ci], now)]
    if not stale:
        return None
    return _reason(
        policy, "stale_ci_in_scope", "stale in the CMDB, facts may be wrong: " + _listed(stale)
    )


def _recent_failures(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    if not scope.recent_failures:
        return None
    window = policy.risk.recent_failures_window
    return _reason(
        policy, "recent_failures",
        f"failed on these CIs within {window.days}d: " + _listed(scope.recent_failures),
    )  # fmt: skip


def _unknown_ci(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    if not scope.unknown:
        return None
    return _reason(policy, "unknown_ci", "not in the CMDB: " + _listed(scope.unknown))


REASON_RULES: list[ReasonRule] = [
    _rollback, _db_migration, _canary, _emergency, _critical_ci,
    _large_blast_radius, _stale_ci, _recent_failures, _unknown_ci,
]  # fmt: skip


def level_for(policy: Policy, score: int) -> Level:
    levels = policy.risk.levels
    floors: list[tuple[Level, int]] = [
        ("critical", levels.critical), ("high", levels.high), ("medium", levels.medium),
    ]  # fmt: skip
    return next((level for level, floor in floors if score >= floor), "low")


def route_for(policy: Policy, change: ChangeRequested, level: Level) -> Route:
    if change.type in policy.risk.cab_types:
        return "cab"
    fast = LEVELS.index(level) <= LEVELS.index(policy.risk.fast_track_max_level)
    return "fast_track" if fast else "cab"


def assess(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime, revision: int
) -> Assessment:
    """Score, level and route a change from the reasons that apply to it."""
    reasons = [reason for rule in REASON_RULES if (reason := rule(policy, change, scope, now))]
    score = min(100, sum(reason.points or 0 for reason in reasons))
    level = level_for(policy, score)
    return Assessment(
        revision=revision, assessed_at=now, score=score, level=level,
        route=route_for(policy, change, level), blast_radius=len(scope.dependents),
        reasons=reasons, cis=scope.cis, unknown_cis=scope.unknown,
        top_dependents=top_dependents(policy, scope),
        missing_rollback=level in ("high", "critical") and not has_rollback_plan(change),
    )  # fmt: skip


def top_dependents(policy: Policy, scope: Scope) -> list[Dependent]:
    """The nearest, most critical dependents first (a partial sort: blast radii can be huge)."""
    ranked = heapq.nsmallest(
        policy.risk.top_dependents,
        scope.dependents.items(),
        key=lambda item: (item[1], scope.records[item[0]].criticality or 5, item[0]),
    )
    return [
        Dependent(id=ci_id, hops=hops, criticality=scope.records[ci_id].criticality)
        for ci_id, hops in ranked
    ]


def change_assessed(change: ChangeRecord, assessment: Assessment) -> Finding:
    request = change.request
    return make_finding(
        "change_assessed", change.id, SEVERITY[assessment.level], assessment.assessed_at,
        str(assessment.revision), assessment.reasons,
        **assessment.model_dump(mode="json", exclude={"reasons", "assessed_at"}),
        change_type=request.type, title=request.title, owner=request.owner, state=request.state,
    )  # fmt: skip


def change_missing_rollback(change: ChangeRecord, assessment: Assessment) -> Finding:
    reason = Reason(
        code="no_rollback_plan",
        detail=f"level {assessment.level} (score {assessment.score}) and no rollback plan",
    )
    return make_finding(
        "change_missing_rollback", change.id, SEVERITY[assessment.level], assessment.assessed_at,
        str(assessment.revision), [reason], level=assessment.level, score=assessment.score,
        owner=change.request.owner,
    )  # fmt: skip


def unauthorized_because(deploy: DeployEntry, change: ChangeRecord | None) -> Reason | None:
    """Why a deploy is not covered by an approved change, or None when it is."""
    if deploy.change_id is None:
        return Reason(code="no_change", detail="no change linked (customData.change_id)")
    if change is None:
        return Reason(code="unknown_change", detail=f"linked change {deploy.change_id} is unknown")
    if not approves(change):
        return Reason(
            code="change_not_approved",
            detail=f"linked change {change.id} is {change.request.state}, not approved",
        )
    return None


def deploy_unauthorized(
    deploy: DeployEntry, reason: Reason, environment: str | None, now: datetime
) -> Finding:
    return make_finding(
        "deploy_unauthorized", deploy.service, "critical", now, deploy.event_id, [reason],
        environment=environment, change_id=deploy.change_id, artifact_id=deploy.artifact_id,
        deploy_event=deploy.event_id, deployed_at=deploy.at,
    )  # fmt: skip


def deploy_rolled_back(deploy: DeployEntry, change: ChangeRecord | None, now: datetime) -> Finding:
    detail = f"rolled back to {deploy.artifact_id or 'the previous version'}"
    if change is not None:
        detail += f"; change {change.id} counts as failed"
    return make_finding(
        "deploy_rolled_back", deploy.service, "warning", now, deploy.event_id,
        [Reason(code="rolled_back", detail=detail)],
        change_id=deploy.change_id, artifact_id=deploy.artifact_id, deploy_event=deploy.event_id,
    )  # fmt: skip
