"""Staleness: a CI is stale at T when T minus its last-seen time exceeds its type's max age.

After a silent discovery source recovers, its CIs' staleness counts from the recovery at the
earliest (``CIRecord.staleness_counted_from``): they were unverified, not unseen, meanwhile.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from cmdb_worker.rules.findings import make_finding
from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Finding, Reason, Severity
from cmdb_worker.schemas.records import CIRecord


def stale_at(policy: Policy, record: CIRecord) -> datetime | None:
    """The last instant at which the CI is still fresh (stale at any later time); None if
    nothing ever saw it."""
    since = record.staleness_counted_from
    return since + policy.staleness.max_age(record.type) if since else None


def is_stale(policy: Policy, record: CIRecord, now: datetime) -> bool:
    deadline = stale_at(policy, record)
    return deadline is not None and now > deadline


def stale_test(policy: Policy, now: datetime) -> Callable[[CIRecord], bool]:
    """``is_stale`` at one moment for many CIs (a blast radius): each type's cutoff, ``now``
    less its max age, is worked out once."""
    cutoffs: dict[str, datetime] = {}

    def stale(record: CIRecord) -> bool:
        cutoff = cutoffs.get(record.type)
        if cutoff is None:
            cutoff = cutoffs[record.type] = now - policy.staleness.max_age(record.type)
        since = record.staleness_counted_from
        return since is not None and since < cutoff

    return stale


def ci_stale(policy: Policy, record: CIRecord, now: datetime) -> Finding:
    max_age = policy.staleness.max_age(record.type)
    last_seen = record.last_seen
    assert last_seen is not None
    reason = Reason(
        code="not_refreshed",
        detail=f"last seen {last_seen.isoformat()}, {human_duration(now - last_seen)} ago; "
        f"max age for type {record.type!r} is {human_duration(max_age)}",
    )
    severity: Severity = "critical" if record.criticality == 1 else "warning"
    return make_finding(
        "ci_stale",
        record.id,
        severity,
        now,
        last_seen.isoformat(),
        [reason],
        last_seen=last_seen,
        max_age_seconds=max_age.total_seconds(),
        sources=sorted(record.seen_by),
        owner=record.owner,
        criticality=record.criticality,
    )


def ci_stale_resolved(record: CIRecord, now: datetime, seen_by: str) -> Finding:
    last_seen = record.last_seen
    assert last_seen is not None
    reason = Reason(code="seen_again", detail=f"observed by {seen_by} at {last_seen.isoformat()}")
    return make_finding(
        "ci_stale_resolved",
        record.id,
        "info",
        now,
        last_seen.isoformat(),
        [reason],
        last_seen=last_seen,
        seen_by=seen_by,
    )


def human_duration(delta: timedelta) -> str:
    """A duration as people read it: ``30d``, ``1.5h``, ``45m``, ``90s``."""
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.0f}s"
