"""Partitioned judgement's engine half (``engine.operations``, ``engine.owners``): owners of a
stream's partitions, each writing only its own keys and firing only its own deadlines, judge
as one engine does when what crosses partitions travels as operations (``worker.partitioned``:
a global view without lag).

The streams are discovery reports with relations (among themselves and to CIs never observed)
and strong identifiers (two names of one CI, on two owners, merge; later events may name the
merged-away id), retirements, completed scans, suppressions and governance events, under the
packaged policy (sources fall silent and recover). With views that lag, names of one CI that
two owners each made a CI for merge at their next sightings, and nothing is lost.
"""

import contextlib
import json
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdb_worker.rules.hygiene import relation_dangling
from cmdb_worker.rules.policy import load_policy
from cmdb_worker.schemas.ci import CIRef
from cmdb_worker.schemas.decode import InvalidEvent, decode
from cmdb_worker.schemas.events import InputEvent
from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine import apply, owners
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.discovery import PHANTOM
from cmdb_worker.worker.engine.operations import (
    OPERATION,
    PAYLOADS,
    Found,
    MergedAway,
    Operation,
    OperationKind,
    Referenced,
    Rehomed,
    TargetMerged,
    TargetRetired,
)
from cmdb_worker.worker.kafka_clients import ownership
from cmdb_worker.worker.partitioned import Partitioned
from tests.cdevents_samples import ALL_KINDS, cdevent
from tests.events import T0, at, cloudevent, iso, observed, retired, scan_completed, to_input
from tests.governance_helpers import incident
from tests.test_restart_anywhere import governance, streams, suppression

POLICY = load_policy()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PARTITIONS = ownership(4)
HOSTS = [f"h{n}" for n in range(4)]
SERVICES = [f"s{n}" for n in range(4)]
NEVER_OBSERVED = ["host/ghost", "database/pg@prod"]
SOURCES = ["/discovery/vmware", "/discovery/k8s"]
STRONG_IDENTIFIERS = [{"serial_number": "SN0"}, {"serial_number": "SN1"}, {"fqdn": "a.example.com"}]
GOVERNANCE = ["request", "update", "deploy", "merged", "incident", "lesson"]
"""Change requests and updates, deploys (naming a change or not), merges, incidents and
people's edits of lessons."""


