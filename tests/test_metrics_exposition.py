"""What the worker exposes: governance counters and lesson gauges wired to findings and state,
promtool's approval of the real /metrics, and probes that follow the real processing loop.

The first tests feed an engine in process (event clock) and refresh the gauges as the loop's
tick does. The ``kafka`` tests run the real ``Runner`` loop in a thread against the real broker,
with its ``StatusServer`` wired as ``worker.service`` wires it, and talk HTTP to it.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from cmdb_worker.rules.policy import Policy, load_policy
from cmdb_worker.worker.api import Api
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.http import StatusServer, liveness
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.runner import Runner
from cmdb_worker.worker.settings import Settings
from cmdb_worker.worker.status import count_finding, refresh_state_gauges
from tests.conftest import Feed
from tests.events import T0, at, keep_alive, observed
from tests.governance_helpers import (
    change_requested,
    change_updated,
    deploy,
    lesson_updated,
    payments_estate,
)
from tests.prometheus_server import prometheus_binaries, wait_until
from tests.worker_process import Message, WorkerTopics, produce

WAIT = 60.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series carrying ``labels`` (e.g. across owner teams)."""
    return sum(
        s.value for f in registry.collect() for s in f.samples
        if s.name == name and labels.items() <= s.labels.items()
    )  # fmt: skip


def unauthorized_deploy(time: datetime) -> list[dict[str, object]]:
    """The payments estate, then a prod deploy of payments-api with no linked change."""
    return [*payments_estate(time), deploy("payments-api", id="dep-1", time=time)]


# ------------------------------------------------------------------------------ in process
def test_findings_count_assessments_and_unauthorized_deploys(
    feed: Feed, metrics: Metrics, registry: CollectorRegistry
) -> None:
    """Each emitted change_assessed counts once by level and route, and each deploy_unauthorized
    once by environment, beside cmdb_worker_findings_total."""
    findings = feed(*unauthorized_deploy(T0), change_requested("CHG1", "database/payments-pg@prod"))
    for finding in findings:
        count_finding(metrics, finding)
    (assessed,) = [f.details() for f in findings if f.kind == "change_assessed"]
    labels = {"level": assessed["level"], "route": assessed["route"]}
    assert sample(registry, "cmdb_worker_changes_assessed_total", **labels) == 1
    assert sample(registry, "cmdb_worker_unauthorized_deploys_total", environment="prod") == 1
    assert sample(registry, "cmdb_worker_findings_total", kind="deploy_unauthorized") == 1


def test_lesson_gauges_count_open_and_overdue_lessons(
    feed: Feed, engine: Engine, metrics: Metrics, registry: CollectorRegistry
) -> None:
    """lessons_open counts open lessons by impact and lessons_overdue those past due as of the
    tick's time; a lesson marked Done leaves both."""
    feed(*unauthorized_deploy(T0))
    refresh_state_gauges(engine, metrics, at(days=1))
    assert total(registry, "cmdb_worker_lessons_open", impact="High") == 1
    assert total(registry, "cmdb_worker_lessons_open", impact="Medium") == 0
    assert total(registry, "cmdb_worker_lessons_overdue") == 0
    refresh_state_gauges(engine, metrics, at(days=30))
    assert total(registry, "cmdb_worker_lessons_overdue") == 1
    keep_alive(engine, at(days=30))
    feed(lesson_updated("LL-0001", id="done-1", time=at(days=30), status="Done"))
    refresh_state_gauges(engine, metrics, at(days=30))
    assert total(registry, "cmdb_worker_lessons_open", impact="High") == 0
    assert total(registry, "cmdb_worker_lessons_overdue") == 0


def test_hygiene_gauges_carry_the_owner_team(
    feed: Feed, engine: Engine, metrics: Metrics, registry: CollectorRegistry
) -> None:
    """CIs, open and overdue lessons and hygiene issues are broken down by owner team: the
    payments estate's CIs by their owners, the unauthorized-deploy lesson under team-payments,
    an unowned CI's no_owner issue under "none"."""
    feed(*unauthorized_deploy(T0), observed("nobody", time=T0))
    refresh_state_gauges(engine, metrics, at(days=30))
    cis = {"type": "service", "environment": "prod"}
    assert sample(registry, "cmdb_worker_cis", **cis, owner_team="team-payments") == 1
    assert sample(registry, "cmdb_worker_cis", **cis, owner_team="none") == 1
    lesson = {"impact": "High", "owner_team": "team-payments"}
    assert sample(registry, "cmdb_worker_lessons_open", **lesson) == 1
    assert sample(registry, "cmdb_worker_lessons_overdue", owner_team="team-payments") == 1
    assert sample(registry, "cmdb_worker_hygiene_issues", issue="no_owner", owner_team="none") == 1
    assert sample(registry, "cmdb_worker_hygiene_issues", issue="phantom", owner_team="none") == 0


