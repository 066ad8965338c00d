"""``cmdb-worker run`` stopped mid-stream (SIGKILL or SIGTERM) and restarted: exactly-once effects.

A few thousand discovery events on one partition are consumed by a worker that is stopped
part-way, then restarted with the same group and transactional id. The findings a
``read_committed`` consumer sees, and the graph rebuilt from the changelog topic, must equal
those of one clean ``cmdb-worker replay`` of the same lines.

The stream is discovery only: changes, incidents and lessons are not in the changelog yet.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pytest
from kafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.export import graph_document
from tests.recovery_stream import EVENTS, discovery_stream
from tests.worker_process import (
    Message,
    ReplayOutput,
    WorkerProcess,
    WorkerTopics,
    committed_offsets,
    comparable_graph,
    findings_of,
    produce,
    read_topic,
    replay_lines,
    wait_caught_up,
    wait_committed,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

STOP_AFTER = EVENTS * 3 // 5
"""Committed offsets at which the first worker is stopped: past a day of event time, so CIs
have gone stale and orphan (flags the restarted worker must know from the changelog)."""
GRACE_SECONDS = 10.0


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def stream() -> list[str]:
    """The generated events as JSON lines (the exact message values)."""
    return [json.dumps(event, separators=(",", ":")) for event in discovery_stream()]


@pytest.fixture(scope="module")
def clean(stream: list[str], tmp_path_factory: pytest.TempPathFactory) -> ReplayOutput:
    """One clean replay of the stream: what every recovery must end up equal to."""
    output = replay_lines(stream, tmp_path_factory.mktemp("clean-replay"))
    ids = [finding["id"] for finding in output.findings]
    assert len(ids) == len(set(ids)) > 100, "the stream must give unique finding ids"
    assert output.dead_letters == []
    return output


@dataclass
class Scenario:
    """A worker consuming the stream on fresh topics, to be stopped part-way."""

    bootstrap: str
    topics: WorkerTopics
    env: dict[str, str]

    @property
    def group(self) -> str:
        return self.env["CMDB_WORKER_GROUP_ID"]

    @property
    def partition(self) -> TopicPartition:
        return TopicPartition(self.topics.discovery, 0)

    def committed(self) -> int:
        return committed_offsets(self.bootstrap, self.group).get(self.partition, 0)

    def produce(self, stream: list[str]) -> None:
        produce(self.bootstrap, (Message(self.topics.discovery, line.encode()) for line in stream))


@pytest.fixture
def topics_only(kafka_bootstrap: str, unique_name: str) -> Scenario:
    """Fresh topics and a worker environment, nothing produced yet."""
    topics = WorkerTopics(unique_name)
    topics.create(kafka_bootstrap)
    env = worker_env(
        kafka_bootstrap, topics, max_poll_records=20, shutdown_grace_seconds=GRACE_SECONDS
    )
    return Scenario(kafka_bootstrap, topics, env)


@pytest.fixture
def scenario(topics_only: Scenario, stream: list[str]) -> Scenario:
    topics_only.produce(stream)
    return topics_only


# ------------------------------------------------------------------------------ checks
def events_consumed(running: WorkerProcess) -> int:
    status, body = running.get("/metrics")
    assert status == 200
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "cmdb_worker_events_consumed_total"
    )


def resume_and_finish(
    scenario: Scenario, start: Callable[[dict[str, str]], WorkerProcess], stopped_at: int
) -> None:
    """Restart on the same group and transactional id; it reads only what was not committed."""
    restarted = start(scenario.env).wait_ready()
    rebuilt = [e for e in restarted.log_events() if e.get("event") == "state_rebuilt"]
    assert rebuilt and rebuilt[0]["cis"] > 0, "the restarted worker must rebuild its state"
    wait_caught_up(scenario.bootstrap, scenario.group, [scenario.topics.discovery],
                   worker=restarted)  # fmt: skip
    assert events_consumed(restarted) == EVENTS - stopped_at
    assert restarted.terminate(GRACE_SECONDS + 5)[0] == 0


def assert_same_as_clean_replay(scenario: Scenario, clean: ReplayOutput) -> None:
    """Findings exactly once and equal to the replay's; the changelog rebuilds the same graph."""
    findings = findings_of(read_topic(scenario.bootstrap, scenario.topics.findings))
    ids = [finding["id"] for finding in findings]
    assert len(ids) == len(set(ids)), "a finding was emitted twice"
    assert set(ids) == {finding["id"] for finding in clean.findings}
    assert len(findings) == len(clean.findings)

    policy = load_policy()
    engine = Engine(policy)
    entries = read_topic(scenario.bootstrap, scenario.topics.state)
    changelog.rebuild(engine, ((r.key.decode(), r.value) for r in entries if r.key))
    as_of = datetime.fromisoformat(clean.summary["as_of"])
    rebuilt = graph_document(engine.state.cmdb, policy, as_of)
    assert comparable_graph(rebuilt) == comparable_graph(clean.graph)


