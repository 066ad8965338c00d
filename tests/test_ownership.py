"""Owner partitions and lesson ids numbered per owner partition (``worker.engine.ownership``).

An entity's owner partition is the one Kafka's default partitioner puts its events on; the
lessons about entities of partition ``p`` of ``N`` are numbered ``p + 1``, ``p + 1 + N``, ... So
owners never give the same id, and ids do not depend on how the partitions were interleaved.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.schemas.lessons import lesson_id, lesson_number
from cmdb_worker.worker import changelog
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine import teams
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.ownership import ONE_OWNER, LessonNumbers, Ownership, home_key
from cmdb_worker.worker.kafka_clients import ownership
from cmdb_worker.worker.processing import process
from tests.events import T0, observed, scan_completed, to_input
from tests.governance_helpers import change_requested, deploy, incident, lesson_updated
from tests.partitions import interleaved, placed
from tests.replica_stream import ci_key, stream
from tests.test_restart_anywhere import POLICY as STREAM_POLICY
from tests.test_restart_anywhere import streams as restart_streams

POLICY = load_policy()
keys = st.text(min_size=1, max_size=40)


class _Cluster:
    """The metadata kafka-python's partitioner asks of a producer's cluster: one topic."""

    def __init__(self, partitions: int) -> None:
        self.numbers = set(range(partitions))

    def topics(self) -> set[str]:
        return {"cmdb.discovery"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.numbers

    available_partitions_for_topic = partitions_for_topic


@given(key=keys, partitions=st.integers(min_value=1, max_value=64))
def test_an_entity_belongs_to_the_partition_its_events_arrive_on(key: str, partitions: int) -> None:
    """``partition_of`` agrees with the partitioner kafka-python's producers use."""
    placed = DefaultPartitioner().partition(
        "cmdb.discovery", key, key.encode(), None, None, _Cluster(partitions)
    )
    assert ownership(partitions).partition_of(key) == placed


@pytest.mark.parametrize(
    ("message", "key"),
    [
        (observed("api", source="/discovery/a"), "service/api@prod"),
        (deploy("api", id="d1"), "service/api@prod"),
        (incident("INC-1", "api", id="i1"), "service/api@prod"),
        (change_requested("CHG-1", "service/api@prod"), "CHG-1"),
        (lesson_updated("LL-0003", id="u1", status="Done"), "LL-0003"),
        (scan_completed(started=T0, time=T0, source="/discovery/a"), "/discovery/a"),
        (incident("INC-2", None, id="i2"), None),
    ],
)
def test_an_event_belongs_to_the_entity_its_topic_is_keyed_by(
    message: dict[str, Any], key: str | None
) -> None:
    """The contract's message key (section 1), and for a scan, which names no CI, its source."""
    assert home_key(to_input(message)) == key


def test_one_owner_numbers_lessons_in_one_sequence() -> None:
    numbers = LessonNumbers(ONE_OWNER)
    assert [numbers.next_id(subject) for subject in "abcab"] == [
        "LL-0001", "LL-0002", "LL-0003", "LL-0004", "LL-0005",
    ]  # fmt: skip


def test_each_partition_numbers_its_own_class_of_ids() -> None:
    owners = ownership(3)
    numbers = LessonNumbers(owners)
    subjects = [f"service/svc{n:03d}@prod" for n in range(30)]
    for subject in subjects:
        number = lesson_number(numbers.next_id(subject))
        assert number is not None and (number - 1) % 3 == owners.partition_of(subject)
    assert sorted(numbers.highest) == [0, 1, 2]
    assert sum((numbers.highest[p] - p - 1) // 3 + 1 for p in range(3)) == len(subjects)


@given(
    existing=st.lists(st.integers(min_value=1, max_value=500), max_size=30),
    partitions=st.integers(min_value=1, max_value=8),
    subjects=st.lists(keys, max_size=30),
)
def test_new_ids_never_take_one_already_given(
    existing: list[int], partitions: int, subjects: list[str]
) -> None:
    """Whatever ids the register holds (numbered by another partition count, or by hand),
    the ids given next are new and unique, each in its subject's class."""
    owners = ownership(partitions)
    numbers = LessonNumbers(owners)
    numbers.note([lesson_id(n) for n in existing] + ["LL-x", "lesson-7", "LL-\u0661"])
    given_ids = [numbers.next_id(subject) for subject in subjects]
    assert len(set(given_ids)) == len(given_ids)
    assert not set(given_ids) & {lesson_id(n) for n in existing}
    for subject, new in zip(subjects, given_ids, strict=True):
        number = lesson_number(new)
        assert number is not None and (number - 1) % partitions == owners.partition_of(subject)


@given(text=st.text(max_size=12))
def test_only_the_workers_own_ids_have_a_number(text: str) -> None:
    number = lesson_number(text)
    if number is not None:
        assert text == f"LL-{text.removeprefix('LL-')}" and text[3:].isascii()
        assert int(text[3:]) == number


# ------------------------------------------------------------------------------ interleavings
PARTITIONS = 3


def _lines(events: list[dict[str, Any]]) -> list[list[str]]:
    """The stream's lines as producers keyed by the contract key would place them."""
    lines = placed(events, ci_key, PARTITIONS)
    return [[json.dumps(event) for event in partition] for partition in lines]


def _register(lines: Iterable[str], owners: Ownership) -> dict[str, tuple[str, str]]:
    engine, clock = Engine(POLICY, owners), EventClock()
    for line in lines:
        process(engine, line.encode(), (), clock)
    return {id: (lesson.rule, lesson.subject) for id, lesson in engine.state.lessons.items()}


EVENTS = stream(3_000, 300)
PLACED = _lines(EVENTS)


@functools.cache
def _in_file_order(partitions: int) -> dict[str, tuple[str, str]]:
    return _register((json.dumps(event) for event in EVENTS), ownership(partitions))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers())
