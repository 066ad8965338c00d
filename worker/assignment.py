"""The input group's assignors: active/standby (the default) and partitioned.

``ActiveStandbyAssignor``: one active replica owns every input partition, the rest stand by.

Every judgement reads entities keyed to other partitions (blast radius, correlation, deploy
authorisation, identity merges), so one replica judges everything and the others keep a caught-up
copy of the state (``state_tail``) to take over from. Each member tells the group leader, in its
subscription's ``user_data``, a ``Claim``: the generation in which it was last given the
partitions (if it still holds them) and whether its copy of the state is caught up. The leader
keeps the current active (the highest claimed generation: a zombie that was replaced claims an
older one); without one it picks a caught-up member, ties broken by the smallest
``group.instance.id`` (or member id), so every leader decides alike.

``PartitionedAssignor`` (``CMDB_WORKER_ASSIGNMENT=partitioned``): the owner partitions (the
partition numbers shared by the co-partitioned input topics and the operations topic) are spread
over the members, each getting partition ``p`` of every topic for each ``p`` it owns, so one
replica writes an entity whichever topic its events arrive on. Each member tells the leader what
it ``Held`` and since which generation; the leader lets it keep as much of that as its share
allows (sticky: a rebalance moves only the partitions it must), gives a partition two members
claim to the later generation (a zombie claims an older one), and hands out the rest to the
members with the fewest, ties broken by name, so every leader decides alike (``spread``).
"""

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

PROTOCOL = "cmdb-active-standby"
PARTITIONED_PROTOCOL = "cmdb-partitioned"
VERSION = 0
NOT_ACTIVE = -1


@dataclass(frozen=True)
class Claim:
    """What a member says of itself when it joins: the generation it is active since, if it
    holds the partitions (``NOT_ACTIVE`` otherwise), and whether its state is caught up."""

    active_generation: int = NOT_ACTIVE
    caught_up: bool = False

    def encode(self) -> bytes:
        return json.dumps({"active": self.active_generation, "caught_up": self.caught_up}).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> "Claim":
        """The claim in ``raw``; a member that sent none (or garbage) claims nothing."""
        try:
            fields = json.loads(raw or b"")
            return cls(int(fields["active"]), bool(fields["caught_up"]))
        except (ValueError, TypeError, KeyError):
            return cls()


class Member(Protocol):
    """A group member as kafka-python hands it to ``assign`` (its metadata already decoded)."""

    member_id: str
    group_instance_id: str | None
    metadata: Any


class Cluster(Protocol):
    def partitions_for_topic(self, topic: str) -> set[int] | None: ...


def choose_active(members: Sequence[Member]) -> str:
    """The member id of the replica that gets every partition."""
    return min(members, key=_preference).member_id


def _preference(member: Member) -> tuple[int, bool, str]:
    claim = Claim.decode(member.metadata.user_data)
    return (
        -claim.active_generation,
        not claim.caught_up,
        member.group_instance_id or member.member_id,
    )


def _all_partitions(cluster: Cluster, topics: Iterable[str]) -> list[tuple[str, list[int]]]:
    known = ((topic, cluster.partitions_for_topic(topic)) for topic in sorted(set(topics)))
    return [(topic, sorted(partitions)) for topic, partitions in known if partitions]


class ActiveStandbyAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """Gives every input partition to one member; see the module docstring for which."""

    name = PROTOCOL
    version = VERSION

    def __init__(self, caught_up: Callable[[], bool]) -> None:
        self.caught_up = caught_up
        self.active_generation = NOT_ACTIVE

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolSubscription:
        claim = Claim(self.active_generation, self.caught_up())
        return ConsumerProtocolSubscription(VERSION, sorted(topics), claim.encode())

    def assign(
        self, cluster: Cluster, members: Sequence[Member]
    ) -> dict[str, ConsumerProtocolAssignment]:
        topics = [topic for member in members for topic in member.metadata.topics]
        everything = _all_partitions(cluster, topics)
        active = choose_active(members)
        return {
            member.member_id: ConsumerProtocolAssignment(
                VERSION, everything if member.member_id == active else [], b""
            )
            for member in members
        }

    def on_assignment(self, assignment: ConsumerProtocolAssignment, generation: int) -> None:
        self.active_generation = generation if assignment.partitions() else NOT_ACTIVE


