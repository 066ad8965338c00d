"""An in-memory Kafka implementing ``kafka_port``, for unit tests of the loop that run in seconds.

What it keeps of Kafka, and little more:

- Topics of numbered partitions; a keyed record goes to its key's partition (murmur2, as
  kafka-python's default partitioner), an unkeyed one round-robin.
- Transactions, read_committed: a transaction's records are invisible until it commits, and
  for ever if it aborts; an open transaction holds back every later record of its partition
  (the last stable offset), so readers see a partition in order.
- A consumer group whose committed offsets move only when a transaction carrying them commits,
  and only for the group generation that consumed them (``CommitFailedError`` otherwise).
- Fencing: ``init_transactions`` of a transactional id aborts that id's open transaction and
  fences the producer that had it: its next write, or commit of a transaction that wrote,
  raises ``ProducerFencedError`` (a transaction that wrote nothing never reaches the broker).
- Eager rebalances: when a member joins or leaves, or a test calls ``rebalance``, every member
  gives up its partitions on its next ``poll`` (``on_partitions_revoked``); once all have,
  each takes its share, round-robin in joining order, on its next ``poll``
  (``on_partitions_assigned``) and reads on from the group's committed offsets.
- Failure injection: ``before_commit(transactional_id)`` runs before every commit, outside the
  lock. A test raises a ``KafkaError`` from it to fail the commit (the producer must then
  abort, as after kafka-python's abortable errors), or acts at that moment (starts a second
  producer of the id, stops a runner).

One lock guards everything, so runners in threads can share a broker; listeners are called
outside it.
"""

import itertools
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from kafka import TopicPartition
from kafka.errors import CommitFailedError, IllegalStateError, KafkaError, ProducerFencedError
from kafka.partitioner.default import murmur2

from cmdb_worker.worker.kafka_clients import (
    all_topics,
    require_owner_partitions,
    transactional_id,
)
from cmdb_worker.worker.kafka_port import Batch, Headers, InputRecord, RebalanceListener
from cmdb_worker.worker.settings import Settings

Status = Literal["open", "committed", "aborted"]


