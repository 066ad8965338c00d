"""Which owner partition an entity belongs to, and the lesson ids each owner may give.

The input topics are co-partitioned by the contract key (``home_key``: a CI's id, a deploy's
service, a change's id; ``cmdb-worker produce`` sends with it), as Kafka's default partitioner
places a key: a 32-bit hash of its bytes, made positive, modulo the partition count. ``Ownership``
applies that formula to an entity's id, with the hash given from outside (the engine imports no
Kafka code; ``worker.kafka_clients.ownership`` passes kafka-python's murmur2), so an entity's owner
partition is the partition its events arrive on.

Lesson ids are numbered per owner partition: the lessons whose subject belongs to partition
``p`` of ``N`` get the numbers ``p + 1``, ``p + 1 + N``, ``p + 1 + 2N``, ... in the order they
are filed. Kafka keeps each partition's order, so the ids do not depend on how the partitions
were interleaved (by one replica, a failover or a ``replay`` told the same ``N``), and owners of
different partitions never give the same id. With one partition (the default) the ids are
``LL-0001``, ``LL-0002``, ... in filing order.

An engine owns every partition unless told which (``owning``): partitioned, it writes only its
own partitions' entities, fires only their deadlines and sends what an event does to another
owner's entity as an operation (``engine.operations``).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from cmdb_worker.schemas.events import (
    ChangeMerged,
    ChangeRequested,
    ChangeUpdated,
    CIObserved,
    CIRetired,
    Deploy,
    Incident,
    InputEvent,
    LessonUpdated,
    ScanCompleted,
    SuppressionSet,
)
from cmdb_worker.schemas.lessons import lesson_id, lesson_number

Hash = Callable[[bytes], int]
"""A key's 32-bit hash, as the producers' partitioner computes it."""


def _one_partition(_key: bytes) -> int:
    return 0


@dataclass(frozen=True)
class Ownership:
    partitions: int = 1
    hash: Hash = _one_partition
    owned: frozenset[int] | None = None
    """The partitions this engine owns; None: every one."""

    def partition_of(self, entity: str) -> int:
        """The partition Kafka's default partitioner gives a record keyed by ``entity``."""
        return (self.hash(entity.encode()) & 0x7FFFFFFF) % self.partitions

    def owns(self, entity: str) -> bool:
        """Whether this engine is the writer of ``entity`` (its partition is owned)."""
        return self.owned is None or self.partition_of(entity) in self.owned

    def owning(self, partitions: Iterable[int]) -> "Ownership":
        """The same partitioning, this engine owning only ``partitions``."""
        return replace(self, owned=frozenset(partitions))


ONE_OWNER = Ownership()


def home_key(event: InputEvent) -> str | None:
    """The entity an event is keyed by on its topic (section 1 of the contract): the CI observed
    or retired, a deploy's or incident's service, a change (a merged one too: it names no
    service), a lesson, a suppression's subject; a scan's source (it names no CI). None: the
    event has no owning entity (Kafka spreads such records)."""
    payload = event.payload
    if isinstance(payload, CIObserved | CIRetired):
        return payload.ci.ci_id
    if isinstance(payload, Deploy | Incident):
        return payload.service.ci_id if payload.service else None
    if isinstance(payload, ChangeRequested | ChangeUpdated | ChangeMerged):
        return payload.change_id
    if isinstance(payload, LessonUpdated):
        return payload.lesson_id
    if isinstance(payload, SuppressionSet):
        return payload.subject
    if isinstance(payload, ScanCompleted):
        return event.source
    return None


@dataclass
class LessonNumbers:
    """The highest lesson number given in each owner partition's class; the next follows it."""

    ownership: Ownership
    highest: dict[int, int] = field(default_factory=dict)

    def next_id(self, subject: str) -> str:
        """The id for a new lesson about ``subject``: above every id of its partition's class."""
        step = self.ownership.partitions
        partition = self.ownership.partition_of(subject)
        number = self.highest.get(partition, partition + 1 - step) + step  # first: partition + 1
        self.highest[partition] = number
        return lesson_id(number)

    def note(self, ids: Iterable[str]) -> None:
        """Count ``ids`` as given (restored lessons, whoever numbered them)."""
        for numbered in filter(None, map(lesson_number, ids)):
            partition = (numbered - 1) % self.ownership.partitions
            self.highest[partition] = max(self.highest.get(partition, 0), numbered)
