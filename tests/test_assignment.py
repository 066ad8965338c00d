"""The group's assignor: every input partition to one member, the current active if it is still
there, else a caught-up member, decided alike by whichever member leads the group."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

from cmdb_worker.worker.assignment import (
    NOT_ACTIVE,
    PROTOCOL,
    ActiveStandbyAssignor,
    Claim,
)

TOPICS = ["t.discovery", "t.cicd"]
PARTITIONS = {"t.discovery": {0, 1, 2}, "t.cicd": {0, 1, 2}}


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    metadata: ConsumerProtocolSubscription


class Cluster:
    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return PARTITIONS.get(topic)


def member(name: str, claim: Claim, static: bool = True) -> Member:
    subscription = ConsumerProtocolSubscription(0, TOPICS, claim.encode())
    return Member(f"{name}-member", name if static else None, subscription)


def owners(members: list[Member]) -> dict[str, int]:
    """Partitions each member got, by member id."""
    assignments = ActiveStandbyAssignor(lambda: True).assign(Cluster(), members)
    return {mid: len(a.partitions()) for mid, a in assignments.items()}


def test_one_member_gets_every_partition_the_others_none() -> None:
    """All six partitions of both topics go to one member; the two others get an empty list."""
    members = [member(n, Claim(caught_up=True)) for n in ("c", "a", "b")]
    assert owners(members) == {"a-member": 6, "b-member": 0, "c-member": 0}


def test_the_current_active_keeps_the_partitions() -> None:
    """A member that holds the partitions keeps them when another (smaller-named) one joins."""
    members = [member("b", Claim(7, True)), member("a", Claim(caught_up=True))]
    assert owners(members)["b-member"] == 6


def test_a_replaced_zombie_loses_to_the_newer_active() -> None:
    """Two members claim the role: the one given it in the later generation keeps it."""
    members = [member("a", Claim(3, True)), member("b", Claim(5, True))]
    assert owners(members) == {"a-member": 0, "b-member": 6}


def test_without_an_active_a_caught_up_member_is_chosen() -> None:
    """With no active, a member still catching up on the state is passed over."""
    members = [member("a", Claim(caught_up=False)), member("b", Claim(caught_up=True))]
    assert owners(members)["b-member"] == 6


def test_the_choice_does_not_depend_on_member_order() -> None:
    """Every leader decides alike: the same members in any order give the same owner."""
    members = [member(n, Claim(caught_up=True)) for n in ("x", "m", "q")]
    assert owners(members) == owners(list(reversed(members)))


def test_a_member_without_a_claim_is_a_caught_up_members_last_choice() -> None:
    """Unreadable user data counts as no claim (not active, not caught up)."""
    garbage = Member("a-member", "a", ConsumerProtocolSubscription(0, TOPICS, b"\xff"))
    assert owners([garbage, member("z", Claim(caught_up=True))])["z-member"] == 6


def test_dynamic_members_tie_break_on_member_id() -> None:
    """Members without a group.instance.id are ordered by member id."""
    members = [member(n, Claim(caught_up=True), static=False) for n in ("b", "a")]
    assert owners(members)["a-member"] == 6


@pytest.mark.parametrize(
    ("partitions", "claimed"), [([("t.discovery", [0, 1])], 9), ([], NOT_ACTIVE)]
)
def test_metadata_claims_the_generation_of_the_last_assignment(
    partitions: list[tuple[str, list[int]]], claimed: int
) -> None:
    """After an assignment with partitions a member claims that generation; after an empty one,
    nothing; and it reports what its caught-up check says."""
    assignor = ActiveStandbyAssignor(lambda: False)
    assignor.on_assignment(ConsumerProtocolAssignment(0, partitions, b""), 9)
    claim = Claim.decode(assignor.metadata(TOPICS).user_data)
    assert claim == Claim(claimed, caught_up=False)


def test_the_protocol_has_its_own_name() -> None:
    """Replicas agree on the assignor by name, distinct from kafka-python's built-in ones."""
    assert ActiveStandbyAssignor.name == PROTOCOL == "cmdb-active-standby"


def test_unknown_topics_are_left_out() -> None:
    """A subscribed topic the cluster does not know yet is skipped, not an error."""
    subscription = ConsumerProtocolSubscription(0, ["t.discovery", "t.unknown"], b"")
    only = Member("a-member", "a", subscription)
    assignment = ActiveStandbyAssignor(lambda: True).assign(Cluster(), [only])["a-member"]
    assert {p.topic for p in assignment.partitions()} == {"t.discovery"}
