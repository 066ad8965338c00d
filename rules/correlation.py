"""Incident correlation: rank the recent changes and deploys on and upstream of an incident's CI.

A suspect's likelihood is the sum of: proximity (``same_ci`` on the incident's own CI, less
``hop_penalty`` per hop upstream), recency (``recency`` at the incident's time, falling linearly
to 0 at the start of the lookback window), and a bonus for each aggravating fact: it failed (or
was rolled back), it had no rollback plan, it was deployed without an approved change.
"""

from collections.abc import Iterable
from datetime import datetime

from cmdb_worker.rules.findings import make_finding
from cmdb_worker.rules.policy import CorrelationWeights, Policy
from cmdb_worker.schemas.changes import ChangeRecord, IncidentRecord, Suspect
from cmdb_worker.schemas.findings import Finding, Reason

Part = tuple[int, str]
WITHDRAWN_STATES = frozenset({"rejected", "cancelled"})


def in_lookback(policy: Policy, at: datetime, incident_at: datetime) -> bool:
    return incident_at - policy.correlation.lookback <= at <= incident_at


def change_time(change: ChangeRecord) -> datetime | None:
    """When a change may have hit: first implemented, else its planned start; None if withdrawn."""
    if change.request.state in WITHDRAWN_STATES:
        return None
    return change.implemented_at or change.request.planned_start


def judged(policy: Policy, candidate: Suspect, incident_at: datetime) -> Suspect:
    """The candidate with its likelihood score and, in ``why``, what it is made of."""
    minutes = int((incident_at - candidate.at).total_seconds() // 60)
    weights = policy.correlation.weights
    parts = [_proximity(weights, candidate), _recency(policy, minutes), *_flags(weights, candidate)]
    return candidate.model_copy(
        update={
            "score": sum(points for points, _ in parts),
            "minutes_before": minutes,
            "why": [why for _, why in parts],
        }
    )


def _proximity(weights: CorrelationWeights, suspect: Suspect) -> Part:
    if suspect.hops == 0:
        return weights.same_ci, f"on the incident's CI {suspect.ci}"
    points = max(0, weights.same_ci - weights.hop_penalty * suspect.hops)
    return points, f"upstream at {suspect.hops} hop{'s' * (suspect.hops > 1)}: {suspect.ci}"


def _recency(policy: Policy, minutes: int) -> Part:
    window = policy.correlation.lookback.total_seconds() / 60
    points = round(policy.correlation.weights.recency * max(0.0, 1 - minutes / window))
    return points, f"{minutes} minutes before the incident"


def _flags(weights: CorrelationWeights, suspect: Suspect) -> list[Part]:
    flags = [
        (suspect.failed, weights.failed, "failed or was rolled back"),
        (suspect.no_rollback_plan, weights.no_rollback_plan, "no rollback plan"),
        (suspect.unauthorized, weights.unauthorized, "deployed without an approved change"),
    ]
    return [(points, why) for present, points, why in flags if present]


def rank(policy: Policy, candidates: Iterable[Suspect], incident_at: datetime) -> list[Suspect]:
    """Most likely first: highest score, then the most recent, then by id for a stable order."""
    suspects = [judged(policy, candidate, incident_at) for candidate in candidates]
    suspects.sort(key=lambda s: (-s.score, s.minutes_before, s.kind, s.id))
    return suspects[: policy.correlation.max_suspects]


def blamed_change(suspects: list[Suspect]) -> str | None:
    """The top suspect's change, if that change failed or had no rollback plan; else None."""
    if not suspects:
        return None
    top = suspects[0]
    return top.change_id if top.failed or top.no_rollback_plan else None


def incident_correlated(incident: IncidentRecord, now: datetime) -> Finding:
    reasons = [
        Reason(code=f"suspect_{suspect.kind}", detail=f"{suspect.id}: " + "; ".join(suspect.why))
        for suspect in incident.suspects
    ] or [_no_suspects(incident)]
    return make_finding(
        "incident_correlated", incident.incident_id, "warning" if incident.suspects else "info",
        now, incident.detected_at.isoformat(), reasons, ci=incident.ci,
        description=incident.description, incident_at=incident.detected_at,
        suspects=[suspect.model_dump(mode="json") for suspect in incident.suspects],
    )  # fmt: skip


def _no_suspects(incident: IncidentRecord) -> Reason:
    if incident.ci is None:
        return Reason(code="no_ci", detail="the incident names no service, so nothing to correlate")
    return Reason(
        code="no_suspects", detail=f"no changes or deploys on or upstream of {incident.ci} lately"
    )