@dataclass(frozen=True)
class Held:
    """What a member of the partitioned group says when it joins: the owner partitions it holds
    and the generation it was given them in (``NOT_ACTIVE``: none)."""

    generation: int = NOT_ACTIVE
    partitions: tuple[int, ...] = ()

    def encode(self) -> bytes:
        return json.dumps({"generation": self.generation, "partitions": self.partitions}).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> "Held":
        """What ``raw`` says was held; a member that sent none (or garbage) held nothing."""
        try:
            fields = json.loads(raw or b"")
            return cls(int(fields["generation"]), tuple(int(p) for p in fields["partitions"]))
        except (ValueError, TypeError, KeyError):
            return cls()


def spread(partitions: int, held: dict[str, Held]) -> dict[str, list[int]]:
    """Owner partitions ``0 .. partitions-1`` among the members named in ``held``: each gets
    ``partitions // members`` or one more; a member keeps what it held up to its share (the
    shares one above go to those keeping most); a partition held by two is kept by the later
    generation's holder; the rest go, smallest first, to the member with fewest, then by name."""
    names = sorted(held)
    claims = _claims(partitions, held)
    kept = {name: sorted(p for p, holder in claims.items() if holder == name) for name in names}
    base, above = divmod(partitions, len(names))
    by_keeping = sorted(names, key=lambda name: (-len(kept[name]), name))
    share = {name: base + (n < above) for n, name in enumerate(by_keeping)}
    owned = {name: kept[name][: share[name]] for name in names}
    taken = {p for mine in owned.values() for p in mine}
    for partition in (p for p in range(partitions) if p not in taken):
        name = min((n for n in names if len(owned[n]) < share[n]), key=lambda n: (len(owned[n]), n))
        owned[name].append(partition)
    return {name: sorted(mine) for name, mine in owned.items()}


def _claims(partitions: int, held: dict[str, Held]) -> dict[int, str]:
    """Each partition held by someone: its holder of the latest generation (ties: by name)."""
    claims: dict[int, tuple[int, str]] = {}
    for name, says in held.items():
        for partition in (p for p in says.partitions if 0 <= p < partitions):
            claim = (says.generation, name)
            if partition not in claims or _later(claim, claims[partition]):
                claims[partition] = claim
    return {partition: name for partition, (_, name) in claims.items()}


def _later(claim: tuple[int, str], other: tuple[int, str]) -> bool:
    return claim[0] > other[0] or (claim[0] == other[0] and claim[1] < other[1])


class PartitionedAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """Spreads the owner partitions over the members, co-partitioned and sticky (``spread``)."""

    name = PARTITIONED_PROTOCOL
    version = VERSION

    def __init__(self) -> None:
        self.held = Held()

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolSubscription:
        return ConsumerProtocolSubscription(VERSION, sorted(topics), self.held.encode())

    def assign(
        self, cluster: Cluster, members: Sequence[Member]
    ) -> dict[str, ConsumerProtocolAssignment]:
        topics = _all_partitions(cluster, [t for member in members for t in member.metadata.topics])
        count = max((len(numbers) for _, numbers in topics), default=0)
        by_name = {_name(member): member for member in members}
        held = {name: Held.decode(member.metadata.user_data) for name, member in by_name.items()}
        owned = spread(count, held)
        return {
            member.member_id: ConsumerProtocolAssignment(
                VERSION, _these(topics, set(owned[name]), member.metadata.topics), b""
            )
            for name, member in by_name.items()
        }

    def on_assignment(self, assignment: ConsumerProtocolAssignment, generation: int) -> None:
        partitions = tuple(sorted({p.partition for p in assignment.partitions()}))
        self.held = Held(generation if partitions else NOT_ACTIVE, partitions)


def _name(member: Member) -> str:
    return member.group_instance_id or member.member_id


def _these(
    topics: list[tuple[str, list[int]]], owned: set[int], subscribed: Iterable[str]
) -> list[tuple[str, list[int]]]:
    """The partitions numbered in ``owned`` of each topic the member subscribed to."""
    wanted = set(subscribed)
    return [
        (topic, [p for p in numbers if p in owned])
        for topic, numbers in topics
        if topic in wanted and owned.intersection(numbers)
    ]
