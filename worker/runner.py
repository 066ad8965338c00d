"""``cmdb-worker run``: the Kafka main loop with exactly-once effects.

Each poll batch is one Kafka transaction holding everything the batch caused (findings,
lessons, dead letters, changelog records) and the input offsets it consumed, so a crash at
any point leaves either all of a batch's effects or none. On start the state is rebuilt from
the changelog before any input is read. The clients come from a ``KafkaPort``: kafka-python's
(``KafkaBackend``) unless another is given, such as ``memory_kafka``'s broker in unit tests.

Replicas share one consumer group: the active one holds every input partition and judges, the
others stand by, applying the changelog as it is written (``state_tail``), and one of them
takes over when the active goes (``takeover``, ``assignment``).

What goes wrong, and what the loop does:

- Invalid input (a poison message): it goes untouched to the dead-letter topic, with headers
  naming the reason, topic, partition and offset, in the batch's transaction; its offset
  commits with the batch and the partition moves on.
- A commit fails: the engine applied the batch in memory before the commit, so rewinding the
  consumer and processing the batch again would find every event already applied and drop
  its effects, and undoing a batch's changes to the whole state is not feasible. Instead the
  transaction is aborted (read_committed readers never see its records) and the very records
  the batch made, with its offsets, go again in a new transaction. If that commit fails too,
  ``run()`` raises: the restarted worker rebuilds from the changelog, where the batch is not,
  and consumes from the committed offsets, so nothing is dropped and nothing doubled.
- Fenced: another replica took the active role over (it called ``init_transactions`` with the
  role's one transactional id), and the broker aborted this one's open transaction. This one is
  a zombie and learns it at its next write (a tick that changed nothing writes nothing): it logs
  ``producer_fenced`` naming the id and ``run()`` raises ``ProducerFencedError``
  (``cmdb-worker run`` exits 1, the orchestrator restarts it as a standby). Losing the
  partitions in a rebalance raises ``ActiveRoleLost`` alike.
"""

import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType

from kafka.errors import KafkaError, ProducerFencedError

from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker import changelog, tickets
from cmdb_worker.worker.clock import Clock, EventClock, WallClock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.kafka_backend import KafkaBackend
from cmdb_worker.worker.kafka_clients import ownership, transactional_id
from cmdb_worker.worker.kafka_port import (
    Batch,
    Headers,
    InputConsumer,
    InputRecord,
    KafkaPort,
    Sender,
    TopicPartition,
    TransactionalProducer,
)
from cmdb_worker.worker.logs import get_logger
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.processing import Outcome, process
from cmdb_worker.worker.settings import Settings
from cmdb_worker.worker.state_tail import StateTail
from cmdb_worker.worker.status import count_finding, refresh_state_gauges
from cmdb_worker.worker.takeover import ActiveRole

log = get_logger("cmdb_worker.run")
DLQ_HEADERS = ("cmdb_dlq_reason", "cmdb_dlq_topic", "cmdb_dlq_partition", "cmdb_dlq_offset")
STANDBY_INPUT_POLL_MS = 50
"""A standby polls the group only to heartbeat and hear of a rebalance; it waits on the state."""
CAUGHT_UP_RECORDS = 1000
"""A standby this close to the state topic's end tells the group it is caught up."""