def test_change_outcomes_follow_the_states_team_totals(
    feed: Feed, engine: Engine, metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A finished change counts once, as a success or a failure of its owner team, however
    many ticks see it."""
    feed(*payments_estate(), change_requested("CHG1", "service/payments-api@prod"))
    feed(change_updated("CHG1", time=at(hours=1), state="completed"))
    feed(change_requested("CHG2", "service/payments-api@prod", time=at(hours=2)))
    feed(change_updated("CHG2", time=at(hours=3), state="failed"))
    for _ in range(3):
        refresh_state_gauges(engine, metrics, at(hours=4))
    name = "cmdb_worker_change_outcomes_total"
    assert sample(registry, name, team="team-a", outcome="success") == 1
    assert sample(registry, name, team="team-a", outcome="failure") == 1


def test_no_label_is_a_ci_id(
    feed: Feed, engine: Engine, metrics: Metrics, registry: CollectorRegistry
) -> None:
    """After findings and a tick over a stale estate, no exported label value is a CI id."""
    for finding in feed(*unauthorized_deploy(T0), change_requested("CHG1", "service/x@prod")):
        count_finding(metrics, finding)
    keep_alive(engine, at(days=30))
    refresh_state_gauges(engine, metrics, at(days=30))
    ci_ids = {record.id for record in engine.state.cmdb.records()}
    labels = {v for f in registry.collect() for s in f.samples for v in s.labels.values()}
    assert sample(registry, "cmdb_worker_stale_cis", type="service", environment="prod",
                  owner_team="team-payments", criticality="1") == 1  # fmt: skip
    assert labels and not labels & ci_ids


# ------------------------------------------------------------------------------ real loop
class LiveWorker:
    """The real Runner loop in a thread, its StatusServer on a free loopback port."""

    def __init__(self, settings: Settings, policy: Policy) -> None:
        self.registry = CollectorRegistry()
        self.runner = Runner(settings, policy, Metrics(self.registry))
        runner = self.runner
        self.server = StatusServer(
            "127.0.0.1", 0, self.registry, Api(runner.engine, runner.lock, runner.clock.now),
            liveness(lambda: runner.last_progress, settings.liveness_timeout_seconds),
            lambda: runner.ready,
        ).start()  # fmt: skip
        self.thread = threading.Thread(target=runner.run, name="runner", daemon=True)

    def status(self, path: str) -> int:
        return self.get(path)[0]

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.server.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def stop(self) -> None:
        self.runner.stop()
        if self.thread.ident is not None:
            self.thread.join(timeout=WAIT)
        self.server.stop()
        assert not self.thread.is_alive(), "the runner did not stop"


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: str) -> WorkerTopics:
    names = WorkerTopics(unique_name)
    names.create(kafka_bootstrap)
    return names


@pytest.fixture
def live(kafka_bootstrap: str, topics: WorkerTopics, unique_name: str) -> Iterator[LiveWorker]:
    """A not-yet-started worker: wall clock, fast ticks, a 1 s liveness timeout."""
    names = {key.removeprefix("CMDB_WORKER_").lower(): v for key, v in topics.env().items()}
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, group_id=f"{unique_name}-group", instance_id="w1",
        http_host="127.0.0.1", http_port=0, topic_partitions=1, clock="wall",
        tick_seconds=0.2, gauge_refresh_seconds=0.2, poll_timeout_ms=100,
        liveness_timeout_seconds=1.0, **names,
    )  # fmt: skip
    worker = LiveWorker(settings, load_policy())
    try:
        yield worker
    finally:
        worker.stop()


def events_in(topics: WorkerTopics, now: datetime) -> list[Message]:
    """An estate, an unauthorized deploy and a change request, as they would arrive."""
    discovery = [Message(topics.discovery, json.dumps(e).encode()) for e in payments_estate(now)]
    pipeline = deploy("payments-api", id=f"dep-{now.timestamp()}", time=now)
    change = change_requested("CHG1", "database/payments-pg@prod", time=now)
    return [
        *discovery,
        Message(topics.cicd, json.dumps(pipeline).encode()),
        Message(topics.changes, json.dumps(change).encode()),
    ]


def all_moved(registry: CollectorRegistry) -> bool:
    """The change is assessed, the deploy counted and its lesson published by a tick."""
    assessed = sum(
        s.value for f in registry.collect() for s in f.samples
        if s.name == "cmdb_worker_changes_assessed_total"
    )  # fmt: skip
    deploys = registry.get_sample_value(
        "cmdb_worker_unauthorized_deploys_total", {"environment": "prod"}
    )
    lessons = total(registry, "cmdb_worker_lessons_open", impact="High")
    return assessed == 1 and deploys == 1 and lessons == 1


@pytest.mark.kafka
@pytest.mark.prometheus
def test_promtool_accepts_the_metrics_of_a_busy_worker(
    kafka_bootstrap: str, topics: WorkerTopics, live: LiveWorker
) -> None:
    """promtool check metrics passes on the real /metrics of a worker that processed events,
    and the scrape carries the governance counters and lesson gauges those events moved."""
    promtool = prometheus_binaries()[0]
    live.thread.start()
    wait_until(lambda: live.status("/readyz") == 200, timeout=WAIT, what="ready")
    produce(kafka_bootstrap, events_in(topics, datetime.now(UTC) - timedelta(minutes=1)))
    wait_until(lambda: all_moved(live.registry), timeout=WAIT, what="every event's metrics")
    exposition = live.get("/metrics")[1]
    result = subprocess.run(
        [str(promtool), "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families(exposition.decode()):
        for scraped in family.samples:
            totals[scraped.name] += scraped.value
    assert totals["cmdb_worker_changes_assessed_total"] == 1
    assert totals["cmdb_worker_unauthorized_deploys_total"] == 1


@pytest.mark.kafka
def test_probes_follow_the_real_loop(live: LiveWorker) -> None:
    """/readyz is 503 before the state is rebuilt and partitions assigned and 200 after;
    /healthz turns 503 while the loop is stuck (its lock held) and 200 once it runs again."""
    assert live.status("/readyz") == 503
    live.thread.start()
    wait_until(lambda: live.status("/readyz") == 200, timeout=WAIT, what="ready")
    assert live.status("/healthz") == 200
    with live.runner.lock:
        wait_until(lambda: live.status("/healthz") == 503, timeout=WAIT, what="liveness to fail")
    wait_until(lambda: live.status("/healthz") == 200, timeout=WAIT, what="liveness to recover")
