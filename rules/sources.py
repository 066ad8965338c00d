"""Discovery source health: a source that has sent nothing for its silence period is silent.

While silent, CIs that only silent sources vouch for are *unverified*, not stale: one dead
collector is one finding and one lesson, not a storm of stale CIs.
"""

from datetime import datetime

from cmdb_worker.rules.findings import finding_id, make_finding
from cmdb_worker.rules.lessons import Filing
from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Finding, Reason
from cmdb_worker.schemas.records import SourceHealth


def silent_after(policy: Policy, health: SourceHealth) -> datetime:
    """The last instant the source is still live; it is silent at any later time."""
    return health.last_report + policy.sources.silence_for(health.source)


def is_silent(policy: Policy, health: SourceHealth, now: datetime) -> bool:
    return now > silent_after(policy, health)


def source_silent(policy: Policy, health: SourceHealth, affected: int, now: datetime) -> Finding:
    silence = policy.sources.silence_for(health.source)
    reason = Reason(
        code="no_reports",
        detail=f"{health.source} sent nothing since {health.last_report.isoformat()} "
        f"(silent after {silence}); {affected} CI(s) only it vouches for are unverified",
    )
    return make_finding(
        "source_silent", health.source, "warning", now, health.last_report.isoformat(), [reason],
        last_report=health.last_report, affected_cis=affected,
        silence_after_seconds=silence.total_seconds(),
    )  # fmt: skip


def source_recovered(health: SourceHealth, silent_since: datetime, now: datetime) -> Finding:
    reason = Reason(
        code="reporting_again",
        detail=f"{health.source} reported at {health.last_report.isoformat()} after silence "
        f"since {silent_since.isoformat()}; its CIs are judged from then on",
    )
    return make_finding(
        "source_recovered", health.source, "info", now, health.last_report.isoformat(), [reason],
        last_report=health.last_report, silent_since=silent_since,
    )  # fmt: skip


def silent_filing(policy: Policy, health: SourceHealth, affected: int) -> Filing:
    detail = (
        f"{health.source} sent no discovery report since {health.last_report.isoformat()}; "
        f"{affected} CI(s) only it vouches for are unverified until it reports again"
    )
    owner = policy.sources.owners.get(health.source)
    evidence = [finding_id("source_silent", health.source, health.last_report.isoformat())]
    return Filing("source_silent", health.source, owner, evidence, detail)
