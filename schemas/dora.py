"""The DORA four keys as cumulative state: what the ``cmdb_worker_deployments_total``,
``..._change_lead_time_seconds``, ``..._change_failures_total`` and ``..._time_to_restore_seconds``
metrics are read from. Kept in the changelog, so a restart continues the counts and a redelivered
event (never applied twice) never counts twice. Each owner partition keeps its own totals per
team; a team's are their sum (``plus``).
"""

import bisect
from datetime import datetime
from itertools import zip_longest

from pydantic import BaseModel, Field, FiniteFloat

from cmdb_worker.schemas.changes import TeamPartial

LEAD_TIME_BUCKETS = (
    300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
    86400.0, 172800.0, 604800.0, 1209600.0, 2592000.0,
)  # fmt: skip
"""Seconds from change requested to its first deploy: 5 minutes to 30 days."""
RESTORE_BUCKETS = (
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 604800.0,
)  # fmt: skip
"""Seconds from incident detected to resolved: 1 minute to a week."""


class HistogramCounts(BaseModel):
    """A histogram's observations: per-bucket counts (the last one is +Inf), and their sum."""

    bounds: tuple[FiniteFloat, ...]
    counts: list[int] = Field(default_factory=list)
    sum: FiniteFloat = 0.0
    """Finite: JSON (the changelog) has no infinity, and durations are never infinite."""

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def plus(self, other: "HistogramCounts") -> "HistogramCounts":
        """Both histograms' observations (same bounds)."""
        counts = [a + b for a, b in zip_longest(self.counts, other.counts, fillvalue=0)]
        return HistogramCounts(bounds=self.bounds, counts=counts, sum=self.sum + other.sum)

    def cumulative(self) -> list[int]:
        """Counts of observations at or below each bound, then the total (the ``+Inf`` bucket)."""
        totals, running = [], 0
        for count in self.counts or [0] * (len(self.bounds) + 1):
            running += count
            totals.append(running)
        return totals


class DoraTeam(TeamPartial):
    """One team's DORA totals since the changelog began (``none``: no owner known), among the
    events of one owner partition."""

    deployments: dict[str, int] = Field(default_factory=dict)
    """Deploys (``deployed``/``upgraded``) by ``<environment>|<service name>``."""
    change_failures: int = 0
    lead_time: HistogramCounts = Field(
        default_factory=lambda: HistogramCounts(bounds=LEAD_TIME_BUCKETS)
    )
    time_to_restore: HistogramCounts = Field(
        default_factory=lambda: HistogramCounts(bounds=RESTORE_BUCKETS)
    )

    def plus(self, other: "DoraTeam") -> "DoraTeam":
        """Both totals (of one team), as one owner's."""
        deployments = dict(self.deployments)
        for service, count in other.deployments.items():
            deployments[service] = deployments.get(service, 0) + count
        return DoraTeam(
            team=self.team,
            owner=self.owner,
            deployments=deployments,
            change_failures=self.change_failures + other.change_failures,
            lead_time=self.lead_time.plus(other.lead_time),
            time_to_restore=self.time_to_restore.plus(other.time_to_restore),
        )


class MergedChange(BaseModel):
    """A CDEvents ``change.merged`` not yet deployed: the start of its lead time."""

    change_id: str
    merged_at: datetime
