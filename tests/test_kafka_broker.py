"""End-to-end checks of the local Apache Kafka broker fixtures (tests/kafka_broker.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError, SaslAuthenticationFailedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from tests.kafka_broker import LocalKafkaBroker, ScramBroker, create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def _group_consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip


def _poll_until(consumer: KafkaConsumer, count: int, timeout_s: float = 30.0) -> list[Any]:
    """Poll until at least ``count`` records arrived (or fail after ``timeout_s``)."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    assert len(records) >= count, f"got {len(records)} of {count} records in {timeout_s}s"
    return records


def _produce(bootstrap: str, topic: str, values: list[bytes], **config: Any) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
    try:
        for i, value in enumerate(values):
            producer.send(topic, key=f"k{i}".encode(), value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def test_roundtrip_keeps_key_and_headers(kafka_bootstrap: str, unique_name: str) -> None:
    """A message produced to a fresh topic is consumed back with its value, key and headers."""
    topic = unique_name
    create_topics(kafka_bootstrap, [topic])

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        meta = producer.send(
            topic,
            key=b"ci-42",
            value=b'{"op":"update"}',
            headers=[("source", b"servicenow"), ("trace-id", b"abc123")],
        ).get(timeout=30)
    finally:
        producer.close()
    assert meta.topic == topic and meta.offset == 0

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        (record,) = _poll_until(consumer, 1)
    finally:
        consumer.close()
    assert record.key == b"ci-42"
    assert record.value == b'{"op":"update"}'
    assert list(record.headers) == [("source", b"servicenow"), ("trace-id", b"abc123")]


def test_group_commit_survives_reconnect(kafka_bootstrap: str, unique_name: str) -> None:
    """An offset committed by a consumer group is where a new consumer of that group resumes."""
    topic, group = unique_name, f"{unique_name}-g"
    create_topics(kafka_bootstrap, [topic])
    _produce(kafka_bootstrap, topic, [f"v{i}".encode() for i in range(5)])
    tp = TopicPartition(topic, 0)

    first = _group_consumer(kafka_bootstrap, topic, group)
    try:
        records = _poll_until(first, 3)
        assert [r.offset for r in records[:3]] == [0, 1, 2]
        first.commit({tp: OffsetAndMetadata(3, "", -1)})
    finally:
        first.close(autocommit=False)

    second = _group_consumer(kafka_bootstrap, topic, group)
    try:
        assert second.committed(tp) == 3
        resumed = _poll_until(second, 2)
    finally:
        second.close(autocommit=False)
    assert [(r.offset, r.value) for r in resumed] == [(3, b"v3"), (4, b"v4")]


def test_scram_sha512_accepts_right_credentials(kafka_scram: ScramBroker, unique_name: str) -> None:
    """The SCRAM listener lets user cmdb (SCRAM-SHA-512) create, produce and consume."""
    assert kafka_scram.mechanism == "SCRAM-SHA-512"
    config = kafka_scram.client_config()
    topic = unique_name
    create_topics(kafka_scram.bootstrap, [topic], **config)
    _produce(
        kafka_scram.bootstrap,
        topic,
        [b"secret-hello"],
        **{k: v for k, v in config.items() if k != "bootstrap_servers"},
    )
    consumer = KafkaConsumer(topic, group_id=None, auto_offset_reset="earliest", **config)
    try:
        (record,) = _poll_until(consumer, 1)
    finally:
        consumer.close()
    assert record.value == b"secret-hello"


def test_scram_rejects_wrong_password(
    kafka_scram: ScramBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A client with a wrong SCRAM password is refused with an authentication error."""
    config = kafka_scram.client_config(sasl_plain_password="not-the-password")
    # kafka-python 3.0.x treats the broker's SaslAuthenticationFailedError during bootstrap as
    # a failed bootstrap attempt: it logs it, retries, and finally raises KafkaTimeoutError
    # ("Unable to bootstrap from ...") after bootstrap_timeout_ms. Older/newer releases may raise
    # SaslAuthenticationFailedError directly; accept both but insist the cause was auth. The
    # client does not always see the broker's error (it can lose it to the closing socket), so
    # the broker's own log, from this attempt on, is the authority on the cause.
    log_start = kafka_scram.log_file.stat().st_size if kafka_scram.log_file else 0
    with (
        caplog.at_level(logging.WARNING, logger="kafka"),
        pytest.raises((SaslAuthenticationFailedError, KafkaTimeoutError)) as excinfo,
    ):
        KafkaAdminClient(bootstrap_timeout_ms=3000, **config).close()
    client_says_auth = isinstance(excinfo.value, SaslAuthenticationFailedError) or (
        "SaslAuthenticationFailedError" in caplog.text and "invalid credentials" in caplog.text
    )
    assert client_says_auth or _broker_logged_bad_credentials(kafka_scram, log_start), caplog.text


def _broker_logged_bad_credentials(scram: ScramBroker, since: int) -> bool:
    if scram.log_file is None:
        return False
    with scram.log_file.open("rb") as log:
        log.seek(since)
        written = log.read().decode(errors="replace")
    return f"invalid credentials with SASL mechanism {scram.mechanism}" in written


def test_own_broker_keeps_data_across_kill_and_restart(
    own_kafka_broker: Callable[..., LocalKafkaBroker], unique_name: str
) -> None:
    """A private broker SIGKILLed and restarted on its directory keeps its address and data."""
    broker = own_kafka_broker()
    bootstrap = broker.bootstrap
    topic = unique_name
    create_topics(bootstrap, [topic], partitions=2, compacted=[f"{topic}-state"])
    _produce(bootstrap, topic, [b"before-crash"])

    broker.kill()
    assert not broker.is_running()
    assert broker.start() == bootstrap
    assert broker.is_running()

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        assert {topic, f"{topic}-state"} <= set(admin.list_topics())
    finally:
        admin.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    try:
        (record,) = _poll_until(consumer, 1)
    finally:
        consumer.close()
    assert record.value == b"before-crash"

    broker.stop()
    assert not broker.is_running()
