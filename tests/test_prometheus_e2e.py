"""End to end: a real Prometheus scrapes a real ``cmdb-worker run`` fed through the real broker:
a critical CI going stale, and a discovery source falling silent, each fire and resolve their
alert.

The worker judges staleness by the wall clock (``CMDB_WORKER_CLOCK=wall``) and ticks every
second; Prometheus (Debian's binary from ``deploy/local/prometheus.sh``, on loopback, storage in a
tmp dir) scrapes it and evaluates ``deploy/prometheus/alerts.yaml`` every second.

The rules Prometheus loads are a test-only copy of alerts.yaml in which every ``for:`` is
shortened to 2s (``fast_for_copy``): the expressions, labels and annotations are the deployed ones,
so what is proven is that the real exposition drives the real alert; the ``for:`` durations
themselves are covered by ``promtool test rules`` (tests/test_alert_rules.py).

Every wait is bounded, and the fixtures stop the worker and Prometheus whatever happens.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.events import observed, scan_completed
from tests.prometheus_server import (
    PrometheusServer,
    fast_for_copy,
    prometheus_binaries,
    wait_until,
)
from tests.worker_process import Message, WorkerProcess, WorkerTopics, produce, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus]

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
STALE_CRITICAL = "CMDBWorkerStaleCriticalCI"
SOURCE_SILENT = "CMDBWorkerDiscoverySourceSilent"
SILENCE_AFTER = timedelta(hours=6)  # rules/policy.yaml: sources.silence_after
SERVICE_MAX_AGE = timedelta(days=1)  # rules/policy.yaml: staleness.by_type.service
LEAD = timedelta(seconds=8)
"""How long the observed service stays fresh after it is produced (it goes stale after that)."""
WAIT = 90.0


@pytest.fixture(scope="module")
def binaries() -> tuple[Path, Path]:
    """(promtool, prometheus); fails, never skips, when they cannot be unpacked."""
    return prometheus_binaries()


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> WorkerTopics:
    """This module's own topics on the shared broker."""
    names = WorkerTopics(f"t-prom-e2e-{uuid.uuid4().hex[:8]}")
    names.create(kafka_bootstrap)
    return names


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, topics: WorkerTopics, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A ready ``cmdb-worker run`` judging by the wall clock, ticking every second."""
    env = worker_env(kafka_bootstrap, topics, clock="wall", tick_seconds=1, gauge_refresh_seconds=1)
    process = WorkerProcess(env, tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        yield process.start().wait_ready()
        process.terminate(timeout=30)
    finally:
        process.ensure_stopped()


@pytest.fixture(scope="module")
def prometheus(
    binaries: tuple[Path, Path], worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Prometheus scraping the worker as job cmdb-worker, with the fast-``for:`` alert rules."""
    directory = tmp_path_factory.mktemp("prometheus")
    rules = fast_for_copy(ALERTS, directory / "alerts.fast.yaml")
    target = f"127.0.0.1:{worker.http_port}"
    with PrometheusServer(binaries[1], directory, {"cmdb-worker": [target]}, [rules]) as server:
        wait_until(
            lambda: server.query('up{job="cmdb-worker"} == 1'), timeout=WAIT, what="worker up"
        )
        yield server


def observation(
    topics: WorkerTopics, seen_at: datetime, event_id: str, source: str = "/discovery/k8s-prod"
) -> Message:
    """``cmdb.ci.observed`` of criticality-1 service/payments-api@prod, seen at ``seen_at``."""
    event = observed(
        "payments-api", id=event_id, source=source, time=seen_at,
        owner="team-payments", criticality=1,
    )  # fmt: skip
    return Message(topics.discovery, json.dumps(event).encode(), b"service/payments-api@prod")


def heartbeat(topics: WorkerTopics, source: str, event_id: str) -> Message:
    """An empty scan from ``source`` now: the source is live (it vouches for its CIs)."""
    now = datetime.now(UTC)
    event = scan_completed(started=now, time=now, source=source, types=["heartbeat"], id=event_id)
    return Message(topics.discovery, json.dumps(event).encode())