@dataclass(frozen=True)
class Record:
    """One record as a consumer gets it (``kafka_port.InputRecord``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int


@dataclass
class _Transaction:
    """An open, committed or aborted transaction, and the group offsets it carries."""

    status: Status = "open"
    written: bool = False  # the broker knows of it from its first write on
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    group: "_GroupMetadata | None" = None


@dataclass
class _Entry:
    record: Record
    transaction: _Transaction | None  # None: written outside a transaction, visible at once

    @property
    def status(self) -> Status:
        return self.transaction.status if self.transaction else "committed"


@dataclass(frozen=True)
class _GroupMetadata:
    group_id: str
    generation: int
    member: "MemoryConsumer"


@dataclass(eq=False)
class _Group:
    """Members in joining order; ``rejoining`` have yet to give up their partitions."""

    members: list["MemoryConsumer"] = field(default_factory=list)
    generation: int = 0
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    rejoining: set["MemoryConsumer"] = field(default_factory=set)
    assignment: dict["MemoryConsumer", list[TopicPartition]] = field(default_factory=dict)


class MemoryBroker:
    """Topics, transactions and consumer groups in memory; a ``KafkaPort`` for the runner."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.logs: dict[TopicPartition, list[_Entry]] = {}
        self.partitions: dict[str, int] = {}
        self.groups: dict[str, _Group] = {}
        self.epochs: dict[str, int] = {}
        self.open: dict[str, _Transaction] = {}
        self.before_commit: Callable[[str], None] = lambda transactional_id: None
        self.unkeyed = itertools.count()

    # ---------------------------------------------------------------- the port
    def prepare_topics(self, settings: Settings) -> list[str]:
        missing = [name for name in all_topics(settings) if name not in self.partitions]
        for name in missing:
            self.create_topic(name, settings.topic_partitions)
        inputs = {topic: self.partitions[topic] for topic in settings.input_topics}
        require_owner_partitions(settings, inputs)
        return missing

    def transactional_producer(self, settings: Settings) -> "MemoryProducer":
        return MemoryProducer(self, transactional_id(settings))

    def input_consumer(
        self, settings: Settings, caught_up: Callable[[], bool] = lambda: True
    ) -> "MemoryConsumer":
        """A member of the group; the earliest member still in it is the active (gets every
        partition), as the real assignor keeps a current active (``caught_up`` is not asked)."""
        return MemoryConsumer(self, settings.group_id, settings.max_poll_records)

    def state_reader(self, settings: Settings) -> "MemoryStateReader":
        return MemoryStateReader(self, settings.topic_state)

    def leave_group(self, settings: Settings) -> None:
        """A memory consumer leaves its group when it closes."""

    # ---------------------------------------------------------------- for tests
    def create_topic(self, name: str, partitions: int) -> None:
        with self.lock:
            self.partitions[name] = partitions
            for number in range(partitions):
                self.logs[TopicPartition(name, number)] = []

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
    ) -> Record:
        """Write one record outside any transaction (as an input's producer does)."""
        return self.append(topic, key, value, list(headers or []), None)

    def read_committed(self, topic: str) -> list[Record]:
        """Every record a read_committed consumer can see now, partition after partition."""
        with self.lock:
            return [
                r for p in self.topic_partitions(topic) for r in self.fetch(p, 0, sys.maxsize)[0]
            ]

    def aborted(self, topic: str) -> list[Record]:
        """The records of aborted transactions: in the log, never seen by read_committed."""
        with self.lock:
            partitions = self.topic_partitions(topic)
            return [e.record for p in partitions for e in self.logs[p] if e.status == "aborted"]

    def committed(self, group_id: str) -> dict[TopicPartition, int]:
        with self.lock:
            return dict(self.group(group_id).committed)

    def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        with self.lock:
            return {
                partition: len(self.logs[partition]) for partition in self.topic_partitions(topic)
            }

    def last_stable_offset(self, partition: TopicPartition) -> int:
        """Where a read_committed reader stops: the first record of a still open transaction."""
        log = self.logs[partition]
        return next((n for n, entry in enumerate(log) if entry.status == "open"), len(log))

    def rebalance(self, group_id: str) -> None:
        """Start a rebalance of the group, as a member joining or leaving would."""
        with self.lock:
            group = self.group(group_id)
            group.rejoining = set(group.members)
            self.lock.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``condition()`` holds (checked whenever the broker changes)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"not reached within {timeout}s: {condition}")
                self.lock.wait(min(left, 0.05))

    def topic_partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, number) for number in range(self.partitions[topic])]

    # ---------------------------------------------------------------- the log
    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        transaction: _Transaction | None,
    ) -> Record:
        with self.lock:
            partition = TopicPartition(topic, self._partition_for(topic, key))
            log = self.logs[partition]
            record = Record(topic, partition.partition, len(log), key, value, headers,
                            int(time.time() * 1000))  # fmt: skip
            log.append(_Entry(record, transaction))
            self.lock.notify_all()
            return record

    def _partition_for(self, topic: str, key: bytes | None) -> int:
        if topic not in self.partitions:
            raise KafkaError(f"unknown topic {topic!r}")
        count = self.partitions[topic]
        return (
            (murmur2(key) & 0x7FFFFFFF) % count if key is not None else next(self.unkeyed) % count
        )

    def fetch(
        self, partition: TopicPartition, position: int, limit: int
    ) -> tuple[list[Record], int]:
        """Visible records from ``position`` up to the last stable offset, at most ``limit``;
        the position after them (past aborted records too)."""
        log, taken = self.logs[partition], list[Record]()
        while position < len(log) and len(taken) < limit and log[position].status != "open":
            if log[position].status == "committed":
                taken.append(log[position].record)
            position += 1
        return taken, position

    # ---------------------------------------------------------------- transactions
    def init_producer(self, transactional_id: str) -> int:
        """Abort the id's open transaction and fence its producer; the new producer's epoch."""
        with self.lock:
            self._end(transactional_id, "aborted")
            self.epochs[transactional_id] = self.epochs.get(transactional_id, -1) + 1
            return self.epochs[transactional_id]

    def check_epoch(self, transactional_id: str, epoch: int | None) -> None:
        if epoch is None:
            raise IllegalStateError("call init_transactions first")
        if self.epochs[transactional_id] != epoch:
            raise ProducerFencedError(transactional_id)

    def commit(self, transactional_id: str) -> None:
        """Commit the id's open transaction, its offsets with it (if their generation holds)."""
        with self.lock:
            transaction = self.open[transactional_id]
            if transaction.group is not None:
                self._commit_offsets(transaction.group, transaction.offsets)
            self._end(transactional_id, "committed")

    def abort(self, transactional_id: str) -> None:
        with self.lock:
            self._end(transactional_id, "aborted")

    def _commit_offsets(
        self, metadata: _GroupMetadata, offsets: Mapping[TopicPartition, int]
    ) -> None:
        group = self.group(metadata.group_id)
        if metadata.generation != group.generation or metadata.member not in group.members:
            raise CommitFailedError(
                f"generation {metadata.generation} of {metadata.group_id} is over"
            )
        group.committed.update(offsets)

    def _end(self, transactional_id: str, status: Status) -> None:
        transaction = self.open.pop(transactional_id, None)
        if transaction is not None:
            transaction.status = status
            self.lock.notify_all()

    # ---------------------------------------------------------------- groups
    def group(self, group_id: str) -> _Group:
        return self.groups.setdefault(group_id, _Group())

    def join(self, group_id: str, member: "MemoryConsumer") -> None:
        with self.lock:
            self.group(group_id).members.append(member)
        self.rebalance(group_id)

    def leave(self, group_id: str, member: "MemoryConsumer") -> None:
        with self.lock:
            group = self.group(group_id)
            if member in group.members:
                group.members.remove(member)
                self.rebalance(group_id)

    def give_up(self, group: _Group, member: "MemoryConsumer") -> None:
        """``member`` gave up its partitions; the last to do so completes the rebalance."""
        group.rejoining.discard(member)
        if not group.rejoining:
            group.generation += 1
            partitions = sorted(
                {p for m in group.members for t in m.topics for p in self.topic_partitions(t)}
            )
            group.assignment = {
                m: partitions if n == 0 else [] for n, m in enumerate(group.members)
            }
            self.lock.notify_all()


