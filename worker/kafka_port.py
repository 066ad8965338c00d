"""The Kafka the runner needs, as small protocols: a real backend and an in-memory one.

``worker.kafka_backend`` implements them with kafka-python against a cluster;
``worker.memory_kafka`` in memory, for unit tests of the loop that run in seconds (the way
getsentry/arroyo tests its strategies). Partitions are kafka-python's ``TopicPartition``
(a namedtuple, so a plain value); a consumed record is anything with ``InputRecord``'s fields,
kafka-python's ``ConsumerRecord`` as it stands.

Errors are kafka-python's: ``ProducerFencedError`` when another producer took over the
transactional id (fatal: this one is a zombie), any other ``KafkaError`` when a transaction
could not commit (abort it before anything else).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from cmdb_worker.worker.settings import Settings

TopicPartition = Any
"""kafka-python's ``TopicPartition(topic, partition)``: both backends use it."""
Headers = list[tuple[str, bytes]]


class InputRecord(Protocol):
    """What the runner reads of a consumed record."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers | None: ...


Batch = Mapping[TopicPartition, Sequence[InputRecord]]
"""One poll's records, by partition, each partition's in offset order."""


class RebalanceListener(Protocol):
    """Told, from inside ``poll``, which partitions go and which come (kafka-python's names)."""

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None: ...
    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None: ...
    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        """The group went on without this member (its session expired): nothing to commit."""


class InputConsumer(Protocol):
    """The group consumer of the input topics: read_committed, no auto-commit."""

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None: ...
    def poll(self, timeout_ms: int) -> Batch: ...
    def group_metadata(self) -> object:
        """What ``send_offsets_to_transaction`` needs to fence a consumer that left the group."""

    def seek_to_committed(self) -> None:
        """Put every assigned partition at the group's committed offset (or the beginning)."""

    def position(self, partition: TopicPartition) -> int: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    def close(self) -> None: ...


class Sender(Protocol):
    """Anything records can be sent to (in the open transaction)."""

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> None: ...


class TransactionalProducer(Sender, Protocol):
    """One transactional id: each batch's records and input offsets commit as one, or not at all."""

    @property
    def transactional_id(self) -> str: ...
    def init_transactions(self) -> None:
        """Fence older producers of this id and end their open transaction (call once, first)."""

    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_metadata: object
    ) -> None:
        """Commit the consumer group's next offsets with the transaction."""

    def commit_transaction(self) -> None: ...
    def abort_transaction(self) -> None: ...
    def close(self, timeout: float) -> None: ...


class StateReader(Protocol):
    """A group-less read_committed reader of every partition of the state topic, from its
    beginning: the start-up rebuild, a standby's tail and a takeover's catch-up."""

    def poll(self, timeout_ms: int) -> Batch: ...
    def end_offsets(self) -> Mapping[TopicPartition, int]:
        """Every partition's end (its last stable offset), as of the call."""

    def position(self, partition: TopicPartition) -> int: ...
    def close(self) -> None: ...


class KafkaPort(Protocol):
    """Where the runner gets its clients, each configured from the settings."""

    def prepare_topics(self, settings: Settings) -> list[str]:
        """Check the existing topics and create the missing ones; the names it created."""

    def transactional_producer(self, settings: Settings) -> TransactionalProducer: ...
    def input_consumer(self, settings: Settings, caught_up: Callable[[], bool]) -> InputConsumer:
        """A member of the input group, in which one member gets every partition (the active);
        ``caught_up()`` says whether this one's state could take the role over now."""

    def state_reader(self, settings: Settings) -> StateReader: ...
    def leave_group(self, settings: Settings) -> None:
        """Take this member out of the group at once, so another takes over without waiting."""
