"""The active role: which replica judges, and how it takes the role over from another.

The group's assignor (``worker.assignment``) gives every input partition to one replica. The
rebalance callbacks (on kafka-python's IO thread: kept short) only note what happened; the loop
then calls ``take_over``: a producer on the role's one transactional id is initialised, which
fences the previous active (a zombie's later commits fail) and aborts or completes its open
transaction; the state topic is read to its end (everything the previous active committed), the
indexes derived (a standby keeps the CIs' deadlines armed as it applies their records, so this
does not grow with the graph), and the consumer put at the committed offsets. Only then is input
judged.

Losing the role while running (the group gave the partitions to another replica: this one was
thought dead, and another may have written since) ends the process with ``ActiveRoleLost``, as a
fenced producer does: the engine may hold effects of a batch that never committed, so it is not
safe to go on from it. The orchestrator restarts the process, which rebuilds and stands by.
"""

import threading
import time
from collections.abc import Callable

from kafka.errors import KafkaError

from cmdb_worker.worker.clock import Clock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.kafka_port import (
    InputConsumer,
    KafkaPort,
    TopicPartition,
    TransactionalProducer,
)
from cmdb_worker.worker.logs import get_logger
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.settings import Settings
from cmdb_worker.worker.state_tail import StateTail

log = get_logger("cmdb_worker.takeover")


class ActiveRoleLost(KafkaError):  # type: ignore[misc]
    """Another replica holds the active role now; this process must not judge any more."""


class ActiveRole:
    """This replica's part in the active role: none, granted (take over next), or held."""

    def __init__(
        self, settings: Settings, kafka: KafkaPort, tail: StateTail, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.tail = tail
        self.metrics = metrics
        self.producer: TransactionalProducer | None = None
        self.granted = threading.Event()
        self.lost = threading.Event()

    @property
    def active(self) -> bool:
        return self.producer is not None

    def assigned(self, partitions: set[TopicPartition]) -> None:
        """A rebalance ended (IO thread): the partitions granted, kept, or gone elsewhere."""
        if self.active and not partitions:
            self.lost.set()
        elif not self.active:
            (self.granted.set if partitions else self.granted.clear)()

    def take_over_if_granted(
        self, consumer: InputConsumer, engine: Engine, clock: Clock, alive: Callable[[], None]
    ) -> bool:
        """Raise ``ActiveRoleLost`` if the role went elsewhere; take it over if it was granted
        (then True: input fetched before is to be dropped)."""
        if self.lost.is_set():
            raise ActiveRoleLost("the input partitions were given to another replica")
        if not self.granted.is_set():
            return False
        self.granted.clear()
        self._take_over(consumer, engine, clock, alive)
        return True

    def _take_over(
        self, consumer: InputConsumer, engine: Engine, clock: Clock, alive: Callable[[], None]
    ) -> None:
        phases = _Phases()
        producer = self.kafka.transactional_producer(self.settings)
        producer.init_transactions()  # fences the previous active, ends its open transaction
        phases.done("fence")
        applied = self.tail.catch_up(alive)
        phases.done("state")
        self.tail.rearm()
        phases.done("rearm")
        clock.now(engine.applied.last_applied_at)  # an event clock resumes there
        consumer.seek_to_committed()
        phases.done("seek")
        self.producer = producer
        self.metrics.set_active(True)
        self.metrics.set_state_lag(0)  # read to its end; the active applies its own writes
        log.info("took_over", state_records=applied, **phases.seconds())

    def close(self, timeout: float) -> None:
        if self.producer is not None:
            self.producer.close(timeout=timeout)


class _Phases:
    """How long each step of a takeover took, for its log line (and the failover bench)."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.took: dict[str, float] = {}

    def done(self, phase: str) -> None:
        now = time.monotonic()
        self.took[f"{phase}_seconds"] = round(now - self.last, 3)
        self.last = now

    def seconds(self) -> dict[str, float]:
        return {"seconds": round(self.last - self.started, 3), **self.took}
