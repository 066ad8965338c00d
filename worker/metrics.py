"""The worker's Prometheus metrics: a closed, typed set bound to one registry.

Every metric the worker exposes is an attribute of `Metrics`; nothing registers itself on the
global registry, so tests and embedded runs can build as many independent sets as they like.
Label values are bounded by construction: a CI id is never a label, owners collapse to a team
name or ``"none"`` and criticality to ``"1"``..``"4"`` or ``"unknown"``. Callers pass times in
explicitly (an injected clock), never read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import product
from typing import Final, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from cmdb_worker.schemas.dora import DoraTeam, HistogramCounts
from cmdb_worker.schemas.findings import FindingKind
from cmdb_worker.worker import __version__

PREFIX: Final = "cmdb_worker"
NO_OWNER: Final = "none"
UNKNOWN_CRITICALITY: Final = "unknown"
KNOWN_CRITICALITIES: Final = frozenset({1, 2, 3, 4})

# Series created at 0 up front, so the first increment shows up in `increase()` and `rate()`.
FINDING_KINDS: Final = get_args(FindingKind)
CHANGE_LEVELS: Final = ("low", "medium", "high", "critical")
CHANGE_ROUTES: Final = ("fast_track", "cab")
LESSON_IMPACTS: Final = ("High", "Medium", "Low")

# From 50µs (a cache-hot event) to 1s (a large blast-radius walk); slower lands in +Inf.
EVENT_PROCESSING_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


def owner_label(owner: str | None) -> str:
    """Return the owner team as a label value, ``"none"`` when the CI has no owner."""
    return owner if owner else NO_OWNER


def criticality_label(criticality: int | None) -> str:
    """Return ``"1"``..``"4"`` for a known criticality, ``"unknown"`` for anything else."""
    if criticality in KNOWN_CRITICALITIES:
        return str(criticality)
    return UNKNOWN_CRITICALITY


def package_version() -> str:
    """Return cmdb-worker's version (written once, in ``worker.__version__``)."""
    return __version__


def _gauge(registry: CollectorRegistry, name: str, doc: str, *labels: str) -> Gauge:
    return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)


def _counter(registry: CollectorRegistry, name: str, doc: str, *labels: str) -> Counter:
    return Counter(f"{PREFIX}_{name}", doc, labels, registry=registry)