class MemoryConsumer:
    """A member of a consumer group (``kafka_port.InputConsumer``)."""

    def __init__(self, broker: MemoryBroker, group_id: str, max_poll_records: int) -> None:
        self.broker, self.group_id, self.max_poll_records = broker, group_id, max_poll_records
        self.topics: list[str] = []
        self.listener: RebalanceListener | None = None
        self.generation = -1
        self.positions: dict[TopicPartition, int] = {}

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        self.topics, self.listener = list(topics), listener
        self.broker.join(self.group_id, self)

    def poll(self, timeout_ms: int) -> Batch:
        self._rebalance()
        batch = self._fetch()
        if not batch:
            with self.broker.lock:
                self.broker.lock.wait(timeout_ms / 1000)
            self._rebalance()
            batch = self._fetch()
        return batch

    def _rebalance(self) -> None:
        """Give up the partitions while the group rebalances; take the new share once it is done."""
        with self.broker.lock:
            revoked, assigned = self._give_up(), self._take()
        assert self.listener is not None, "subscribe first"
        if revoked is not None:
            self.listener.on_partitions_revoked(revoked)
        if assigned is not None:
            self.listener.on_partitions_assigned(assigned)

    def _give_up(self) -> list[TopicPartition] | None:
        group = self.broker.group(self.group_id)
        if self not in group.rejoining:
            return None
        revoked = list(self.positions)
        self.positions = {}
        self.broker.give_up(group, self)
        return revoked if self.generation >= 0 else None

    def _take(self) -> list[TopicPartition] | None:
        group = self.broker.group(self.group_id)
        if group.rejoining or self.generation == group.generation:
            return None
        assigned = group.assignment.get(self, [])
        self.generation = group.generation
        self.positions = {partition: group.committed.get(partition, 0) for partition in assigned}
        return assigned

    def _fetch(self) -> dict[TopicPartition, list[InputRecord]]:
        batch: dict[TopicPartition, list[InputRecord]] = {}
        room = self.max_poll_records
        with self.broker.lock:
            for partition, position in self.positions.items():
                records, self.positions[partition] = self.broker.fetch(partition, position, room)
                if records:
                    batch[partition] = list(records)
                    room -= len(records)
        return batch

    def group_metadata(self) -> object:
        return _GroupMetadata(self.group_id, self.generation, self)

    def seek_to_committed(self) -> None:
        with self.broker.lock:
            committed = self.broker.group(self.group_id).committed
            self.positions = {
                partition: committed.get(partition, 0) for partition in self.positions
            }

    def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    def highwater(self, partition: TopicPartition) -> int | None:
        return len(self.broker.logs[partition])

    def close(self) -> None:
        self.broker.leave(self.group_id, self)


