"""The input group's assignor: one active replica owns every input partition, the rest stand by.

Every judgement reads entities keyed to other partitions (blast radius, correlation, deploy
authorisation, identity merges), so one replica judges everything and the others keep a caught-up
copy of the state (``state_tail``) to take over from. Each member tells the group leader, in its
subscription's ``user_data``, a ``Claim``: the generation in which it was last given the
partitions (if it still holds them) and whether its copy of the state is caught up. The leader
keeps the current active (the highest claimed generation: a zombie that was replaced claims an
older one); without one it picks a caught-up member, ties broken by the smallest
``group.instance.id`` (or member id), so every leader decides alike.
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
