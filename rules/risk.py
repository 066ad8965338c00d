"""Change risk: score a change, route it, and report what makes it risky.

A change's score is the sum of the points of the reasons that apply (capped at 100); each reason
is one small function below, listed in ``REASON_RULES``. The level follows from the score; the
route is ``cab`` for the policy's ``cab_types`` and for changes planned into a freeze window,
``fast_track`` up to ``fast_track_max_level``. A low-risk ``standard`` change from a template the
policy lists is pre-approved (``rules.authorization`` lets its deploys through without an
approval event). Deploy authorisation itself lives in ``rules.authorization``.
"""

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import networkx as nx

from cmdb_worker.rules import windows
from cmdb_worker.rules.conflicts import Conflict
from cmdb_worker.rules.findings import make_finding
from cmdb_worker.rules.policy import Policy
from cmdb_worker.rules.staleness import is_stale
from cmdb_worker.schemas.changes import (
    LEVELS,
    Assessment,
    ChangeRecord,
    Dependent,
    DeployEntry,
    Level,
    Route,
    TeamHistory,
)
from cmdb_worker.schemas.events import ChangeFields, ChangeRequested
from cmdb_worker.schemas.findings import Finding, Reason, Severity
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord

IMPLEMENTED_STATES = frozenset({"implementing", "completed", "failed", "rolled_back"})
FAILED_STATES = frozenset({"failed", "rolled_back"})
RISK_FIELDS = (
    "type", "template", "cis", "owner", "planned_start", "planned_end",
    "rollback_plan", "rollback_automated", "canary", "db_migration",
)  # fmt: skip
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
    conflicts: list[Conflict]
    """Earlier requested open changes planned at an overlapping time on related CIs."""
    team_history: TeamHistory | None
    """The owner team's recently finished changes (None when the change names no owner)."""


def reachable(
    neighbours: Callable[[CIId], Iterable[CIId]], roots: Iterable[CIId], depth: int,
    limit: int | None = None,
) -> dict[CIId, int]:  # fmt: skip
    """Every CI within ``depth`` hops of ``roots``, with its hop count; each once, roots excluded.

    Breadth first, so each CI gets its shortest distance; cycles and diamonds are visited once.
    With ``limit``, no further ring is explored once ``limit`` CIs are found: the result is then
    the nearest rings, whole (which CIs a ring holds does not depend on the graph's insertion
    order, so the answer is the same live and after a rebuild), and at least ``limit`` long.
    """
    seen = set(roots)
    hops: dict[CIId, int] = {}
    frontier = list(seen)
    for distance in range(1, depth + 1):
        frontier = _next_ring(neighbours, frontier, seen)
        if not frontier:
            break
        hops.update(dict.fromkeys(frontier, distance))
        if limit is not None and len(hops) >= limit:
            break
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


def blast_radius(
    graph: nx.DiGraph, roots: Iterable[CIId], depth: int, limit: int | None = None
) -> dict[CIId, int]:
    """The CIs that depend on ``roots``, directly or transitively (edges point at dependencies),
    up to the nearest rings that hold ``limit`` CIs."""
    return reachable(graph._pred.__getitem__, roots, depth, limit)


def upstream(graph: nx.DiGraph, root: CIId, depth: int) -> dict[CIId, int]:
    """What ``root`` depends on, directly or transitively, with hop counts."""
    return reachable(graph._succ.__getitem__, [root], depth)


def has_rollback_plan(change: ChangeFields) -> bool:
    """An empty or blank ``rollback_plan`` counts as none."""
    return bool(change.rollback_plan and change.rollback_plan.strip())


def matters(before: ChangeFields, after: ChangeFields) -> bool:
    """Whether an update touched a field the assessment depends on."""
    return any(getattr(before, name) != getattr(after, name) for name in RISK_FIELDS)


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
    count, large = len(scope.dependents), policy.risk.large_blast_radius
    if count < large:
        return None
    counted = f"at least {count}" if bounded(policy, scope) else str(count)
    return _reason(policy, "large_blast_radius", f"{counted} dependent CIs (large from {large})")


def bounded(policy: Policy, scope: Scope) -> bool:
    """Whether counting stopped at the policy's ``graph.blast_radius_limit``."""
    return len(scope.dependents) >= policy.graph.blast_radius_limit


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