class MemoryProducer:
    """A transactional producer (``kafka_port.TransactionalProducer``)."""

    def __init__(self, broker: MemoryBroker, transactional_id: str) -> None:
        self.broker, self.id = broker, transactional_id
        self.epoch: int | None = None
        self.transaction: _Transaction | None = None
        self.failed: KafkaError | None = None  # an abortable error: abort before anything else

    @property
    def transactional_id(self) -> str:
        return self.id

    def init_transactions(self) -> None:
        self.epoch = self.broker.init_producer(self.id)

    def begin_transaction(self) -> None:
        """Here only, as in kafka-python: the broker hears of a transaction at its first write."""
        if self.epoch is None:
            raise IllegalStateError("call init_transactions first")
        self._no_failure()
        if self.transaction is not None:
            raise IllegalStateError("a transaction is already open")
        self.transaction = _Transaction()

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        with self.broker.lock:
            self.broker.append(topic, key, value, list(headers or []), self._written())

    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_metadata: object
    ) -> None:
        assert isinstance(group_metadata, _GroupMetadata)
        with self.broker.lock:
            transaction = self._written()
            transaction.offsets.update(offsets)
            transaction.group = group_metadata

    def commit_transaction(self) -> None:
        """A transaction that wrote nothing ends here, unfenced (as in kafka-python)."""
        try:
            self.broker.before_commit(self.id)
            with self.broker.lock:
                if self._open().written:
                    self.broker.check_epoch(self.id, self.epoch)
                    self.broker.commit(self.id)
        except ProducerFencedError:
            raise
        except KafkaError as error:
            self.failed = error
            raise
        self.transaction = None

    def abort_transaction(self) -> None:
        with self.broker.lock:
            if self.transaction is not None and self.transaction.written:
                self.broker.check_epoch(self.id, self.epoch)
                self.broker.abort(self.id)
            self.transaction, self.failed = None, None

    def close(self, timeout: float) -> None:
        """As in Kafka, an open transaction stays open (until the id's next init_transactions)."""

    def _no_failure(self) -> None:
        if self.failed is not None:
            raise KafkaError(f"the transaction failed ({self.failed!r}): abort it first")

    def _open(self) -> _Transaction:
        self._no_failure()
        if self.transaction is None:
            raise IllegalStateError("no transaction is open: begin_transaction first")
        return self.transaction

    def _written(self) -> _Transaction:
        """The open transaction, registered with the broker at its first write (fenced there)."""
        transaction = self._open()
        self.broker.check_epoch(self.id, self.epoch)
        if not transaction.written:
            transaction.written = True
            self.broker.open[self.id] = transaction
        return transaction


class MemoryStateReader:
    """A group-less read_committed reader of every partition of a topic (``StateReader``)."""

    def __init__(self, broker: MemoryBroker, topic: str) -> None:
        self.broker = broker
        self.positions = dict.fromkeys(broker.topic_partitions(topic), 0)

    def poll(self, timeout_ms: int) -> Batch:
        batch: dict[TopicPartition, list[InputRecord]] = {}
        with self.broker.lock:
            for partition, position in self.positions.items():
                records, self.positions[partition] = self.broker.fetch(partition, position, 5000)
                if records:
                    batch[partition] = list(records)
        return batch

    def end_offsets(self) -> Mapping[TopicPartition, int]:
        with self.broker.lock:
            return {p: self.broker.last_stable_offset(p) for p in self.positions}

    def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    def close(self) -> None:
        """Nothing to release."""