def _value(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _one_owner() -> Partitioned:
    return Partitioned(POLICY, PARTITIONS, [[0, 1, 2, 3]])


def _two_owners() -> Partitioned:
    """Partitions 0-1 and 2-3 owned by two engines."""
    return Partitioned(POLICY, PARTITIONS, [[0, 1], [2, 3]])


def test_a_relation_to_another_owners_ci_is_an_operation_its_owner_applies() -> None:
    """The observing owner writes its CI and edge, not the target's placeholder; the target's
    owner writes it (referenced since the relation's time) and alone fires its phantom."""
    owners_ = _two_owners()
    service, target = next(
        (f"service/{s}@prod", "host/ghost")
        for s in SERVICES * 4
        if (owners_.owner_of(f"service/{s}@prod") is not owners_.owner_of("host/ghost"))
    )
    home, owner = owners_.owner_of(service), owners_.owner_of(target)
    name = service.split("/")[1].split("@")[0]
    seen = {"owner": "team-a", "relations": [("runs_on", target)]}
    assert owners_.feed(_value(observed(name, time=T0, **seen))) == []
    assert owners_.operations == {"referenced": 1} and owners_.foreign_writes == []
    placeholder = owner.state.cmdb.get(target)
    assert placeholder is not None and placeholder.referenced_at == T0
    assert home.state.cmdb.get(target) == placeholder  # read from the owner's record
    later = owners_.feed(_value(observed(name, time=at(days=30), **seen)))
    assert [finding.kind for finding in later if finding.subject == target] == ["ci_phantom"]
    assert PHANTOM in placeholder.flags
    assert home.state.cmdb.get(target) == placeholder


def test_an_engine_owning_every_partition_applies_its_operations_itself() -> None:
    engine = Engine(POLICY, PARTITIONS)
    event = to_input(observed("s0", time=T0, relations=[("runs_on", "host/ghost")]))
    engine.apply(event, T0)
    assert engine.take_outgoing() == []
    record = engine.state.cmdb.get("host/ghost")
    assert record is not None and record.referenced_at == T0


def test_every_deadline_kind_has_an_owner_and_every_operation_a_handler() -> None:
    assert set(owners.DEADLINE_ENTITIES) == set(apply.DEADLINE_HANDLERS)
    assert set(apply.OPERATION_HANDLERS) == set(OperationKind.__args__)


moments = st.datetimes(timezones=st.just(UTC))
ci_ids = st.sampled_from([f"host/{h}" for h in HOSTS] + [f"service/{s}@prod" for s in SERVICES])
operations = st.one_of(
    st.builds(lambda name, at_: Referenced(ci_id=f"host/{name}", ref=CIRef(type="host", name=name),
                                          at=at_), st.sampled_from(HOSTS), moments),
    st.builds(lambda origin, ci_id, at_: TargetRetired(origin=origin, ci_id=ci_id, at=at_,
                                                       retired_at=at_), ci_ids, ci_ids, moments),
    st.builds(lambda origin, target, at_: Found(entity=origin, finding=relation_dangling(
        origin, target, ["runs_on"], at_, at_)), ci_ids, ci_ids, moments),
    st.builds(lambda gone, kept, at_: MergedAway(ci_id=gone, into=kept, at=at_), ci_ids, ci_ids,
              moments),
    st.builds(lambda origin, gone, kept, at_: TargetMerged(
        origin=origin, ci_id=gone, into=kept, at=at_), ci_ids, ci_ids, ci_ids, moments),
)  # fmt: skip


@given(operation=operations)
def test_an_operation_reads_back_from_its_own_fields(operation: Operation) -> None:
    """What an owner hands over (to go on a topic) reads back as it was, whatever its kind."""
    assert OPERATION.validate_json(operation.model_dump_json()) == operation


def _every_kind_of_event() -> list[InputEvent]:
    """The sample week's events that decode, every CDEvent kind in both forms, a suppression."""
    lines = (EXAMPLES / "events.jsonl").read_text().splitlines()
    values = [line.encode() for line in lines if line.strip()]
    values += [_value(cdevent(kind, form)) for kind in ALL_KINDS for form in ("0.4", "0.5+")]
    held = {
        "subject": "host/h0",
        "kinds": ["ci_stale"],
        "reason": "migration",
        "by": "alice",
        "until": iso(at(days=3)),
    }
    values.append(_value(cloudevent("cmdb.suppression.set", held, id="s1", source="/people/alice")))
    decoded = []
    for value in values:
        with contextlib.suppress(InvalidEvent):
            decoded.append(decode(value))
    return decoded


def test_a_rehomed_event_reads_back_as_it_was_whatever_its_kind() -> None:
    """An event forwarded to its CI's owner (an operation, on a topic) is judged as it arrived:
    the same event, its payload carrying the same fields (a partial update stays partial)."""
    events = _every_kind_of_event()
    assert {type(event.payload).__name__ for event in events} == set(PAYLOADS)
    for event in events:
        sent = Rehomed.of(event, "service/cart@prod").model_dump_json()
        received = OPERATION.validate_python(json.loads(sent))
        assert isinstance(received, Rehomed)
        back = received.event()
        assert back == event
        assert back.payload.model_dump(exclude_unset=True) == event.payload.model_dump(
            exclude_unset=True
        )


def _two_names_on_two_owners(owners_: Partitioned) -> tuple[str, str]:
    """Two hosts whose ids the two owners hold one each."""
    return next(
        (f"host/{a}", f"host/{b}") for a in HOSTS for b in HOSTS
        if owners_.owner_of(f"host/{a}") is not owners_.owner_of(f"host/{b}")
    )  # fmt: skip


def test_two_names_of_one_ci_on_two_owners_end_as_one_ci_each_owner_writing_its_own() -> None:
    """The second name's sighting, carrying the first's fqdn, is judged by the first's owner
    (rehomed), which writes the survivor; the second name's owner writes its tombstone."""
    owners_ = _two_owners()
    first, second = _two_names_on_two_owners(owners_)
    fqdn = {"fqdn": "db1.example.com"}
    owners_.feed(_value(observed(first.split("/")[1], ci_type="host", environment=None,
                                 identifiers=fqdn, time=T0, id="e1")))  # fmt: skip
    owners_.feed(_value(observed(second.split("/")[1], ci_type="host", environment=None,
                                 time=T0, id="e2", source="/discovery/k8s")))  # fmt: skip
    merged = owners_.feed(_value(observed(second.split("/")[1], ci_type="host", environment=None,
                                          identifiers=fqdn, time=at(hours=1), id="e3",
                                          source="/discovery/k8s")))  # fmt: skip
    assert [(f.kind, f.subject) for f in merged] == [("ci_duplicate_merged", first)]
    assert owners_.operations == {"rehomed": 1, "merged_away": 1}
    assert owners_.foreign_writes == []
    for engine in owners_.engines:
        assert [record.id for record in engine.state.cmdb.records()] == [first]
        record = engine.state.cmdb.get(second)
        assert record is not None and record.id == first and second in record.aliases
        assert set(record.seen_by) == {"/discovery/a", "/discovery/k8s"}  # both names' sources


def test_an_edge_to_a_merged_away_ci_is_moved_by_its_origins_owner() -> None:
    """A service another owner than the survivor's holds points at the merged-away name: the
    survivor's owner moves the edge in its copy, the service's owner writes it."""
    owners_ = _two_owners()
    first, second = _two_names_on_two_owners(owners_)
    survivor = owners_.owner_of(first)
    service = next(f"service/{s}@prod" for s in SERVICES
                   if owners_.owner_of(f"service/{s}@prod") is not survivor)  # fmt: skip
    host = {"ci_type": "host", "environment": None}
    owners_.feed(_value(observed(second.split("/")[1], time=T0, id="e1", **host)))
    owners_.feed(_value(observed(service.split("/")[1].split("@")[0], time=T0, id="e2",
                                 owner="team-a", relations=[("runs_on", second)])))  # fmt: skip
    serial = {"serial_number": "SN9"}
    owners_.feed(_value(observed(first.split("/")[1], time=T0, id="e3", identifiers=serial,
                                 **host)))  # fmt: skip
    owners_.feed(_value(observed(second.split("/")[1], time=at(hours=1), id="e4",
                                 identifiers=serial, **host)))  # fmt: skip
    assert owners_.operations["target_merged"] == 1 and owners_.foreign_writes == []
    for engine in owners_.engines:
        assert list(engine.state.cmdb.graph.edges) == [(service, first)]


def _host(name: str, step: int, hours: int, source: str, **seen: Any) -> bytes:
    return _value(observed(name.split("/")[1], ci_type="host", environment=None, time=at(hours),
                           id=f"e{step}", source=source, **seen))  # fmt: skip


def test_a_merge_its_owner_made_blind_takes_in_the_merged_away_record_from_its_owner() -> None:
    """The survivor's owner merges a name its lagging view has no record of yet: the name's
    owner sends what its record and edges held, so nothing its earlier sightings said is lost."""
    owners_, one = Partitioned(POLICY, PARTITIONS, [[0, 1], [2, 3]], view_lag=1), _one_owner()
    first, second = _two_names_on_two_owners(owners_)
    fqdn = {"fqdn": "db1.example.com"}
    stream = [
        _host(first, 1, 0, "/discovery/vmware", identifiers=fqdn),
        _host(second, 2, 1, "/discovery/import", relations=[("runs_on", "host/ghost")]),
        _host(second, 3, 2, "/discovery/k8s", identifiers=fqdn),
    ]
    for value in stream:
        owners_.feed(value), one.feed(value)
    owners_.catch_up()
    assert owners_.operations["absorbed"] == 1 and owners_.foreign_writes == []
    whole = {record.id: record for record in one.engines[0].state.cmdb.records()}
    assert set(whole[first].seen_by) == {"/discovery/vmware", "/discovery/import", "/discovery/k8s"}
    for engine in owners_.engines:
        assert {record.id: record for record in engine.state.cmdb.records()} == whole
        assert sorted(engine.state.cmdb.graph.edges) == [(first, "host/ghost")]


def test_two_names_made_one_ci_each_while_views_lagged_merge_at_their_next_sightings() -> None:
    """Each owner, not yet seeing the other's CI, made one with the same fqdn; both then see
    the same holder of it (the smaller id), so the other name's next sighting merges them."""
    owners_ = Partitioned(POLICY, PARTITIONS, [[0, 1], [2, 3]], view_lag=1)
    first, second = _two_names_on_two_owners(owners_)
    fqdn = {"fqdn": "db1.example.com"}
    owners_.feed(_host(first, 1, 0, "/discovery/vmware", identifiers=fqdn))
    owners_.feed(_host(second, 2, 0, "/discovery/k8s", identifiers=fqdn))
    owners_.catch_up()
    assert all(len(list(engine.state.cmdb.records())) == 2 for engine in owners_.engines)
    owners_.feed(_host(first, 3, 1, "/discovery/vmware", identifiers=fqdn))
    owners_.feed(_host(second, 4, 1, "/discovery/k8s", identifiers=fqdn))
    owners_.catch_up()
    assert owners_.foreign_writes == []
    survivor = min(first, second)
    for engine in owners_.engines:
        assert [record.id for record in engine.state.cmdb.records()] == [survivor]
        assert {engine.state.cmdb.resolve(first), engine.state.cmdb.resolve(second)} == {survivor}


def test_an_event_sent_to_a_ci_that_no_longer_holds_its_identifier_is_sent_on() -> None:
    """The home's lagging view still has s2 holding SN1, which s2's owner knows it gave up: that
    owner does not judge the sighting of s0 there but sends it on, where it lands as s0's own
    CI (one engine would not have merged them either); no key is written by a non-owner."""
    owners_ = Partitioned(POLICY, PARTITIONS, [[0, 1], [2, 3]], view_lag=1)
    assert owners_.owner_of("service/s0@prod") is not owners_.owner_of("service/s2@prod")
    for step, (name, serial) in enumerate([("s2", "SN1"), ("s2", "SN0"), ("s0", "SN1")]):
        owners_.feed(_value(observed(name, time=at(hours=step), id=f"e{step}", owner="team-a",
                                     identifiers={"serial_number": serial})))  # fmt: skip
    owners_.catch_up()
    assert owners_.operations == {"rehomed": 2} and owners_.foreign_writes == []
    for engine in owners_.engines:
        records = sorted(record.id for record in engine.state.cmdb.records())
        assert records == ["service/s0@prod", "service/s2@prod"]


@st.composite
def sighting(draw: st.DrawFn, step: int, when: Any) -> dict[str, Any]:
    """A host, or a service with relations to hosts, services and CIs never observed; either
    may carry a strong identifier another CI has (a merge: later events may name the alias)."""
    source = draw(st.sampled_from(SOURCES))
    identifier = draw(st.sampled_from([{}, {}, *STRONG_IDENTIFIERS]))
    if draw(st.booleans()):
        return observed(draw(st.sampled_from(HOSTS)), ci_type="host", environment=None,
                        time=when, id=f"e{step}", source=source, identifiers=identifier,
                        owner=draw(st.sampled_from([None, "team-infra"])))  # fmt: skip
    targets = [f"host/{h}" for h in HOSTS] + [f"service/{s}@prod" for s in SERVICES]
    named = draw(st.lists(st.sampled_from(targets + NEVER_OBSERVED), max_size=3, unique=True))
    return observed(draw(st.sampled_from(SERVICES)), time=when, id=f"e{step}", source=source,
                    owner="team-a", relations=[("depends_on", t) for t in named],
                    complete=draw(st.booleans()), identifiers=identifier)  # fmt: skip


@st.composite
def discovery_event(draw: st.DrawFn, step: int, when: Any) -> dict[str, Any]:
    """Mostly sightings; now and then a retirement, a completed scan, a suppression or a
    governance event."""
    kind = draw(st.sampled_from(["sighting"] * 6 + ["retirement", "scan", "suppress", *GOVERNANCE]))
    if kind == "suppress":
        return draw(suppression(step, when))
    if kind == "sighting":
        return draw(sighting(step, when))
    if kind == "incident":  # each incident on one service throughout
        number = draw(st.integers(min_value=0, max_value=2))
        predicate = draw(st.sampled_from(["detected", "reported", "resolved"]))
        return incident(f"INC{number}", SERVICES[number % 2], id=f"e{step}", time=when,
                        predicate=predicate)  # fmt: skip
    if kind in GOVERNANCE:
        return draw(governance(kind, step, when))
    source = draw(st.sampled_from(SOURCES))
    if kind == "scan":
        types = draw(st.sampled_from([["host"], ["service"], None]))
        return scan_completed(started=when - timedelta(hours=12), time=when, id=f"e{step}",
                              source=source, types=types)  # fmt: skip
    name = draw(st.sampled_from(HOSTS + SERVICES))
    ci_type, environment = ("host", None) if name in HOSTS else ("service", "prod")
    return retired(ci_type, name, environment=environment, time=when, id=f"e{step}")


GROUPINGS = st.sampled_from([[[0, 1], [2, 3]], [[0], [1], [2, 3]], [[0, 2], [1, 3]]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(discovery_event), groups=GROUPINGS, deliveries=st.sampled_from([1, 2]))
def test_owners_exchanging_operations_judge_as_one_engine(
    events: list[dict[str, Any]], groups: list[list[int]], deliveries: int
) -> None:
    """Each event causes the same findings (ids and kinds) on its owners as on one engine (and
    the same events are refused), every owner writes only its own keys, and each owner's view
    ends holding the same graph and the same state in every store; each operation delivered
    twice changes nothing more."""
    one = Partitioned(POLICY, PARTITIONS, [[0, 1, 2, 3]])
    together = Partitioned(POLICY, PARTITIONS, groups, deliveries)
    for message in events:
        alone = sorted((f.id, f.kind) for f in one.feed(_value(message)))
        assert sorted((f.id, f.kind) for f in together.feed(_value(message))) == alone
    assert together.refused == one.refused
    assert together.foreign_writes == []
    alone_engine = one.engines[0]
    for engine in together.engines:
        cmdb, whole = engine.state.cmdb, alone_engine.state.cmdb
        assert sorted(cmdb.graph.edges) == sorted(whole.graph.edges)
        assert {r.id: r for r in cmdb.records()} == {r.id: r for r in whole.records()}
        assert _stores(engine) == _stores(alone_engine)


def _stores(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every model store of the state (changes, histories, lessons, DORA and team partials,
    timelines, sources...), as its values' JSON."""
    return {
        kind: {key: model.model_dump(mode="json") for key, model in store.items()}
        for kind, (attribute, _) in changelog.MODEL_STORES.items()
        if (store := getattr(engine.state, attribute))
    }


@st.composite
def sightings(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to 20 sightings of hosts and services, an hour apart or at once; each name has one
    strong identifier (or none) throughout, which a sighting carries or not."""
    names = [("host", host) for host in HOSTS] + [("service", service) for service in SERVICES]
    identifier_of = {name: draw(st.sampled_from([{}, *STRONG_IDENTIFIERS])) for name in names}
    events, when = [], T0
    for step in range(draw(st.integers(min_value=1, max_value=20))):
        when += timedelta(hours=draw(st.integers(min_value=0, max_value=1)))
        message = draw(sighting(step, when))
        ci = message["data"]["ci"]
        ci["identifiers"] = draw(st.sampled_from([{}, identifier_of[ci["type"], ci["name"]]]))
        events.append(message)
    return events


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=sightings(), groups=GROUPINGS, lag=st.integers(min_value=1, max_value=3))
def test_names_of_one_ci_end_as_one_ci_however_far_the_views_lagged(
    events: list[dict[str, Any]], groups: list[list[int]], lag: int
) -> None:
    """Owners whose views lagged may have made a CI each for names of one CI; once the views
    caught up, a sighting of every name with its identifier merges them: every owner ends with
    one CI per strong identifier, the same CIs and the same names resolving to them, each key
    written by its owner."""
    owners_ = Partitioned(POLICY, PARTITIONS, groups, view_lag=lag)
    for message in events:
        owners_.feed(_value(message))
    again: dict[tuple[str, str], dict[str, Any]] = {}
    for message in events:
        ci = message["data"]["ci"]
        if ci["identifiers"] or (ci["type"], ci["name"]) not in again:
            again[ci["type"], ci["name"]] = message
    for step, message in enumerate(again.values()):
        owners_.catch_up()
        owners_.feed(_value(message | {"id": f"again{step}", "time": iso(at(days=30))}))
    owners_.catch_up()
    assert owners_.foreign_writes == []
    names = [f"{kind}/{name}" + ("@prod" if kind == "service" else "") for kind, name in again]
    seen = []
    for engine in owners_.engines:
        cmdb = engine.state.cmdb
        holders = Counter((r.type, *key) for r in cmdb.records() for key in r.identifiers.items())
        assert all(count == 1 for count in holders.values())
        assert not cmdb.strong_ids.contested
        seen.append(({r.id for r in cmdb.records()}, [cmdb.resolve(name) for name in names]))
    assert all(each == seen[0] for each in seen)
