"""Records placed on partitions as Kafka's default partitioner places their keys, and read back
interleaved as a consumer may see them: each partition's order kept, nothing else."""

import random
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from cmdb_worker.worker.kafka_clients import ownership

T = TypeVar("T")


def placed(items: Iterable[T], key_of: Callable[[T], str], partitions: int) -> list[list[T]]:
    """``items`` on ``partitions`` partitions by their key, each partition in the items' order."""
    owners = ownership(partitions)
    found: list[list[T]] = [[] for _ in range(partitions)]
    for item in items:
        found[owners.partition_of(key_of(item))].append(item)
    return found


def interleaved(partitions: list[list[T]], seed: int) -> Iterator[T]:
    """One interleaving of ``partitions`` (drawn from ``seed``), each partition's order kept."""
    rng, heads = random.Random(seed), [0] * len(partitions)
    while live := [p for p, items in enumerate(partitions) if heads[p] < len(items)]:
        p = rng.choice(live)
        yield partitions[p][heads[p]]
        heads[p] += 1
