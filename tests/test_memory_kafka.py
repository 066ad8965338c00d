"""The Kafka port's semantics, pinned: the in-memory broker behaves as the real one does.

The tests marked ``both`` run against ``memory_kafka`` and, marked ``kafka``, against the real
broker through ``kafka_backend``: what the runner's unit tests assume of the fake is what Kafka
does. The rest pin what only the fake needs proving (its rebalance barrier, its failure hook).
"""

from collections.abc import Iterator

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaError, ProducerFencedError

from cmdb_worker.worker.kafka_backend import KafkaBackend
from cmdb_worker.worker.kafka_port import Batch, InputConsumer, InputRecord, KafkaPort
from cmdb_worker.worker.memory_kafka import MemoryBroker
from cmdb_worker.worker.settings import Settings

Port = tuple[KafkaPort, Settings]


def settings_for(name: str, bootstrap: str = "localhost:9092") -> Settings:
    """Topics, group and transactional id of one test, one partition per topic."""
    kinds = (
        "discovery",
        "cicd",
        "changes",
        "lesson_updates",
        "findings",
        "lessons",
        "dlq",
        "state",
    )
    topics = {f"topic_{kind}": f"{name}.{kind}" for kind in kinds}
    return Settings(bootstrap_servers=bootstrap, group_id=f"{name}-group", instance_id="a",
                    topic_partitions=1, **topics)  # fmt: skip


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def both(request: pytest.FixtureRequest, unique_name: str) -> Port:
    """The in-memory broker, or the real one (its topics created for this test)."""
    if request.param == "memory":
        port: KafkaPort = MemoryBroker()
        settings = settings_for(unique_name)
    else:
        port, settings = (
            KafkaBackend(),
            settings_for(unique_name, request.getfixturevalue("kafka_bootstrap")),
        )
    port.prepare_topics(settings)
    return port, settings


def read_values(port: KafkaPort, settings: Settings, topic: str) -> list[bytes | None]:
    """What a read_committed reader of ``topic`` sees, up to its end as of now."""
    reader = port.state_reader(settings.model_copy(update={"topic_state": topic}))
    try:
        end, values = reader.end_offsets(), list[bytes | None]()
        while any(reader.position(partition) < offset for partition, offset in end.items()):
            values += [r.value for records in reader.poll(1000).values() for r in records]
        return values
    finally:
        reader.close()