def test_lesson_ids_do_not_depend_on_how_partitions_interleave(seed: int) -> None:
    """Any interleaving of the partitions files the same lessons under the same ids as the
    file's order, when numbered per owner partition."""
    in_file_order = _in_file_order(PARTITIONS)
    assert len(in_file_order) > 50
    assert _register(interleaved(PLACED, seed), ownership(PARTITIONS)) == in_file_order


def test_in_one_sequence_the_ids_follow_the_interleaving() -> None:
    """What numbering per owner partition fixes: one sequence numbers by arrival, so an
    interleaving gives the same lessons other ids."""
    in_file_order = _in_file_order(1)
    as_consumed = _register(interleaved(PLACED, seed=7), ONE_OWNER)
    assert set(as_consumed.values()) == set(in_file_order.values())
    assert as_consumed != in_file_order


Switch = tuple[int, Ownership]
"""Before that event, a restart from the changelog with that owner count (the setting changed)."""


def _judged(
    events: list[dict[str, Any]], owners: Ownership, switch: Switch | None = None
) -> tuple[list[Any], Engine]:
    """Each event's findings by kind and subject (a lesson's id named by its rule and subject,
    as ids differ by owner count), and the engine, the stream applied as ``replay`` does."""
    engine, clock, seen, entries = Engine(STREAM_POLICY, owners), EventClock(), [], []
    for step, message in enumerate(events):
        if switch is not None and step == switch[0]:
            engine, clock = Engine(STREAM_POLICY, switch[1]), EventClock()
            changelog.rebuild(engine, entries)
            clock.now(engine.applied.last_applied_at)
        outcome = process(engine, json.dumps(message).encode(), [], clock)
        entries += changelog.changed_entries(engine)
        lessons = engine.state.lessons
        named = [
            (finding.kind, (lesson.rule, lesson.subject) if (lesson := lessons.get(finding.subject))
             else finding.subject)
            for finding in outcome.findings
        ]  # fmt: skip
        seen.append(sorted(map(repr, named)))
    return seen, engine


def _aggregates(engine: Engine) -> dict[str, Any]:
    """What the partials add up to, whatever the owner count: sources, team figures, lessons."""
    state = engine.state
    summed = {
        kind: [partial.model_dump(exclude={"owner"}) for partial in teams.by_team(store)]
        for kind, store in [
            ("dora", state.dora.values()),
            ("outcomes", state.team_outcomes.values()),
            ("history", state.team_histories.values()),
        ]
    }
    lessons = {(x.rule, x.subject): x.model_dump(exclude={"id"}) for x in state.lessons.values()}
    return summed | {"sources": state.sources, "lessons": lessons}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=restart_streams())
def test_the_owner_partition_count_changes_no_judgement(events: list[dict[str, Any]]) -> None:
    """Owner partitions change only how state is keyed (the aggregates' partials) and how
    lessons are numbered: under 1 and 3 the same stream gives the same findings, the same
    sources, the same team figures once summed, and the same lessons by rule and subject
    (lesson updates left out: they name a lesson by its id)."""
    events = [event for event in events if event.get("type") != "cmdb.lesson.updated"]
    one, three = _judged(events, ONE_OWNER), _judged(events, ownership(3))
    assert one[0] == three[0]
    assert _aggregates(one[1]) == _aggregates(three[1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=restart_streams(), data=st.data())
def test_changing_the_owner_partition_count_on_a_restart_changes_no_judgement(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    """An operator changes CMDB_WORKER_OWNER_PARTITIONS (1, 2 or 3, either way) and the worker
    restarts from cmdb.state anywhere in the stream: partials kept under the old count are
    summed with the new ones, new lesson ids never reuse a given one (a lesson would be lost),
    and the findings, sources, team figures and lessons are those of a run that never changed
    it."""
    events = [event for event in events if event.get("type") != "cmdb.lesson.updated"]
    counts = st.sampled_from([ONE_OWNER, ownership(2), ownership(3)])
    before, after = data.draw(counts), data.draw(counts)
    at = data.draw(st.integers(min_value=0, max_value=len(events)))
    straight, changed = _judged(events, before), _judged(events, before, (at, after))
    assert changed[0] == straight[0]
    assert _aggregates(changed[1]) == _aggregates(straight[1])