def _add_runtime_collectors(registry: CollectorRegistry) -> None:
    """The standard process_* (memory, CPU, file descriptors) and python_* (GC, version) series."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class DoraCollector(Collector):
    """The DORA four keys, exposed from the state's cumulative totals (``schemas.dora``).

    Never incremented here: ``publish`` replaces the snapshot, so the exposed counts are exactly
    the state's, across redeliveries and restarts. Labels: ``team`` (owner team or ``none``),
    and for deployments ``service`` (the service's name) and ``environment``.
    """

    def __init__(self) -> None:
        self.teams: list[DoraTeam] = []

    def publish(self, teams: Iterable[DoraTeam]) -> None:
        self.teams = [team.model_copy(deep=True) for team in teams]

    def collect(self) -> Iterator[Metric]:
        teams = self.teams
        yield self._deployments(teams)
        yield _histogram("change_lead_time_seconds", "Change requested (or merged) to its "
                         "first deploy.", {t.team: t.lead_time for t in teams})  # fmt: skip
        failures = CounterMetricFamily(
            f"{PREFIX}_change_failures", "Changes that failed, and rollbacks of no change.",
            labels=["team"],
        )  # fmt: skip
        for team in teams:
            failures.add_metric([team.team], team.change_failures)
        yield failures
        yield _histogram("time_to_restore_seconds", "Incident detected to resolved.",
                         {t.team: t.time_to_restore for t in teams})  # fmt: skip

    @staticmethod
    def _deployments(teams: list[DoraTeam]) -> Metric:
        family = CounterMetricFamily(
            f"{PREFIX}_deployments", "Deploys (deployed, upgraded) by service.",
            labels=["service", "environment", "team"],
        )  # fmt: skip
        for team in teams:
            for key, count in sorted(team.deployments.items()):
                environment, _, service = key.partition("|")
                family.add_metric([service, environment, team.team], count)
        return family


def _histogram(name: str, doc: str, by_team: Mapping[str, HistogramCounts]) -> Metric:
    family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=["team"])
    for team, counts in by_team.items():
        cumulative = counts.cumulative()
        bounds = [str(bound) for bound in counts.bounds] + ["+Inf"]
        family.add_metric([team], list(zip(bounds, cumulative, strict=True)), counts.sum)
    return family


class Metrics:
    """All of the worker's metrics, registered on the registry passed in."""

    def __init__(self, registry: CollectorRegistry, *, version: str | None = None) -> None:
        r = registry
        self.cis: Final = _gauge(r, "cis", "CIs in the CMDB.", "type", "environment", "owner_team")
        self.hygiene_issues: Final = _gauge(
            r, "hygiene_issues", "CIs with an open hygiene finding (no_owner, orphan, phantom).",
            "issue", "owner_team",
        )  # fmt: skip
        self.stale_cis: Final = _gauge(
            r, "stale_cis", "CIs past their max age.",
            "type", "environment", "owner_team", "criticality",
        )  # fmt: skip
        self.oldest_stale_age_seconds: Final = _gauge(
            r, "oldest_stale_age_seconds", "Since the oldest stale CI was last seen; 0 if none."
        )
        self.findings: Final = _counter(r, "findings", "Findings emitted.", "kind")
        self.findings_suppressed: Final = _counter(
            r, "findings_suppressed", "Findings held back by a suppression in force.", "kind"
        )
        self.cis_unverified: Final = _gauge(
            r, "cis_unverified", "CIs not judged stale because every discovery source vouching "
            "for them is silent, by the source that saw them last.", "source",
        )  # fmt: skip
        self.source_last_report_timestamp_seconds: Final = _gauge(
            r, "source_last_report_timestamp_seconds",
            "Event time of a discovery source's latest observation or scan.", "source",
        )  # fmt: skip
        self.source_silent: Final = _gauge(
            r, "source_silent", "1 while a discovery source is silent (sources.silence_after).",
            "source",
        )  # fmt: skip
        self.changes_assessed: Final = _counter(
            r, "changes_assessed", "Change requests assessed.", "level", "route"
        )
        self.unauthorized_deploys: Final = _counter(
            r, "unauthorized_deploys", "Deploys without an approved change.", "environment"
        )
        self.change_outcomes: Final = _counter(
            r, "change_outcomes", "Finished changes by outcome.", "team", "outcome"
        )
        self.lessons_open: Final = _gauge(
            r, "lessons_open", "Lessons not Done.", "impact", "owner_team"
        )
        self.lessons_overdue: Final = _gauge(
            r, "lessons_overdue", "Lessons past due.", "owner_team"
        )
        self.events_consumed: Final = _counter(
            r, "events_consumed", "Events consumed.", "topic", "type"
        )
        self.dead_letters: Final = _counter(r, "dead_letters", "Messages dead-lettered.", "reason")
        self.event_times_inferred: Final = _counter(
            r, "event_times_inferred", "CloudEvents without time, timed by their Kafka record.",
            "topic",
        )  # fmt: skip
        self.event_processing_seconds: Final = Histogram(
            f"{PREFIX}_event_processing_seconds", "Time to apply one event.",
            buckets=EVENT_PROCESSING_BUCKETS, registry=r,
        )  # fmt: skip
        self.last_event_timestamp_seconds: Final = _gauge(
            r, "last_event_timestamp_seconds", "Event time of the last processed event."
        )
        self.last_progress_timestamp_seconds: Final = _gauge(
            r, "last_progress_timestamp_seconds", "Wall-clock time the loop last made progress."
        )
        self.consumer_lag: Final = _gauge(
            r, "consumer_lag", "Messages behind the log end.", "topic", "partition"
        )
        self.state_rebuild_seconds: Final = _gauge(
            r, "state_rebuild_seconds", "Time the last state rebuild took."
        )
        self.ready: Final = _gauge(
            r,
            "ready",
            "1 when state is rebuilt and the replica is in the group (active or standby).",
        )
        self.active: Final = _gauge(
            r,
            "active",
            "1 on the replica that holds the input partitions and judges; 0 on standbys.",
        )
        self.state_lag: Final = _gauge(
            r, "state_lag", "A standby's records of the state topic not yet applied."
        )
        self.build_info: Final = _gauge(r, "build_info", "Build information.", "version")
        self.build_info.labels(version=version or package_version()).set(1)
        self.memory_limit_bytes: Final = _gauge(
            r, "memory_limit_bytes", "The container's memory limit, when told (downward API)."
        )
        self.dora: Final = DoraCollector()
        r.register(self.dora)
        self._zero_known_series()
        _add_runtime_collectors(r)

    def _zero_known_series(self) -> None:
        for kind in FINDING_KINDS:
            self.findings.labels(kind=kind)
            self.findings_suppressed.labels(kind=kind)
        for level, route in product(CHANGE_LEVELS, CHANGE_ROUTES):
            self.changes_assessed.labels(level=level, route=route)
        for impact in LESSON_IMPACTS:
            self.lessons_open.labels(impact=impact, owner_team=NO_OWNER)
        self.lessons_overdue.labels(owner_team=NO_OWNER)

    def declare_environments(self, environments: Iterable[str]) -> None:
        """Create the per-environment deploy series at 0 so their first increment is seen."""
        for environment in environments:
            self.unauthorized_deploys.labels(environment=environment)

    def set_cis(self, ci_type: str, environment: str, owner: str | None, count: int) -> None:
        """Set how many CIs of a type, owned by a team, live in an environment."""
        self.cis.labels(type=ci_type, environment=environment, owner_team=owner_label(owner)).set(
            count
        )

    def set_hygiene_issues(self, issue: str, owner: str | None, count: int) -> None:
        """Set how many CIs of an owner team have a hygiene issue (no_owner, orphan, phantom)."""
        self.hygiene_issues.labels(issue=issue, owner_team=owner_label(owner)).set(count)

    def set_stale_cis(
        self,
        ci_type: str,
        environment: str,
        owner: str | None,
        criticality: int | None,
        count: int,
    ) -> None:
        """Set how many stale CIs share a type, environment, owner team and criticality."""
        self.stale_cis.labels(
            type=ci_type,
            environment=environment,
            owner_team=owner_label(owner),
            criticality=criticality_label(criticality),
        ).set(count)

    def clear_stale_cis(self) -> None:
        """Drop every stale-CI series, before publishing a fresh breakdown."""
        self.stale_cis.clear()

    def set_oldest_stale_age(self, seconds: float) -> None:
        """Set the age of the oldest stale CI (0 when none is stale)."""
        self.oldest_stale_age_seconds.set(max(seconds, 0.0))

    def set_source(self, source: str, last_report: float, silent: bool, unverified: int) -> None:
        """Set a discovery source's last report time, silence and unverified CIs."""
        self.source_last_report_timestamp_seconds.labels(source=source).set(last_report)
        self.source_silent.labels(source=source).set(1 if silent else 0)
        self.cis_unverified.labels(source=source).set(unverified)

    def finding(self, kind: str) -> None:
        """Count one emitted finding of a kind."""
        self.findings.labels(kind=kind).inc()

    def findings_held_back(self, kinds: Mapping[str, int]) -> None:
        """Count findings a suppression held back, by kind."""
        for kind, count in kinds.items():
            self.findings_suppressed.labels(kind=kind).inc(count)

    def change_assessed(self, level: str, route: str) -> None:
        """Count one change assessment by risk level and route."""
        self.changes_assessed.labels(level=level, route=route).inc()

    def unauthorized_deploy(self, environment: str) -> None:
        """Count one deploy without an approved change."""
        self.unauthorized_deploys.labels(environment=environment).inc()

    def change_outcome(self, team: str | None, succeeded: bool, count: float = 1.0) -> None:
        """Count finished changes (one by default) for a team as successes or failures."""
        outcome = "success" if succeeded else "failure"
        self.change_outcomes.labels(team=owner_label(team), outcome=outcome).inc(count)

    def set_lessons_open(self, impact: str, owner: str | None, count: int) -> None:
        """Set how many lessons of an impact are open for an owner."""
        self.lessons_open.labels(impact=impact, owner_team=owner_label(owner)).set(count)

    def set_lessons_overdue(self, owner: str | None, count: int) -> None:
        """Set how many lessons of an owner are past their due date."""
        self.lessons_overdue.labels(owner_team=owner_label(owner)).set(count)

    def event_consumed(self, topic: str, event_type: str) -> None:
        """Count one event read from a topic, by its (bounded) type."""
        self.events_consumed.labels(topic=topic, type=event_type).inc()

    def event_time_inferred(self, topic: str) -> None:
        """Count one event that had no ``time`` and took its Kafka record's timestamp."""
        self.event_times_inferred.labels(topic=topic).inc()

    def dead_letter(self, reason: str) -> None:
        """Count one message sent to the dead-letter topic."""
        self.dead_letters.labels(reason=reason).inc()

    def event_processed(self, event_time: float, duration_seconds: float) -> None:
        """Record one applied event: its processing time and its event time."""
        self.event_processing_seconds.observe(duration_seconds)
        self.last_event_timestamp_seconds.set(event_time)

    def progressed(self, now: float) -> None:
        """Mark that the loop is alive at wall-clock time `now` (call on every poll, even idle)."""
        self.last_progress_timestamp_seconds.set(now)

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Set how far a partition is behind its log end."""
        self.consumer_lag.labels(topic=topic, partition=str(partition)).set(max(lag, 0))

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop the lag series of a partition this worker no longer owns."""
        try:
            self.consumer_lag.remove(topic, str(partition))
        except KeyError:
            return

    def set_state_rebuild_seconds(self, seconds: float) -> None:
        """Set how long rebuilding state from the changelog took."""
        self.state_rebuild_seconds.set(seconds)

    def set_memory_limit(self, limit_bytes: int) -> None:
        """Set the memory limit the process runs under (compared with process_* memory)."""
        self.memory_limit_bytes.set(limit_bytes)

    def set_ready(self, ready: bool) -> None:
        """Set readiness: 1 when state is rebuilt and the replica is in the group."""
        self.ready.set(1 if ready else 0)

    def set_active(self, active: bool) -> None:
        """1 once this replica has taken the active role over."""
        self.active.set(1 if active else 0)

    def set_state_lag(self, records: int) -> None:
        self.state_lag.set(records)