def scraped(worker: WorkerProcess, name: str, **labels: str) -> float | None:
    """The value of one sample on the worker's /metrics, None when it is not there."""
    for family in text_string_to_metric_families(worker.get("/metrics")[1].decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def stale_critical_firing(prometheus: PrometheusServer) -> bool:
    firing = [a for a in prometheus.alerts(STALE_CRITICAL) if a["state"] == "firing"]
    return prometheus.rule_state(STALE_CRITICAL) == "firing" and bool(firing)


def stale_critical_resolved(prometheus: PrometheusServer) -> bool:
    return prometheus.rule_state(STALE_CRITICAL) == "inactive" and not prometheus.alerts(
        STALE_CRITICAL
    )


def test_stale_critical_ci_alert_fires_then_resolves(
    kafka_bootstrap: str, topics: WorkerTopics, worker: WorkerProcess, prometheus: PrometheusServer
) -> None:
    """A criticality-1 service going stale by the wall clock fires CMDBWorkerStaleCriticalCI in a
    real Prometheus, and a fresh observation of it resolves the alert."""
    wait_until(
        lambda: prometheus.rule_state(STALE_CRITICAL) == "inactive", timeout=WAIT,
        what=f"{STALE_CRITICAL} evaluated as inactive while the worker is scraped",
    )  # fmt: skip
    almost_stale = datetime.now(UTC) - SERVICE_MAX_AGE + LEAD
    live = heartbeat(topics, "/discovery/k8s-prod", "alive-1")  # else unverified, not stale
    produce(kafka_bootstrap, [live, observation(topics, almost_stale, "obs-old")])

    wait_until(lambda: stale_critical_firing(prometheus), timeout=WAIT, what="alert firing")
    (alert,) = prometheus.alerts(STALE_CRITICAL)
    assert alert["labels"] == {
        "alertname": STALE_CRITICAL, "environment": "prod",
        "owner_team": "team-payments", "severity": "critical",
    }  # fmt: skip
    assert [ci["id"] for ci in worker.get_json("/api/stale")[1]] == ["service/payments-api@prod"]

    produce(kafka_bootstrap, [observation(topics, datetime.now(UTC), "obs-fresh")])
    wait_until(lambda: stale_critical_resolved(prometheus), timeout=WAIT, what="alert resolved")
    assert prometheus.query('cmdb_worker_stale_cis{criticality="1"}') == []
    assert worker.get_json("/api/stale") == (200, [])


def source_silent_alert(prometheus: PrometheusServer, source: str) -> str:
    """``firing``, ``pending`` or ``none`` for the silence alert of ``source``."""
    alerts = prometheus.alerts(SOURCE_SILENT)
    states = [alert["state"] for alert in alerts if alert["labels"]["source"] == source]
    return states[0] if states else "none"


def test_discovery_source_silent_alert_fires_then_resolves(
    kafka_bootstrap: str, topics: WorkerTopics, worker: WorkerProcess, prometheus: PrometheusServer
) -> None:
    """A discovery source whose last report passes sources.silence_after by the wall clock fires
    CMDBWorkerDiscoverySourceSilent for that source in a real Prometheus; its next report
    resolves it."""
    source = "/discovery/e2e-collector"
    wait_until(
        lambda: prometheus.rule_state(SOURCE_SILENT) == "inactive", timeout=WAIT,
        what=f"{SOURCE_SILENT} evaluated as inactive while the worker is scraped",
    )  # fmt: skip
    almost_silent = datetime.now(UTC) - SILENCE_AFTER + LEAD
    produce(kafka_bootstrap, [observation(topics, almost_silent, "obs-quiet", source)])
    wait_until(
        lambda: source_silent_alert(prometheus, source) == "firing", timeout=WAIT,
        what="silence alert firing",
    )  # fmt: skip
    assert scraped(worker, "cmdb_worker_source_silent", source=source) == 1

    produce(kafka_bootstrap, [heartbeat(topics, source, "alive-e2e")])
    wait_until(
        lambda: source_silent_alert(prometheus, source) == "none"
        and prometheus.rule_state(SOURCE_SILENT) == "inactive",
        timeout=WAIT, what="silence alert resolved",
    )  # fmt: skip
    assert scraped(worker, "cmdb_worker_source_silent", source=source) == 0


def test_promtool_accepts_the_running_workers_metrics(
    kafka_bootstrap: str, topics: WorkerTopics, worker: WorkerProcess, binaries: tuple[Path, Path]
) -> None:
    """promtool check metrics passes on /metrics of a running worker that processed events."""
    seen = datetime.now(UTC)
    event = observed("exposition-probe", id="obs-probe", time=seen, owner="team-x", criticality=3)
    produce(kafka_bootstrap, [Message(topics.discovery, json.dumps(event).encode())])
    wait_until(
        lambda: scraped(
            worker, "cmdb_worker_cis", type="service", environment="prod", owner_team="team-x"
        ),
        timeout=WAIT, what="the observation to show in cmdb_worker_cis",
    )  # fmt: skip
    status, exposition = worker.get("/metrics")
    assert status == 200 and b"cmdb_worker_events_consumed_total{" in exposition
    result = subprocess.run(
        [str(binaries[0]), "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
