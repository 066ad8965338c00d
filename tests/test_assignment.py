"""The group's assignor: every input partition to one member, the current active if it is still
there, else a caught-up member, decided alike by whichever member leads the group."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

from cmdb_worker.worker.assignment import (
    NOT_ACTIVE,
    PARTITIONED_PROTOCOL,
    PROTOCOL,
    ActiveStandbyAssignor,
    Claim,
    Held,
    PartitionedAssignor,
    spread,
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


# ------------------------------------------------------------------------------ partitioned
PARTITIONED_TOPICS = {"t.discovery": set(range(6)), "t.cicd": set(range(6)), "t.ops": set(range(6))}


class SixPartitions:
    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return PARTITIONED_TOPICS.get(topic)


def joining(name: str, held: Held) -> Member:
    subscription = ConsumerProtocolSubscription(0, sorted(PARTITIONED_TOPICS), held.encode())
    return Member(f"{name}-member", name, subscription)


def test_each_member_gets_the_same_partition_numbers_of_every_topic() -> None:
    """Co-partitioned: whatever topic an entity's events arrive on, one member owns its
    partition; three members share six partitions two each, none twice."""
    members = [joining(name, Held()) for name in ("a", "b", "c")]
    assignments = PartitionedAssignor().assign(SixPartitions(), members)
    numbers = {}
    for member_id, assignment in assignments.items():
        by_topic = {topic: set(parts) for topic, parts in assignment.assigned_partitions}
        assert set(by_topic) == set(PARTITIONED_TOPICS)
        assert len({frozenset(parts) for parts in by_topic.values()}) == 1
        numbers[member_id] = by_topic["t.ops"]
    assert sorted(len(mine) for mine in numbers.values()) == [2, 2, 2]
    assert set().union(*numbers.values()) == set(range(6))


def test_a_member_joining_takes_partitions_only_from_those_above_their_share() -> None:
    """Sticky: when a third member joins two that hold 3 each, each gives up one, and keeps
    the rest it held."""
    owned = spread(6, {"a": Held(4, (0, 1, 2)), "b": Held(4, (3, 4, 5)), "c": Held()})
    assert len(owned["c"]) == 2
    assert set(owned["a"]) <= {0, 1, 2} and set(owned["b"]) <= {3, 4, 5}


def test_a_partition_two_members_claim_goes_to_the_later_generation() -> None:
    """A zombie that was replaced still claims what it held, in an older generation."""
    owned = spread(2, {"zombie": Held(3, (0, 1)), "new": Held(5, (0,))})
    assert owned == {"new": [0], "zombie": [1]}


def test_the_spread_does_not_depend_on_member_order_and_unreadable_claims_hold_nothing() -> None:
    garbage = Member("g-member", "g", ConsumerProtocolSubscription(0, ["t.ops"], b"\xff"))
    members = [joining("b", Held(2, (0, 1, 2, 3, 4, 5))), garbage]
    forward = PartitionedAssignor().assign(SixPartitions(), members)
    backward = PartitionedAssignor().assign(SixPartitions(), list(reversed(members)))
    assert {m: a.assigned_partitions for m, a in forward.items()} == {
        m: a.assigned_partitions for m, a in backward.items()
    }
    assert forward["g-member"].assigned_partitions == [("t.ops", [3, 4, 5])]  # b keeps 0-2


@given(
    partitions=st.integers(1, 12),
    held=st.dictionaries(
        st.sampled_from("abcdefg"),
        st.builds(Held, st.integers(-1, 9), st.lists(st.integers(0, 14), max_size=6).map(tuple)),
        min_size=1,
    ),
)
def test_spread_is_complete_disjoint_balanced_and_keeps_what_it_can(
    partitions: int, held: dict[str, Held]
) -> None:
    """Every partition once; shares differ by at most one; a member keeps as many of the
    partitions it won (later generation) as its share allows."""
    owned = spread(partitions, held)
    every = [p for mine in owned.values() for p in mine]
    assert sorted(every) == list(range(partitions))
    sizes = [len(mine) for mine in owned.values()]
    assert max(sizes) - min(sizes) <= 1
    won = {name: {p for p, holder in _claim_winners(partitions, held).items() if holder == name}
           for name in held}  # fmt: skip
    for name, mine in owned.items():
        assert len(won[name] & set(mine)) == min(len(won[name]), len(mine))


def _claim_winners(partitions: int, held: dict[str, Held]) -> dict[int, str]:
    """The claims' winners, recounted plainly: latest generation, then smallest name."""
    winners: dict[int, str] = {}
    for partition in range(partitions):
        claimants = [(-h.generation, name) for name, h in held.items() if partition in h.partitions]
        if claimants:
            winners[partition] = min(claimants)[1]
    return winners


def test_a_partitioned_member_says_what_it_was_given_and_when() -> None:
    assignor = PartitionedAssignor()
    assignor.on_assignment(
        ConsumerProtocolAssignment(0, [("t.ops", [4, 1]), ("t.cicd", [1, 4])], b""), 8
    )
    assert Held.decode(assignor.metadata(["t.ops"]).user_data) == Held(8, (1, 4))
    assert PartitionedAssignor.name == PARTITIONED_PROTOCOL == "cmdb-partitioned"