def _stale_dependents(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    stale = [ci for ci in scope.dependents if is_stale(policy, scope.records[ci], now)]
    if not stale:
        return None
    nearest = sorted(stale, key=lambda ci: (scope.dependents[ci], ci))
    return _reason(
        policy, "stale_dependents",
        f"{len(stale)} stale CIs in the blast radius, the impact may be misjudged: "
        + _listed(nearest),
    )  # fmt: skip


def _freeze(policy: Policy, change: ChangeRequested, scope: Scope, now: datetime) -> Reason | None:
    window = windows.planned_window(change)
    if window is None:
        return None
    environments = {ref.environment for ref in change.cis}
    frozen = windows.freezes_during(policy, environments, window)
    if not frozen:
        return None
    return _reason(
        policy, "in_freeze_window",
        "planned into freeze " + _listed([windows.describe(freeze) for freeze in frozen]),
    )  # fmt: skip


def _conflicting(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    if not scope.conflicts:
        return None
    details = [conflict.detail for conflict in scope.conflicts]
    return _reason(
        policy, "conflicting_change", "overlaps open changes requested earlier: " + _listed(details)
    )


def _team_failure_rate(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime
) -> Reason | None:
    if scope.team_history is None:
        return None
    window = policy.risk.team_history_window
    failed, finished = scope.team_history.failure_rate(now - window)
    threshold = policy.risk.team_failure_rate_threshold
    if finished < policy.risk.team_history_min_changes or failed / finished <= threshold:
        return None
    return _reason(
        policy, "team_failure_rate",
        f"team {scope.team_history.team}: {failed} of {finished} changes failed within "
        f"{window.days}d ({failed / finished:.0%}, above {threshold:.0%})",
    )  # fmt: skip


REASON_RULES: list[ReasonRule] = [
    _rollback, _db_migration, _canary, _emergency, _critical_ci, _large_blast_radius,
    _stale_ci, _stale_dependents, _recent_failures, _unknown_ci, _freeze, _conflicting,
    _team_failure_rate,
]  # fmt: skip


def level_for(policy: Policy, score: int) -> Level:
    levels = policy.risk.levels
    floors: list[tuple[Level, int]] = [
        ("critical", levels.critical), ("high", levels.high), ("medium", levels.medium),
    ]  # fmt: skip
    return next((level for level, floor in floors if score >= floor), "low")


def route_for(policy: Policy, change: ChangeRequested, level: Level, frozen: bool) -> Route:
    if frozen or change.type in policy.risk.cab_types:
        return "cab"
    fast = LEVELS.index(level) <= LEVELS.index(policy.risk.fast_track_max_level)
    return "fast_track" if fast else "cab"


def preapproved(policy: Policy, change: ChangeRequested, level: Level, route: Route) -> bool:
    """A standard change from a listed template, low risk and not held for CAB."""
    listed = change.type == "standard" and policy.governance.lists_template(change.template)
    return listed and level == "low" and route == "fast_track"


def assess(
    policy: Policy, change: ChangeRequested, scope: Scope, now: datetime, revision: int
) -> Assessment:
    """Score, level and route a change from the reasons that apply to it."""
    reasons = [reason for rule in REASON_RULES if (reason := rule(policy, change, scope, now))]
    score = min(100, sum(reason.points or 0 for reason in reasons))
    level = level_for(policy, score)
    route = route_for(policy, change, level, any(r.code == "in_freeze_window" for r in reasons))
    return Assessment(
        revision=revision, assessed_at=now, score=score, level=level, route=route,
        blast_radius=len(scope.dependents), blast_radius_bounded=bounded(policy, scope),
        reasons=reasons, cis=scope.cis,
        unknown_cis=scope.unknown, top_dependents=top_dependents(policy, scope),
        missing_rollback=level in ("high", "critical") and not has_rollback_plan(change),
        preapproved=preapproved(policy, change, level, route),
        conflicts=[conflict.change_id for conflict in scope.conflicts],
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
        change_type=request.type, template=request.template, title=request.title,
        owner=request.owner, state=request.state,
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


def deploy_rolled_back(deploy: DeployEntry, change: ChangeRecord | None, now: datetime) -> Finding:
    detail = f"rolled back to {deploy.artifact_id or 'the previous version'}"
    if change is not None:
        detail += f"; change {change.id} counts as failed"
    return make_finding(
        "deploy_rolled_back", deploy.service, "warning", now, deploy.event_id,
        [Reason(code="rolled_back", detail=detail)],
        change_id=deploy.change_id, artifact_id=deploy.artifact_id, deploy_event=deploy.event_id,
    )  # fmt: skip
