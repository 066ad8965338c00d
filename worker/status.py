"""What the metrics say about the state: per-finding counters as findings are emitted, and
whole-state gauges recounted every ``gauge_refresh_seconds`` (never per event): CIs, stale CIs,
lessons, outcomes, and the DORA four keys (exposed as the state's totals).
"""

from collections import Counter
from datetime import datetime

from cmdb_worker.rules.lessons import overdue_at
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.engine import teams
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.discovery import ORPHAN, PHANTOM, UNVERIFIED
from cmdb_worker.worker.engine.state import State
from cmdb_worker.worker.metrics import LESSON_IMPACTS, Metrics

StaleKey = tuple[str, str, str | None, int | None]
HYGIENE_ISSUES = frozenset({"no_owner", ORPHAN, PHANTOM})
"""CI flags counted in cmdb_worker_hygiene_issues."""
OUTCOMES = (("success", True), ("failure", False))


def count_finding(metrics: Metrics, finding: Finding) -> None:
    """Count one emitted finding, and the governance counter its kind stands for."""
    metrics.finding(finding.kind)
    details = finding.details()
    if finding.kind == "change_assessed":
        metrics.change_assessed(str(details["level"]), str(details["route"]))
    elif finding.kind == "deploy_unauthorized":
        metrics.unauthorized_deploy(str(details.get("environment") or "none"))


def refresh_state_gauges(engine: Engine, metrics: Metrics, now: datetime) -> None:
    metrics.declare_environments(engine.policy.governance.governed_environments)
    _refresh_cis(engine.state, metrics, now)
    _refresh_sources(engine.state, metrics)
    _refresh_lessons(engine.state, metrics, now)
    _sync_change_outcomes(engine.state, metrics)
    metrics.dora.publish(teams.by_team(engine.state.dora.values()))


def _refresh_cis(state: State, metrics: Metrics, now: datetime) -> None:
    cis: Counter[tuple[str, str, str | None]] = Counter()
    stale: Counter[StaleKey] = Counter()
    issues: Counter[tuple[str, str | None]] = Counter()
    oldest = now
    for record in state.cmdb.records():
        environment = record.environment or "none"
        cis[(record.type, environment, record.owner)] += 1
        issues.update((issue, record.owner) for issue in HYGIENE_ISSUES & record.flags)
        if record.stale and record.last_seen:
            stale[(record.type, environment, record.owner, record.criticality)] += 1
            oldest = min(oldest, record.last_seen)
    _publish_cis(metrics, cis, issues)
    metrics.clear_stale_cis()
    for (ci_type, environment, owner, criticality), count in stale.items():
        metrics.set_stale_cis(ci_type, environment, owner, criticality, count)
    metrics.set_oldest_stale_age((now - oldest).total_seconds())


def _publish_cis(
    metrics: Metrics,
    cis: Counter[tuple[str, str, str | None]],
    issues: Counter[tuple[str, str | None]],
) -> None:
    metrics.cis.clear()
    for (ci_type, environment, owner), count in cis.items():
        metrics.set_cis(ci_type, environment, owner, count)
    metrics.hygiene_issues.clear()
    for issue in sorted(HYGIENE_ISSUES):
        metrics.set_hygiene_issues(issue, None, 0)
    for (issue, owner), count in issues.items():
        metrics.set_hygiene_issues(issue, owner, count)


def _refresh_sources(state: State, metrics: Metrics) -> None:
    """Each discovery source's last report and silence, and (only a silent source can have
    any) the unverified CIs it was the last to see."""
    for source, health in state.sources.items():
        unverified = _unverified_seen_last_by(state, source) if health.silent else 0
        metrics.set_source(source, health.last_report.timestamp(), health.silent, unverified)


def _unverified_seen_last_by(state: State, source: str) -> int:
    records = filter(None, map(state.cmdb.get_unmerged, state.cmdb.seen_by_source(source)))
    return sum(
        UNVERIFIED in record.flags and _last_discovery_source(state, record) == source
        for record in records
    )


def _last_discovery_source(state: State, record: CIRecord) -> str:
    vouching = [source for source in record.seen_by if source in state.sources]
    return max(vouching, key=record.seen_by.__getitem__)


def _refresh_lessons(state: State, metrics: Metrics, now: datetime) -> None:
    """Open lessons by impact and owner, and how many are past their due date as of ``now``;
    the ``none`` series stay at 0 so sums over teams never vanish."""
    open_lessons = [lesson for lesson in state.lessons.values() if lesson.is_open]
    metrics.lessons_open.clear()
    for impact in LESSON_IMPACTS:
        metrics.set_lessons_open(impact, None, 0)
    for (impact, owner), count in Counter((x.impact, x.owner) for x in open_lessons).items():
        metrics.set_lessons_open(impact, owner, count)
    metrics.lessons_overdue.clear()
    metrics.set_lessons_overdue(None, 0)
    overdue = Counter(lesson.owner for lesson in open_lessons if overdue_at(lesson) <= now)
    for owner, count in overdue.items():
        metrics.set_lessons_overdue(owner, count)


def _sync_change_outcomes(state: State, metrics: Metrics) -> None:
    """Move the outcome counters up to the state's per-team totals (they survive a restart).

    The state's totals are cumulative, so the counter continues across restarts instead of
    starting over; a counter never goes down, so a success later turned failure stays counted.
    """
    exported = _exported_outcomes(metrics)
    for outcomes in teams.by_team(state.team_outcomes.values()):
        team = outcomes.team
        for outcome, succeeded in OUTCOMES:
            total = outcomes.succeeded if succeeded else outcomes.failed
            missing = total - exported.get((team, outcome), 0.0)
            if missing > 0:
                metrics.change_outcome(team, succeeded, missing)


def _exported_outcomes(metrics: Metrics) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["team"], sample.labels["outcome"]): sample.value
        for family in metrics.change_outcomes.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }
