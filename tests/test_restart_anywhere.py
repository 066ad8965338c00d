"""Property: a restart anywhere changes nothing. Random streams (strong-identifier merges,
retirements and returns, relations that come and go, late sightings, scans, change requests and
updates, deploys, upgrades and rollbacks, merged source changes, incidents, lesson edits,
suppressions) are applied as ``run`` applies them, once straight through and once with the
engine replaced at random points by one made from its own changelog, read as a replica reads
``cmdb.state`` (compacted up to a random point, each key on its partition, the partitions
interleaved at random): rebuilt from it (a replica killed and restarted), or a standby's,
which tailed it from some earlier point with its deadlines kept armed and then took over. Every
event's findings and the final state must be the same, and one hop must resolve every merged
id."""

import json
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.worker import changelog
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.ownership import ONE_OWNER, Ownership
from cmdb_worker.worker.kafka_clients import ownership
from cmdb_worker.worker.processing import process
from tests.events import T0, cloudevent, iso, observed, retired, scan_completed
from tests.governance_helpers import (
    cdevent,
    change_requested,
    change_updated,
    deploy,
    incident,
    lesson_updated,
)
from tests.partitions import interleaved, placed
from tests.test_changelog_roundtrip import _state_of

HOSTS, SERIALS, SERVICES = ["h0", "h1", "h2"], ["SN0", "SN1"], ["s0", "s1"]
SOURCES = ["/discovery/vmware", "/discovery/import"]
POLICY = load_policy()

hours = st.integers(min_value=-3, max_value=30)
"""How far an event's time moves the stream's clock on (negative: a late event)."""


@st.composite
def host_sighting(draw: st.DrawFn, step: int, at: Any) -> dict[str, Any]:
    serial = draw(st.sampled_from([None, *SERIALS]))
    return observed(draw(st.sampled_from(HOSTS)), ci_type="host", environment=None, time=at,
                    source=draw(st.sampled_from(SOURCES)), id=f"e{step}",
                    identifiers={"serial_number": serial} if serial else {},
                    owner=draw(st.sampled_from([None, "team-infra"])))  # fmt: skip


@st.composite
def service_sighting(draw: st.DrawFn, step: int, at: Any) -> dict[str, Any]:
    named = [f"host/{host}" for host in HOSTS] + [f"service/{s}@prod" for s in SERVICES]
    targets = draw(st.lists(st.sampled_from(named), max_size=2, unique=True))
    return observed(draw(st.sampled_from(SERVICES)), time=at, id=f"e{step}", owner="team-a",
                    relations=[("runs_on", target) for target in targets],
                    complete=draw(st.booleans()))  # fmt: skip


CHANGES, STATES = ["CHG1", "CHG2"], ["approved", "implementing", "completed", "failed"]


@st.composite
def governance(draw: st.DrawFn, kind: str, step: int, at: Any) -> dict[str, Any]:
    """A change requested or updated, a deploy (naming a change or not), an incident, or a
    person's edit of a lesson."""
    change, service = draw(st.sampled_from(CHANGES)), draw(st.sampled_from(SERVICES))
    if kind == "request":
        rollback = draw(st.sampled_from([{}, {"rollback_plan": "helm rollback"}]))
        return change_requested(change, f"service/{service}@prod", time=at, id=f"e{step}",
                                **rollback)  # fmt: skip
    if kind == "update":
        return change_updated(change, time=at, id=f"e{step}", state=draw(st.sampled_from(STATES)))
    linked = draw(st.sampled_from([{}, {"change_id": change}]))
    if kind == "deploy":
        predicate = draw(st.sampled_from(["deployed", "upgraded", "rolledback"]))
        return deploy(service, id=f"e{step}", time=at, predicate=predicate, **linked)
    if kind == "merged":
        content = {"repository": {"id": "shop/payments"}}
        return cdevent("change.merged", f"PR{step % 2}", content, id=f"e{step}", time=at,
                       custom=linked)  # fmt: skip
    if kind == "incident":
        predicate = draw(st.sampled_from(["detected", "reported", "resolved"]))
        return incident(f"INC{step % 3}", service, id=f"e{step}", time=at, predicate=predicate)
    status = draw(st.sampled_from(["Done", "In Progress", "Open"]))
    return lesson_updated(f"LL-000{draw(st.integers(1, 3))}", id=f"e{step}", time=at,
                          status=status)  # fmt: skip


SUBJECTS = [f"host/{host}" for host in HOSTS] + [f"service/{s}@prod" for s in SERVICES]
HELD_KINDS = ["ci_stale", "ci_orphan", "ci_no_owner", "deploy_unauthorized"]


@st.composite
def suppression(draw: st.DrawFn, step: int, at: Any) -> dict[str, Any]:
    """A person holding back some kinds of finding about a CI, until a time or (none) lifted."""
    kinds = draw(st.lists(st.sampled_from(HELD_KINDS), max_size=2, unique=True))
    until = draw(st.sampled_from([None, at + timedelta(hours=6), at + timedelta(days=3)]))
    data = {"subject": draw(st.sampled_from(SUBJECTS)), "kinds": kinds, "reason": "migration",
            "by": "alice"} | ({"until": iso(until)} if until else {})  # fmt: skip
    return cloudevent("cmdb.suppression.set", data, id=f"e{step}", source="/people/alice",
                      time=at)  # fmt: skip


