"""What the metrics say about the state: per-finding counters as findings are emitted, and
whole-state gauges recounted every ``gauge_refresh_seconds`` (never per event): CIs, stale CIs,
lessons, outcomes.
"""

from collections import Counter
from datetime import datetime

from rules.lessons import overdue_at
from schemas.findings import Finding
from worker.engine import Engine
from worker.metrics import LESSON_IMPACTS, Metrics
from worker.state import State

StaleKey = tuple[str, str, str | None, int | None]
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
    _refresh_lessons(engine.state, metrics, now)
    _sync_change_outcomes(engine.state, metrics)


def _refresh_cis(state: State, metrics: Metrics, now: datetime) -> None:
    cis: Counter[tuple[str, str]] = Counter()
    stale: Counter[StaleKey] = Counter()
    oldest = now
    for record in state.cmdb.records():
        environment = record.environment or "none"
        cis[(record.type, environment)] += 1
        if record.stale and record.last_seen:
            stale[(record.type, environment, record.owner, record.criticality)] += 1
            oldest = min(oldest, record.last_seen)
    metrics.cis.clear()
    for (ci_type, environment), count in cis.items():
        metrics.set_cis(ci_type, environment, count)
    metrics.clear_stale_cis()
    for (ci_type, environment, owner, criticality), count in stale.items():
        metrics.set_stale_cis(ci_type, environment, owner, criticality, count)
    metrics.set_oldest_stale_age((now - oldest).total_seconds())


def _refresh_lessons(state: State, metrics: Metrics, now: datetime) -> None:
    """Open lessons by impact, and how many of them are past their due date as of ``now``."""
    open_lessons = [lesson for lesson in state.lessons.values() if lesson.is_open]
    by_impact = Counter(lesson.impact for lesson in open_lessons)
    for impact in LESSON_IMPACTS:
        metrics.set_lessons_open(impact, by_impact[impact])
    metrics.set_lessons_overdue(sum(overdue_at(lesson) <= now for lesson in open_lessons))


def _sync_change_outcomes(state: State, metrics: Metrics) -> None:
    """Move the outcome counters up to the state's per-team totals (they survive a restart).

    The state's totals are cumulative, so the counter continues across restarts instead of
    starting over; a counter never goes down, so a success later turned failure stays counted.
    """
    exported = _exported_outcomes(metrics)
    for team, outcomes in state.team_outcomes.items():
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
