"""Whole-state gauges, refreshed on the tick (never per event): CIs, stale CIs, their age."""

from collections import Counter
from datetime import datetime

from worker.engine import Engine
from worker.metrics import Metrics

StaleKey = tuple[str, str, str | None, int | None]


def refresh_state_gauges(engine: Engine, metrics: Metrics, now: datetime) -> None:
    cis: Counter[tuple[str, str]] = Counter()
    stale: Counter[StaleKey] = Counter()
    oldest = now
    for record in engine.state.cmdb.records():
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