# ------------------------------------------------------------------------------ tests
def test_kill_9_mid_stream_then_restart_gives_every_effect_exactly_once(
    scenario: Scenario, clean: ReplayOutput, worker: Callable[..., WorkerProcess]
) -> None:
    """A worker SIGKILLed with some but not all offsets committed, then restarted, leaves
    findings (unique ids, same set and count) and a changelog graph equal to a clean replay's:
    the killed worker's open transaction is aborted and its batch is consumed again."""
    first = worker(scenario.env).wait_ready()
    wait_committed(scenario.bootstrap, scenario.group, scenario.partition, STOP_AFTER)
    first.kill()
    stopped_at = scenario.committed()
    assert STOP_AFTER <= stopped_at < EVENTS, "the kill must land mid-stream"

    resume_and_finish(scenario, worker, stopped_at)
    assert_same_as_clean_replay(scenario, clean)


def test_kill_9_of_the_active_hands_over_to_its_standby_with_every_effect_exactly_once(
    topics_only: Scenario,
    stream: list[str],
    clean: ReplayOutput,
    worker: Callable[..., WorkerProcess],
) -> None:
    """Two replicas: the active SIGKILLed mid-stream, past a day of event time (CIs gone stale,
    orphaned, retired and merged, sources silent), and the standby, which applied the changelog
    as it was written and kept the CIs' deadlines armed, takes over without a rebuild. Findings,
    the deadlines' included, are each there once and equal a clean replay's; so is the graph."""
    scenario = topics_only
    active = worker(scenario.env).wait_ready()
    standby = worker(scenario.env | {"CMDB_WORKER_INSTANCE_ID": "w2"}).wait_ready()
    scenario.produce(stream)
    wait_committed(scenario.bootstrap, scenario.group, scenario.partition, STOP_AFTER)
    active.kill()
    stopped_at = scenario.committed()
    assert STOP_AFTER <= stopped_at < EVENTS, "the kill must land mid-stream"

    wait_caught_up(scenario.bootstrap, scenario.group, [scenario.topics.discovery],
                   worker=standby)  # fmt: skip
    took_over = [e for e in standby.log_events() if e.get("event") == "took_over"]
    assert len(took_over) == 1, standby.tail()
    rebuilt = [e for e in standby.log_events() if e.get("event") == "state_rebuilt"]
    assert len(rebuilt) == 1 and rebuilt[0]["cis"] == 0, "it rebuilt only at its start"
    assert events_consumed(standby) == EVENTS - stopped_at
    assert standby.terminate(GRACE_SECONDS + 5)[0] == 0
    assert_same_as_clean_replay(scenario, clean)


def test_sigterm_mid_stream_exits_cleanly_and_a_restart_resumes_where_it_stopped(
    scenario: Scenario, clean: ReplayOutput, worker: Callable[..., WorkerProcess]
) -> None:
    """SIGTERM mid-stream makes the worker commit the batch in hand and exit 0 within the grace
    period, leaving no aborted transaction; a restart consumes only the rest, and findings and
    the changelog graph equal a clean replay's."""
    first = worker(scenario.env).wait_ready()
    wait_committed(scenario.bootstrap, scenario.group, scenario.partition, STOP_AFTER)
    code, seconds = first.terminate(GRACE_SECONDS + 5)
    assert code == 0 and seconds < GRACE_SECONDS, first.tail()
    assert any(e.get("event") == "stopped" for e in first.log_events())
    stopped_at = scenario.committed()
    assert STOP_AFTER <= stopped_at < EVENTS, "the stop must land mid-stream"
    committed = read_topic(scenario.bootstrap, scenario.topics.findings)
    everything = read_topic(
        scenario.bootstrap, scenario.topics.findings, isolation="read_uncommitted"
    )
    assert len(everything) == len(committed), "a graceful stop aborts nothing"

    resume_and_finish(scenario, worker, stopped_at)
    assert_same_as_clean_replay(scenario, clean)