class Listener:
    """Records the rebalance calls it gets, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TopicPartition]]] = []

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.calls.append(("revoked", sorted(revoked)))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.calls.append(("assigned", sorted(assigned)))


def poll_until(consumer: InputConsumer, want: int, polls: int = 60) -> Batch:
    """Poll until ``want`` records came (or ``polls`` polls of half a second passed)."""
    got: dict[TopicPartition, list[InputRecord]] = {}
    for _ in range(polls):
        for partition, records in consumer.poll(timeout_ms=500).items():
            got.setdefault(partition, []).extend(records)
        if sum(len(records) for records in got.values()) >= want:
            break
    return got


def poll_until_assigned(consumer: InputConsumer, listener: Listener, polls: int = 60) -> None:
    for _ in range(polls):
        if listener.calls:
            return
        assert consumer.poll(timeout_ms=500) == {}
    raise AssertionError("no partitions assigned")


@pytest.fixture
def closing() -> Iterator[list[InputConsumer]]:
    consumers: list[InputConsumer] = []
    yield consumers
    for consumer in consumers:
        consumer.close()


def test_aborted_transactions_are_invisible_to_read_committed(both: Port) -> None:
    """A read_committed reader sees a committed transaction's records and never an aborted one's."""
    port, settings = both
    producer = port.transactional_producer(settings)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(settings.topic_findings, key=b"k", value=b"aborted")
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(settings.topic_findings, key=b"k", value=b"committed")
    producer.commit_transaction()
    producer.close(timeout=10)
    assert read_values(port, settings, settings.topic_findings) == [b"committed"]


def test_a_second_producer_of_the_transactional_id_fences_the_first(both: Port) -> None:
    """``init_transactions`` of a second producer with the same transactional id aborts the
    first's open transaction, and the first's commit raises ``ProducerFencedError``."""
    port, settings = both
    first, second = port.transactional_producer(settings), port.transactional_producer(settings)
    first.init_transactions()
    first.begin_transaction()
    first.send(settings.topic_findings, key=b"k", value=b"zombie")
    second.init_transactions()
    with pytest.raises(ProducerFencedError):
        first.commit_transaction()
    second.begin_transaction()
    second.send(settings.topic_findings, key=b"k", value=b"successor")
    second.commit_transaction()
    for producer in (first, second):
        producer.close(timeout=10)
    assert read_values(port, settings, settings.topic_findings) == [b"successor"]


def test_a_fenced_producer_learns_it_at_its_first_write(both: Port) -> None:
    """A transaction that writes nothing never reaches the broker, so a fenced producer still
    commits one; its next transaction that writes fails to commit with ``ProducerFencedError``."""
    port, settings = both
    first, second = port.transactional_producer(settings), port.transactional_producer(settings)
    first.init_transactions()
    second.init_transactions()
    first.begin_transaction()
    first.commit_transaction()
    with pytest.raises(ProducerFencedError):
        first.begin_transaction()
        first.send(settings.topic_findings, key=b"k", value=b"zombie")
        first.commit_transaction()
    for producer in (first, second):
        producer.close(timeout=10)
    assert read_values(port, settings, settings.topic_findings) == []


def test_group_offsets_move_only_when_their_transaction_commits(
    both: Port, closing: list[InputConsumer]
) -> None:
    """Offsets sent in an aborted transaction leave the group where it was (the next member
    reads the records again); offsets of a committed one move it on."""
    port, settings = both
    producer = port.transactional_producer(settings)
    producer.init_transactions()
    producer.begin_transaction()
    for value in (b"one", b"two"):
        producer.send(settings.topic_discovery, key=b"k", value=value)
    producer.commit_transaction()
    for outcome in ("abort", "commit"):
        consumer = port.input_consumer(settings, lambda: True)
        closing.append(consumer)
        consumer.subscribe([settings.topic_discovery], Listener())
        batch = poll_until(consumer, want=2)
        assert [r.value for records in batch.values() for r in records] == [b"one", b"two"]
        producer.begin_transaction()
        offsets = {partition: records[-1].offset + 1 for partition, records in batch.items()}
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        getattr(producer, f"{outcome}_transaction")()
        consumer.close()
    last = port.input_consumer(settings, lambda: True)
    closing.append(last)
    listener = Listener()
    last.subscribe([settings.topic_discovery], listener)
    poll_until_assigned(last, listener)
    assert ("assigned", [TopicPartition(settings.topic_discovery, 0)]) in listener.calls
    assert poll_until(last, want=1, polls=3) == {}
    producer.close(timeout=10)


# ------------------------------------------------------------------------------ the fake only
@pytest.fixture
def memory(unique_name: str) -> tuple[MemoryBroker, Settings]:
    broker, settings = (
        MemoryBroker(),
        settings_for(unique_name).model_copy(update={"topic_partitions": 2}),
    )
    broker.prepare_topics(settings)
    return broker, settings


def test_an_open_transaction_holds_back_later_records_of_its_partition(
    memory: tuple[MemoryBroker, Settings],
) -> None:
    """Records written after an open transaction's (even outside any transaction) stay unseen
    until it ends: read_committed readers see a partition in order."""
    broker, settings = memory
    producer = broker.transactional_producer(settings)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(settings.topic_findings, key=b"k", value=b"in the transaction")
    broker.produce(settings.topic_findings, b"after it", key=b"k")
    assert broker.read_committed(settings.topic_findings) == []
    assert read_values(broker, settings, settings.topic_findings) == []
    producer.commit_transaction()
    assert read_values(broker, settings, settings.topic_findings) == [
        b"in the transaction",
        b"after it",
    ]


def test_a_rebalance_revokes_everywhere_before_it_assigns(
    memory: tuple[MemoryBroker, Settings], closing: list[InputConsumer]
) -> None:
    """When a second member joins, the first gives up all its partitions from inside its next
    poll, and only then is anything assigned: every partition to the earlier member (the
    active), none to the newcomer (a standby), as the real assignor keeps its active."""
    broker, settings = memory
    topic = settings.topic_discovery
    first, second = broker.input_consumer(settings), broker.input_consumer(settings)
    closing.extend([first, second])
    heard = Listener(), Listener()
    first.subscribe([topic], heard[0])
    first.poll(timeout_ms=0)
    second.subscribe([topic], heard[1])
    second.poll(timeout_ms=0)
    assert heard[1].calls == [], "the second waits for the first to give its partitions up"
    first.poll(timeout_ms=0)
    second.poll(timeout_ms=0)
    everything = broker.topic_partitions(topic)
    assert heard[0].calls == [
        ("assigned", everything),
        ("revoked", everything),
        ("assigned", everything),
    ]
    assert heard[1].calls == [("assigned", [])]


def test_offsets_of_a_member_that_left_the_group_do_not_commit(
    memory: tuple[MemoryBroker, Settings],
) -> None:
    """A member that left the group cannot commit offsets (``CommitFailedError``: KIP-447 fences
    it); the producer refuses anything but an abort, and then commits again. (Fake only: on
    the real broker it depends on whether the member's LeaveGroup arrived first.)"""
    port, settings = memory
    consumer = port.input_consumer(settings, lambda: True)
    listener = Listener()
    consumer.subscribe([settings.topic_discovery], listener)
    poll_until_assigned(consumer, listener)
    left_with = consumer.group_metadata()
    consumer.close()
    producer = port.transactional_producer(settings)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(settings.topic_findings, key=b"k", value=b"with stale offsets")
    producer.send_offsets_to_transaction(
        {TopicPartition(settings.topic_discovery, 0): 0}, left_with
    )
    with pytest.raises(CommitFailedError):
        producer.commit_transaction()
    with pytest.raises(KafkaError):
        producer.begin_transaction()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(settings.topic_findings, key=b"k", value=b"after the abort")
    producer.commit_transaction()
    producer.close(timeout=10)
    assert read_values(port, settings, settings.topic_findings) == [b"after the abort"]
