"""The ``kafka_port`` protocols on kafka-python, with the clients ``kafka_clients`` configures."""

import contextlib
from collections.abc import Callable, Mapping

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    UnknownTopicOrPartitionError,
)
from kafka.structs import OffsetAndMetadata

from cmdb_worker.worker import kafka_clients
from cmdb_worker.worker.assignment import ActiveStandbyAssignor
from cmdb_worker.worker.kafka_port import Batch, Headers, RebalanceListener
from cmdb_worker.worker.settings import Settings

FENCED = (ProducerFencedError, InvalidProducerEpochError)


class KafkaBackend:
    """The real clients (``KafkaPort``): what ``Runner`` uses unless told otherwise."""

    def prepare_topics(self, settings: Settings) -> list[str]:
        return kafka_clients.prepare_topics(settings)

    def transactional_producer(self, settings: Settings) -> "KafkaTransactionalProducer":
        return KafkaTransactionalProducer(kafka_clients.transactional_producer(settings))

    def input_consumer(
        self, settings: Settings, caught_up: Callable[[], bool]
    ) -> "KafkaInputConsumer":
        assignor = ActiveStandbyAssignor(caught_up)
        return KafkaInputConsumer(kafka_clients.input_consumer(settings, assignor))

    def state_reader(self, settings: Settings) -> "KafkaStateReader":
        return KafkaStateReader(kafka_clients.state_consumer(settings), settings.topic_state)

    def leave_group(self, settings: Settings) -> None:
        with contextlib.suppress(KafkaError):  # a courtesy: the session ends it anyway
            kafka_clients.leave_group(settings)


class KafkaInputConsumer:
    """A ``KafkaConsumer`` in the input group."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        self.consumer.subscribe(topics, listener=_Listener(listener))
        # Metadata before the first join, or its assignment is empty and a second rebalance
        # follows at once (in which kafka-python 3.0.12 now and then hangs for good).
        for topic in topics:
            self.consumer.partitions_for_topic(topic)

    def poll(self, timeout_ms: int) -> Batch:
        batch: Batch = self.consumer.poll(timeout_ms=timeout_ms)
        return batch

    def group_metadata(self) -> object:
        return self.consumer.group_metadata()

    def seek_to_committed(self) -> None:
        """Whatever was fetched before: the previous active's last transaction is final now."""
        for partition in self.consumer.assignment():
            committed = self.consumer.committed(partition)
            if committed is None:
                self.consumer.seek_to_beginning(partition)
            else:
                self.consumer.seek(partition, committed)

    def position(self, partition: TopicPartition) -> int:
        position: int = self.consumer.position(partition)
        return position

    def highwater(self, partition: TopicPartition) -> int | None:
        highwater: int | None = self.consumer.highwater(partition)
        return highwater

    def close(self) -> None:
        self.consumer.close(autocommit=False)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python wants its own listener class: pass its calls on."""

    def __init__(self, listener: RebalanceListener) -> None:
        self.listener = listener

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.listener.on_partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.listener.on_partitions_assigned(assigned)

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        self.listener.on_partitions_lost(lost)


class KafkaTransactionalProducer:
    """A transactional ``KafkaProducer`` whose fencing always raises ``ProducerFencedError``.

    kafka-python raises that only from the request that met it; once fenced, every later call
    raises a plain ``KafkaError`` that names it. Both mean the same to the runner: a zombie.
    """

    def __init__(self, producer: KafkaProducer) -> None:
        self.producer = producer

    @property
    def transactional_id(self) -> str:
        transactional_id: str = self.producer.config["transactional_id"]
        return transactional_id

    def init_transactions(self) -> None:
        self._fenced_or_raise(self.producer.init_transactions)

    def begin_transaction(self) -> None:
        self._fenced_or_raise(self.producer.begin_transaction)

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        try:  # inline, not through _fenced_or_raise: the loop sends several records per event
            self.producer.send(topic, key=key, value=value, headers=headers)
        except KafkaError as error:
            self._raise_if_fenced(error)
            raise

    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_metadata: object
    ) -> None:
        committed = {p: OffsetAndMetadata(offset, "", -1) for p, offset in offsets.items()}
        self._fenced_or_raise(
            lambda: self.producer.send_offsets_to_transaction(committed, group_metadata)
        )

    def commit_transaction(self) -> None:
        self._fenced_or_raise(lambda: kafka_clients.commit(self.producer))

    def abort_transaction(self) -> None:
        self._fenced_or_raise(self.producer.abort_transaction)

    def close(self, timeout: float) -> None:
        self.producer.close(timeout=timeout)

    def _fenced_or_raise(self, call: Callable[[], object]) -> None:
        try:
            call()
        except KafkaError as error:
            self._raise_if_fenced(error)
            raise

    def _raise_if_fenced(self, error: KafkaError) -> None:
        """A stale epoch is fencing too: the epoch is never bumped (``kafka_clients``), so a
        newer producer of the id is what made it stale."""
        last = self.producer._transaction_manager.last_error
        if isinstance(last, FENCED) or isinstance(error, FENCED):
            raise ProducerFencedError(self.transactional_id) from error


class KafkaStateReader:
    """A group-less ``KafkaConsumer`` on every partition of one topic, from the beginning."""

    def __init__(self, consumer: KafkaConsumer, topic: str) -> None:
        self.consumer = consumer
        self.partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not self.partitions:  # a reader of nothing would stand by on an empty graph for good
            consumer.close()
            raise UnknownTopicOrPartitionError(f"no partitions of the state topic {topic}")
        consumer.assign(self.partitions)
        consumer.seek_to_beginning(*self.partitions)

    def poll(self, timeout_ms: int) -> Batch:
        batch: Batch = self.consumer.poll(timeout_ms=timeout_ms)
        return batch

    def end_offsets(self) -> Mapping[TopicPartition, int]:
        ends: Mapping[TopicPartition, int] = self.consumer.end_offsets(self.partitions)
        return ends

    def position(self, partition: TopicPartition) -> int:
        position: int = self.consumer.position(partition)
        return position

    def close(self) -> None:
        self.consumer.close()