class Runner:
    """Owns the engine, the clients and the loop; HTTP handlers read the state under ``lock``."""

    def __init__(
        self, settings: Settings, policy: Policy, metrics: Metrics, kafka: KafkaPort | None = None
    ) -> None:
        self.settings = settings
        self.kafka: KafkaPort = kafka or KafkaBackend()
        self.engine = Engine(policy, ownership(settings.owner_partitions))
        self.metrics = metrics
        self.clock: Clock = EventClock() if settings.clock == "event" else WallClock()
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.rebuilt = False
        self.assigned: set[TopicPartition] = set()
        self.joined = False
        self.caught_up = False
        self.last_progress = time.monotonic()

    @property
    def ready(self) -> bool:
        """Rebuilt and in the group: active, or a standby serving reads from the whole graph."""
        return self.rebuilt and self.joined

    def run(self) -> None:
        """Rebuild, then judge or stand by until ``stop()``; SIGTERM and SIGINT call ``stop()``."""
        log.info("topics_created", topics=self.kafka.prepare_topics(self.settings))
        self._alive()
        tail = self.rebuild()
        role = ActiveRole(self.settings, self.kafka, tail, self.metrics)
        consumer = self.kafka.input_consumer(self.settings, lambda: self.caught_up)
        consumer.subscribe(self.settings.input_topics, _Rebalance(self, role))
        try:
            self._loop(consumer, role, tail)
        except ProducerFencedError:
            log.error("producer_fenced", transactional_id=transactional_id(self.settings))
            raise
        finally:
            self._close(consumer, role, tail)

    def stop(self, signum: int | None = None, _: FrameType | None = None) -> None:
        log.info("stopping", signal=signum)
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def rebuild(self) -> StateTail:
        """Read the whole changelog into the engine; the tail that goes on reading it."""
        started = time.monotonic()
        tail = StateTail(self.kafka.state_reader(self.settings), self.engine, self.lock)
        tail.catch_up(self._alive)
        tail.rearm()
        live = tail.live_keys()
        seconds = time.monotonic() - started
        self.metrics.set_state_rebuild_seconds(seconds)
        self.clock.now(self.engine.applied.last_applied_at)  # an event clock resumes there
        self.rebuilt = True
        log.info(
            "state_rebuilt",
            keys=live,
            cis=self.engine.state.cmdb.graph.number_of_nodes(),
            seconds=round(seconds, 3),
        )
        self.caught_up = True
        return tail

    def _loop(self, consumer: InputConsumer, role: ActiveRole, tail: StateTail) -> None:
        next_tick = next_refresh = 0.0
        while not self.stopping.is_set():
            timeout = self.settings.poll_timeout_ms if role.active else STANDBY_INPUT_POLL_MS
            batch = consumer.poll(timeout_ms=timeout)
            if role.take_over_if_granted(consumer, self.engine, self.clock, self._alive):
                continue  # that batch was fetched before the fencing: read again from the seek
            if role.producer is None:
                self._stand_by(tail)
            else:
                next_tick = self._judge(consumer, role.producer, batch, next_tick)
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + self.settings.gauge_refresh_seconds
                self._refresh_gauges(consumer, role.active)
            self._progressed()

    def _judge(
        self,
        consumer: InputConsumer,
        producer: TransactionalProducer,
        batch: Batch,
        next_tick: float,
    ) -> float:
        """One transaction for the batch and, when due, a tick; returns when the next is due."""
        tick_due = time.monotonic() >= next_tick
        if batch or tick_due:
            with self.lock:
                self._transact(consumer, producer, batch, tick_due)
        return time.monotonic() + self.settings.tick_seconds if tick_due else next_tick

    def _stand_by(self, tail: StateTail) -> None:
        """Apply what the active wrote to the changelog; say how far behind that leaves us."""
        tail.poll(self.settings.poll_timeout_ms)
        lag = tail.lag()
        self.caught_up = lag <= CAUGHT_UP_RECORDS
        self.metrics.set_state_lag(lag)

    def _transact(
        self, consumer: InputConsumer, producer: TransactionalProducer, batch: Batch, tick: bool
    ) -> None:
        producer.begin_transaction()
        transaction = _Transaction(producer)
        for partition, records in batch.items():
            for record in records:
                self._handle(transaction, record)
            transaction.offsets[partition] = records[-1].offset + 1
        if tick:
            self._emit(transaction, self.engine.tick(self.clock.now()))
        self._record_changes(transaction)
        tickets.send(transaction, self.settings, self.engine.state.take_lesson_changes())
        self.metrics.findings_held_back(self.engine.take_suppressed())
        _commit(transaction, consumer.group_metadata())

    def _record_changes(self, producer: Sender) -> None:
        """Changelog records for what changed; lessons also go, whole, to the lessons topic."""
        for key, value in changelog.changed_entries(self.engine):
            producer.send(self.settings.topic_state, key=key.encode(), value=value)
            if key.startswith(changelog.LESSON_PREFIX):
                lesson_id = key.removeprefix(changelog.LESSON_PREFIX).encode()
                producer.send(self.settings.topic_lessons, key=lesson_id, value=value)

    def _handle(self, producer: Sender, record: InputRecord) -> None:
        started = time.perf_counter()
        record_time = _record_time(record)
        outcome = process(self.engine, record.value, record.headers or [], self.clock, record_time)
        self._count(record.topic, outcome)
        if outcome.invalid is not None:
            self._dead_letter(producer, record, outcome)
            return
        self._emit(producer, outcome.findings)
        if outcome.event is not None:
            self.metrics.event_processed(
                outcome.event.time.timestamp(), time.perf_counter() - started
            )

    def _count(self, topic: str, outcome: Outcome) -> None:
        event_type = outcome.event.type if outcome.event else "invalid"
        self.metrics.event_consumed(topic, event_type)
        if outcome.event is not None and outcome.event.time_inferred:
            self.metrics.event_time_inferred(topic)
        if outcome.invalid is not None:
            self.metrics.dead_letter(outcome.invalid.code)

    def _emit(self, producer: Sender, findings: list[Finding]) -> None:
        for finding in findings:
            producer.send(
                self.settings.topic_findings,
                key=finding.subject.encode(),
                value=finding.model_dump_json().encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
            count_finding(self.metrics, finding)

    def _dead_letter(self, producer: Sender, record: InputRecord, outcome: Outcome) -> None:
        assert outcome.invalid is not None
        why = (outcome.invalid.reason, record.topic, str(record.partition), str(record.offset))
        headers = list(record.headers or []) + [
            (k, v.encode()) for k, v in zip(DLQ_HEADERS, why, strict=True)
        ]
        producer.send(self.settings.topic_dlq, key=record.key, value=record.value, headers=headers)
        log.warning(
            "dead_letter",
            reason=outcome.invalid.reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    def _refresh_gauges(self, consumer: InputConsumer, active: bool) -> None:
        if active:  # a standby holds the same state: exported once, or sums would count it twice
            with self.lock:
                refresh_state_gauges(self.engine, self.metrics, self.clock.now())
        for partition in list(self.assigned):
            highwater = consumer.highwater(partition)
            if highwater is not None:
                lag = highwater - consumer.position(partition)
                self.metrics.set_consumer_lag(partition.topic, partition.partition, lag)

    def _progressed(self) -> None:
        self._alive()
        self.metrics.set_ready(self.ready)

    def _alive(self) -> None:
        """The loop (or the rebuild before it) is making progress: what /healthz asks."""
        self.last_progress = time.monotonic()
        self.metrics.progressed(datetime.now(UTC).timestamp())

    def _close(self, consumer: InputConsumer, role: ActiveRole, tail: StateTail) -> None:
        grace = self.settings.shutdown_grace_seconds
        consumer.close()
        role.close(timeout=grace / 2)
        tail.close()
        if self.stopping.is_set():  # a graceful stop: let another replica take over at once
            self.kafka.leave_group(self.settings)
        log.info("stopped")


class _Rebalance:
    """Rebalance callbacks: wait for the batch in hand to commit before partitions go, and
    tell the active role what the group decided (it acts on it in the loop)."""

    def __init__(self, runner: Runner, role: ActiveRole) -> None:
        self.runner = runner
        self.role = role

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        with self.runner.lock:
            self.runner.assigned -= set(revoked)
            for partition in revoked:
                self.runner.metrics.forget_partition(partition.topic, partition.partition)
        log.info("partitions_revoked", partitions=[str(p) for p in revoked])

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.runner.assigned = set(assigned)  # eager rebalancing: the whole assignment
        self.runner.joined = True
        self.role.assigned(set(assigned))
        log.info("partitions_assigned", partitions=[str(p) for p in assigned])

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        """The group went on without this replica (its session expired): another may be active."""
        self.on_partitions_revoked(lost)
        self.role.assigned(set())
        log.warning("partitions_lost", partitions=[str(p) for p in lost])


def _record_time(record: InputRecord) -> datetime | None:
    """The Kafka record's timestamp: the event time of a CloudEvent that has no ``time``."""
    if record.timestamp is None or record.timestamp < 0:
        return None
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


class _Transaction:
    """One batch's transaction; keeps what it sent, to send it all again if the commit fails."""

    def __init__(self, producer: TransactionalProducer) -> None:
        self.producer = producer
        self.sent: list[tuple[str, bytes | None, bytes | None, Headers | None]] = []
        self.offsets: dict[TopicPartition, int] = {}

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        self.sent.append((topic, key, value, headers))
        self.producer.send(topic, key=key, value=value, headers=headers)

    def commit(self, group_metadata: object) -> None:
        if self.offsets:
            self.producer.send_offsets_to_transaction(self.offsets, group_metadata)
        self.producer.commit_transaction()

    def again(self, group_metadata: object) -> None:
        """Abort, and commit the same records and offsets in a new transaction."""
        self.producer.abort_transaction()
        self.producer.begin_transaction()
        for topic, key, value, headers in self.sent:
            self.producer.send(topic, key=key, value=value, headers=headers)
        self.commit(group_metadata)


def _commit(transaction: _Transaction, group_metadata: object) -> None:
    """Commit; if that fails, abort and commit the same once more (see the module docstring)."""
    try:
        transaction.commit(group_metadata)
    except ProducerFencedError:
        raise
    except KafkaError as error:
        log.warning("transaction_aborted", error=repr(error), records=len(transaction.sent))
        transaction.again(group_metadata)
        log.info("transaction_committed_again", records=len(transaction.sent))
