"""The worker's topics are as durable as the cluster allows, and a rebuild keeps /healthz alive."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource
from prometheus_client import CollectorRegistry

from cmdb_worker.rules.policy import Policy
from cmdb_worker.worker.http import liveness
from cmdb_worker.worker.kafka_clients import (
    TopicError,
    min_insync_replicas,
    prepare_topics,
    replication_factor,
)
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.runner import Runner
from cmdb_worker.worker.settings import Settings
from tests.kafka_broker import create_topics
from tests.worker_process import Message, WorkerProcess, WorkerTopics, produce, worker_env


@pytest.mark.parametrize(("brokers", "expected"), [(1, 1), (2, 2), (3, 3), (7, 3)])
def test_topics_default_to_min_of_three_and_the_brokers(brokers: int, expected: int) -> None:
    """With no setting, topics get min(3, brokers) replicas, so a cluster of three loses none."""
    assert replication_factor(Settings(), brokers) == expected


def test_the_replication_setting_wins_over_the_default() -> None:
    """CMDB_WORKER_REPLICATION_FACTOR, when set, is used as given."""
    assert replication_factor(Settings(replication_factor=2), 5) == 2


@pytest.mark.parametrize(("replicas", "expected"), [(1, 1), (2, 1), (3, 2), (5, 4)])
def test_min_insync_replicas_tolerates_one_broker_down(replicas: int, expected: int) -> None:
    """min.insync.replicas is one less than the replicas (at least 1)."""
    assert min_insync_replicas(replicas) == expected


def _topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        wanted = {"cleanup.policy": None, "min.insync.replicas": None}
        resource = ConfigResource("TOPIC", topic, wanted)
        described = admin.describe_configs([resource], config_filter="all")["topic"][topic]
        return {name: entry["value"] for name, entry in described.items()}
    finally:
        admin.close()


def _settings(bootstrap: str, topics: WorkerTopics, **overrides: object) -> Settings:
    names = {key.removeprefix("CMDB_WORKER_").lower(): value for key, value in topics.env().items()}
    return Settings(bootstrap_servers=bootstrap, topic_partitions=1, **names, **overrides)


@pytest.mark.kafka
def test_created_state_and_lessons_topics_are_compacted_with_min_insync(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """The worker creates cmdb.state and cmdb.lessons compacted, with min.insync.replicas set."""
    topics = WorkerTopics(unique_name)
    created = prepare_topics(_settings(kafka_bootstrap, topics))
    assert topics.state in created and topics.lessons in created
    for topic in (topics.state, topics.lessons):
        configs = _topic_configs(kafka_bootstrap, topic)
        assert configs == {"cleanup.policy": "compact", "min.insync.replicas": "1"}
    assert _topic_configs(kafka_bootstrap, topics.findings)["cleanup.policy"] == "delete"


@pytest.mark.kafka
def test_input_topics_must_have_the_owner_partitions_lesson_ids_are_numbered_by(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """With CMDB_WORKER_OWNER_PARTITIONS above 1, input topics of another partition count are
    refused at start, naming the setting and each topic's count; of that count, accepted."""
    topics = WorkerTopics(unique_name)
    create_topics(kafka_bootstrap, topics.inputs, partitions=2)
    with pytest.raises(TopicError) as refused:
        prepare_topics(_settings(kafka_bootstrap, topics, owner_partitions=3))
    assert "CMDB_WORKER_OWNER_PARTITIONS=3" in str(refused.value)
    assert all(f"{topic} has 2" in str(refused.value) for topic in topics.inputs)
    prepare_topics(_settings(kafka_bootstrap, topics, owner_partitions=2))


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_run_refuses_a_state_topic_that_is_not_compacted(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """An existing cmdb.state with cleanup.policy=delete stops `run` at start: exit 2, and a
    message naming the topic and the fix."""
    topics = WorkerTopics(unique_name)
    create_topics(kafka_bootstrap, [*topics.inputs, topics.state])
    worker = WorkerProcess(worker_env(kafka_bootstrap, topics), tmp_path / "worker.log").start()
    try:
        assert worker.wait_exit(timeout=90) == 2
    finally:
        worker.ensure_stopped()
    assert f"the state topic {topics.state!r} has cleanup.policy=delete" in worker.output()
    assert "cleanup.policy=compact" in worker.output()


@pytest.mark.kafka
def test_a_rebuild_counts_as_progress_for_healthz(
    kafka_bootstrap: str, unique_name: str, policy: Policy
) -> None:
    """Reading the changelog marks the loop alive, so a rebuild longer than the liveness
    timeout is not mistaken for a hung worker."""
    topics = WorkerTopics(unique_name)
    create_topics(kafka_bootstrap, [], compacted=[topics.state])
    batch = b'{"newest": "2026-11-20T10:00:00+00:00", "keys": []}'
    records = (Message(topics.state, batch, f"events/{n}".encode()) for n in range(50))
    produce(kafka_bootstrap, records)
    settings = _settings(kafka_bootstrap, topics, liveness_timeout_seconds=60)
    runner = Runner(settings, policy, Metrics(CollectorRegistry()))
    runner.last_progress = time.monotonic() - 3600  # as if the rebuild had run for an hour
    is_live = liveness(lambda: runner.last_progress, settings.liveness_timeout_seconds)
    assert not is_live()
    runner.rebuild()
    assert is_live()
