"""The transactional producer keeps each transaction's records until its commit."""

import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from cmdb_worker.worker.kafka_clients import commit, transactional_producer
from cmdb_worker.worker.settings import Settings
from tests.kafka_broker import create_topics


@pytest.mark.kafka
def test_records_wait_for_the_commit_after_the_first_commit_too(kafka_bootstrap: str) -> None:
    """After each commit no flush is left in progress (records linger again) and every
    committed record is on the broker."""
    topic = f"commit-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    producer = transactional_producer(
        Settings(bootstrap_servers=kafka_bootstrap, group_id=topic, instance_id="t")
    )
    producer.init_transactions()
    try:
        for round_ in range(3):
            producer.begin_transaction()
            producer.send(topic, key=b"k", value=str(round_).encode())
            assert not producer._accumulator.flush_in_progress()
            commit(producer)
            assert not producer._accumulator.flush_in_progress()
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed")
    partition = TopicPartition(topic, 0)
    try:
        assert consumer.end_offsets([partition])[partition] >= 3
    finally:
        consumer.close()
