"""The worker's metrics: each helper moves exactly the sample it names, on its own registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from cmdb_worker.worker.metrics import (
    FINDING_KINDS,
    Metrics,
    criticality_label,
    owner_label,
)


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test."""
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    """A metrics set bound to the per-test registry."""
    return Metrics(registry, version="1.2.3")


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_set_cis_sets_gauge_by_type_and_environment(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """set_cis sets cmdb_worker_cis for exactly its type, environment and owner team."""
    metrics.set_cis("service", "prod", "team-a", 7)
    metrics.set_cis("service", "prod", "team-a", 5)
    metrics.set_cis("service", "prod", None, 1)
    labels = {"type": "service", "environment": "prod"}
    assert sample(registry, "cmdb_worker_cis", **labels, owner_team="team-a") == 5
    assert sample(registry, "cmdb_worker_cis", **labels, owner_team="none") == 1
    assert sample(registry, "cmdb_worker_cis", type="service", environment="dev",
                  owner_team="team-a") is None  # fmt: skip


def test_set_stale_cis_normalises_owner_and_criticality(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """set_stale_cis maps a missing owner to "none" and a criticality outside 1..4 to "unknown"."""
    metrics.set_stale_cis("host", "prod", "team-payments", 1, 2)
    metrics.set_stale_cis("host", "prod", None, 9, 3)
    name = "cmdb_worker_stale_cis"
    crit1 = {"type": "host", "environment": "prod", "owner_team": "team-payments"}
    orphan = {"type": "host", "environment": "prod", "owner_team": "none"}
    assert sample(registry, name, **crit1, criticality="1") == 2
    assert sample(registry, name, **orphan, criticality="unknown") == 3


def test_clear_stale_cis_drops_every_series(registry: CollectorRegistry, metrics: Metrics) -> None:
    """clear_stale_cis removes all stale-CI series so a resolved group stops being exported."""
    metrics.set_stale_cis("host", "prod", "team-a", 2, 4)
    metrics.clear_stale_cis()
    labels = {"type": "host", "environment": "prod", "owner_team": "team-a", "criticality": "2"}
    assert sample(registry, "cmdb_worker_stale_cis", **labels) is None


def test_label_helpers_bound_their_values() -> None:
    """owner_label and criticality_label only ever return a team, "none", "1".."4" or "unknown"."""
    assert owner_label("") == "none"
    assert owner_label("team-x") == "team-x"
    labels = [criticality_label(c) for c in (None, 0, 1, 4, 5)]
    assert labels == ["unknown", "unknown", "1", "4", "unknown"]


def test_set_oldest_stale_age_never_goes_negative(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """set_oldest_stale_age sets the age gauge and clamps a negative age (clock skew) to 0."""
    metrics.set_oldest_stale_age(3600.5)
    assert sample(registry, "cmdb_worker_oldest_stale_age_seconds") == 3600.5
    metrics.set_oldest_stale_age(-1)
    assert sample(registry, "cmdb_worker_oldest_stale_age_seconds") == 0


def test_finding_increments_its_kind_only(registry: CollectorRegistry, metrics: Metrics) -> None:
    """finding(kind) adds one to cmdb_worker_findings_total for that kind and no other."""
    metrics.finding("change_missing_rollback")
    metrics.finding("change_missing_rollback")
    assert sample(registry, "cmdb_worker_findings_total", kind="change_missing_rollback") == 2
    assert sample(registry, "cmdb_worker_findings_total", kind="ci_stale") == 0


def test_known_series_start_at_zero(registry: CollectorRegistry, metrics: Metrics) -> None:
    """Known finding kinds, change levels/routes and lesson impacts are exported at 0 from start."""
    for kind in FINDING_KINDS:
        assert sample(registry, "cmdb_worker_findings_total", kind=kind) == 0
    name = "cmdb_worker_changes_assessed_total"
    assert sample(registry, name, level="critical", route="cab") == 0
    assert sample(registry, "cmdb_worker_lessons_open", impact="High", owner_team="none") == 0
    assert sample(registry, "cmdb_worker_lessons_overdue", owner_team="none") == 0


def test_change_assessed_counts_by_level_and_route(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """change_assessed adds one to the (level, route) series."""
    metrics.change_assessed("high", "cab")
    name = "cmdb_worker_changes_assessed_total"
    assert sample(registry, name, level="high", route="cab") == 1
    assert sample(registry, name, level="high", route="fast_track") == 0


def test_unauthorized_deploy_counts_by_environment(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """declare_environments exports 0 up front and unauthorized_deploy then adds one."""
    name = "cmdb_worker_unauthorized_deploys_total"
    metrics.declare_environments(["prod", "staging"])
    assert sample(registry, name, environment="staging") == 0
    metrics.unauthorized_deploy("prod")
    assert sample(registry, name, environment="prod") == 1


def test_change_outcome_maps_bool_to_success_or_failure(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """change_outcome records success or failure for the team, "none" when there is no team."""
    metrics.change_outcome("team-a", succeeded=True)
    metrics.change_outcome(None, succeeded=False)
    name = "cmdb_worker_change_outcomes_total"
    assert sample(registry, name, team="team-a", outcome="success") == 1
    assert sample(registry, name, team="none", outcome="failure") == 1


def test_lesson_gauges_are_set(registry: CollectorRegistry, metrics: Metrics) -> None:
    """set_lessons_open and set_lessons_overdue set their gauges by owner team."""
    metrics.set_lessons_open("Medium", "team-a", 4)
    metrics.set_lessons_overdue("team-a", 2)
    assert sample(registry, "cmdb_worker_lessons_open", impact="Medium", owner_team="team-a") == 4
    assert sample(registry, "cmdb_worker_lessons_overdue", owner_team="team-a") == 2


def test_hygiene_issues_are_set_by_issue_and_owner_team(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """set_hygiene_issues sets cmdb_worker_hygiene_issues by issue and owner team."""
    metrics.set_hygiene_issues("orphan", "team-a", 3)
    metrics.set_hygiene_issues("no_owner", None, 1)
    assert sample(registry, "cmdb_worker_hygiene_issues", issue="orphan", owner_team="team-a") == 3
    assert sample(registry, "cmdb_worker_hygiene_issues", issue="no_owner", owner_team="none") == 1


def test_event_consumed_counts_by_topic_and_type(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """event_consumed adds one to the (topic, type) series."""
    metrics.event_consumed("cmdb.discovery", "cmdb.ci.discovered")
    labels = {"topic": "cmdb.discovery", "type": "cmdb.ci.discovered"}
    assert sample(registry, "cmdb_worker_events_consumed_total", **labels) == 1


def test_dead_letter_counts_by_reason(registry: CollectorRegistry, metrics: Metrics) -> None:
    """dead_letter adds one to the reason's series."""
    metrics.dead_letter("invalid_json")
    assert sample(registry, "cmdb_worker_dead_letters_total", reason="invalid_json") == 1


def test_event_processed_observes_duration_and_event_time(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """event_processed observes the histogram and sets the last event timestamp."""
    metrics.event_processed(event_time=1_700_000_000.0, duration_seconds=0.0002)
    name = "cmdb_worker_event_processing_seconds"
    assert sample(registry, f"{name}_count") == 1
    assert sample(registry, f"{name}_bucket", le="0.00025") == 1
    assert sample(registry, f"{name}_bucket", le="0.0001") == 0
    assert sample(registry, "cmdb_worker_last_event_timestamp_seconds") == 1_700_000_000.0


def test_histogram_buckets_span_50us_to_1s(registry: CollectorRegistry, metrics: Metrics) -> None:
    """The processing histogram's finite buckets start at 50µs and end at 1s."""
    name = "cmdb_worker_event_processing_seconds_bucket"
    assert sample(registry, name, le="5e-05") == 0
    assert sample(registry, name, le="1.0") == 0
    assert sample(registry, name, le="2.5") is None


def test_progressed_sets_wall_clock(registry: CollectorRegistry, metrics: Metrics) -> None:
    """progressed sets the last-progress timestamp to the time it is given."""
    metrics.progressed(1_800_000_000.0)
    assert sample(registry, "cmdb_worker_last_progress_timestamp_seconds") == 1_800_000_000.0


def test_consumer_lag_is_set_and_forgotten(registry: CollectorRegistry, metrics: Metrics) -> None:
    """set_consumer_lag sets a partition's lag and forget_partition removes it (twice is safe)."""
    partition = {"topic": "cmdb.discovery", "partition": "3"}
    metrics.set_consumer_lag("cmdb.discovery", 3, 1500)
    assert sample(registry, "cmdb_worker_consumer_lag", **partition) == 1500
    metrics.forget_partition("cmdb.discovery", 3)
    metrics.forget_partition("cmdb.discovery", 3)
    assert sample(registry, "cmdb_worker_consumer_lag", **partition) is None


def test_active_role_and_state_lag_gauges(registry: CollectorRegistry, metrics: Metrics) -> None:
    """set_active marks the replica that judges (0 from the start: a standby until it takes
    over) and set_state_lag what a standby has still to apply."""
    assert sample(registry, "cmdb_worker_active") == 0
    metrics.set_active(True)
    metrics.set_state_lag(42)
    assert sample(registry, "cmdb_worker_active") == 1
    assert sample(registry, "cmdb_worker_state_lag") == 42


def test_lifecycle_gauges(registry: CollectorRegistry, metrics: Metrics) -> None:
    """set_state_rebuild_seconds and set_ready set their gauges; readiness starts at 0."""
    assert sample(registry, "cmdb_worker_ready") == 0
    metrics.set_state_rebuild_seconds(12.5)
    metrics.set_ready(True)
    assert sample(registry, "cmdb_worker_state_rebuild_seconds") == 12.5
    assert sample(registry, "cmdb_worker_ready") == 1
    metrics.set_ready(False)
    assert sample(registry, "cmdb_worker_ready") == 0


def test_build_info_carries_version(registry: CollectorRegistry, metrics: Metrics) -> None:
    """cmdb_worker_build_info is 1 with the version label it was built with."""
    assert sample(registry, "cmdb_worker_build_info", version="1.2.3") == 1


def test_default_version_comes_from_package_metadata() -> None:
    """Without an explicit version, build_info carries the package's one version."""
    registry = CollectorRegistry()
    Metrics(registry)
    exposition = generate_latest(registry).decode()
    assert 'cmdb_worker_build_info{version="' in exposition
    assert 'version=""' not in exposition


def test_two_registries_do_not_collide() -> None:
    """Two Metrics on two registries are independent: counting on one leaves the other at 0."""
    first, second = CollectorRegistry(), CollectorRegistry()
    a, _ = Metrics(first), Metrics(second)
    a.dead_letter("schema")
    assert first.get_sample_value("cmdb_worker_dead_letters_total", {"reason": "schema"}) == 1
    assert second.get_sample_value("cmdb_worker_dead_letters_total", {"reason": "schema"}) is None


def test_same_registry_twice_is_rejected(registry: CollectorRegistry, metrics: Metrics) -> None:
    """A second Metrics on the same registry fails loudly instead of sharing series."""
    with pytest.raises(ValueError, match="Duplicated"):
        Metrics(registry)


def test_worker_process_and_python_metrics_are_exported(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """The registry holds the worker's own metrics plus the standard process_* and python_*
    collectors, so memory and CPU can be alerted on; nothing else."""
    names = {m.name for m in registry.collect()}
    assert {n for n in names if n.startswith("cmdb_worker_")} and all(
        n.startswith(("cmdb_worker_", "process_", "python_")) for n in names
    )
    assert sample(registry, "process_resident_memory_bytes") > 0
    assert sample(registry, "process_cpu_seconds_total") >= 0
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None
    assert len([n for n in names if n.startswith("cmdb_worker_")]) == 31


def test_memory_limit_is_exported_when_told(registry: CollectorRegistry, metrics: Metrics) -> None:
    """set_memory_limit exports the container's limit for the memory-near-limit alert."""
    metrics.set_memory_limit(2 * 1024**3)
    assert sample(registry, "cmdb_worker_memory_limit_bytes") == 2 * 1024**3