@st.composite
def event(draw: st.DrawFn, step: int, at: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["host", "host", "service", "service", "retire", "scan",
                                 "request", "update", "deploy", "merged", "incident", "lesson",
                                 "suppress"]))  # fmt: skip
    if kind == "host":
        return draw(host_sighting(step, at))
    if kind == "service":
        return draw(service_sighting(step, at))
    if kind in ("request", "update", "deploy", "merged", "incident", "lesson"):
        return draw(governance(kind, step, at))
    if kind == "suppress":
        return draw(suppression(step, at))
    if kind == "retire":
        name = draw(st.sampled_from(HOSTS + SERVICES))
        ci_type, environment = ("host", None) if name in HOSTS else ("service", "prod")
        return retired(ci_type, name, environment=environment, time=at, id=f"e{step}")
    return scan_completed(started=at - timedelta(hours=12), time=at, id=f"e{step}",
                          source=draw(st.sampled_from(SOURCES)), types=["host"])  # fmt: skip


EventOf = Callable[[int, Any], st.SearchStrategy[dict[str, Any]]]
"""An event strategy given its step (its id) and time."""


@st.composite
def streams(draw: st.DrawFn, event_of: EventOf = event) -> list[dict[str, Any]]:
    """Up to 30 events of ``event_of``, the clock moving on (now and then back) between them."""
    at, events = T0, []
    for step in range(draw(st.integers(min_value=1, max_value=30))):
        at += timedelta(hours=draw(hours))
        events.append(draw(event_of(step, at)))
    return events


Restart = tuple[int | None, int]
"""How a replica takes over: rebuilt (None) or a standby that tailed the changelog from that
many records on; and the seed of the order it reads ``cmdb.state``'s partitions in."""
STATE_PARTITIONS = 3


def apply_all(
    events: list[dict[str, Any]], restarts: dict[int, Restart], owners: Ownership
) -> tuple[list[Any], Engine]:
    """Each event's findings (by id and kind), the engine replaced before each event in
    ``restarts`` by one made from the changelog written so far (a transaction per event), read
    back as a replica reads ``cmdb.state``: each key on its partition, partitions interleaved."""
    engine, clock, entries = Engine(POLICY, owners), EventClock(), []
    seen: list[list[tuple[str, str]]] = []
    for step, message in enumerate(events):
        if step in restarts:
            engine, clock = _made_from(entries, restarts[step], owners), EventClock()
            clock.now(engine.applied.last_applied_at)
        outcome = process(engine, json.dumps(message).encode(), [], clock)
        refused = [("refused", outcome.invalid.code)] if outcome.invalid else []
        seen.append(refused + sorted((finding.id, finding.kind) for finding in outcome.findings))
        entries += changelog.changed_entries(engine)
    return seen, engine


def _compacted(entries: list[changelog.Entry], rng: random.Random) -> list[changelog.Entry]:
    """What log compaction may have left: before a cut, each key's last record there only (a
    tombstone, maybe not even that, once its retention passed); from the cut on, everything."""
    cut, drop_tombstones = rng.randrange(len(entries) + 1), rng.random() < 0.5
    last = {key: index for index, (key, _) in enumerate(entries[:cut])}
    return [(key, value) for index, (key, value) in enumerate(entries) if index >= cut or (
        last[key] == index and not (value is None and drop_tombstones))]  # fmt: skip


def _made_from(entries: list[changelog.Entry], restart: Restart, owners: Ownership) -> Engine:
    standby_from, seed = restart
    entries = _compacted(entries, random.Random(seed))
    entries = list(interleaved(placed(entries, lambda entry: entry[0], STATE_PARTITIONS), seed))
    engine = Engine(POLICY, owners)
    if standby_from is None:
        changelog.rebuild(engine, entries)
        return engine
    standby = changelog.Restoring(engine)
    split = min(standby_from, len(entries))
    for key, value in entries[:split]:
        standby.put(key, value)
    standby.finish()  # from here on it keeps deadlines armed as it tails
    for key, value in entries[split:]:
        standby.put(key, value)
    standby.finish()  # the takeover
    return engine


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), data=st.data())
def test_a_restart_anywhere_changes_no_finding_and_no_state(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    steps = st.integers(min_value=1, max_value=len(events))
    how = st.tuples(st.one_of(st.none(), st.integers(min_value=0, max_value=200)), st.integers())
    restarts = data.draw(st.dictionaries(steps, how))
    owners = data.draw(st.sampled_from([ONE_OWNER, ownership(2)]))  # lesson ids: 1 or 2 classes
    straight, engine = apply_all(events, {}, owners)
    restarted, rebuilt = apply_all(events, restarts, owners)
    assert restarted == straight
    assert _state_of(rebuilt) == _state_of(engine)
    aliases = engine.state.cmdb.aliases
    assert not aliases.keys() & set(aliases.values()), "one hop must resolve every merged id"


def test_deadlines_due_at_one_tick_fire_in_their_order_after_a_restart() -> None:
    """A CI seen only through a deploy goes stale; its staleness outlasts the lesson grace at
    10:00 and a source falls silent at 11:00; both fall due at the 12:00 event. A restart
    before it re-arms the grace only as the stale deadline fires again: the two still fire in
    their own order, so the lessons get the same ids as without the restart."""
    events = [
        deploy("s1", id="d1", time=T0),
        observed("s0", source="/discovery/a", owner="team-a", id="o1",
                 time=T0 + timedelta(days=4, hours=-5)),
        observed("h0", ci_type="host", environment=None, source="/discovery/vmware", id="o2",
                 time=T0 + timedelta(days=4, hours=2)),
    ]  # fmt: skip
    straight, engine = apply_all(events, {}, ONE_OWNER)
    restarted, rebuilt = apply_all(events, {2: (None, 0)}, ONE_OWNER)
    rules = {id: lesson.rule for id, lesson in engine.state.lessons.items()}
    assert rules == {"LL-0001": "unauthorized_deploys", "LL-0002": "cmdb_stale",
                     "LL-0003": "source_silent"}  # fmt: skip
    assert {id: lesson.rule for id, lesson in rebuilt.state.lessons.items()} == rules
    assert restarted == straight
