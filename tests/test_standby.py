"""A standby's engine: rebuilt at start, then fed the changelog as it is written, then re-armed
at takeover, it is exactly the engine a rebuild of the whole changelog makes, and judges alike."""

import dataclasses
import json
import threading
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker import changelog
from cmdb_worker.worker.api import Api
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.cmdb import Cmdb, EdgeData
from cmdb_worker.worker.ui import Ui
from tests.events import at, observed
from tests.test_changelog import SAMPLE, apply, findings_of, replay_with_changelog
from tests.test_changelog_roundtrip import _state_of


def derived(engine: Engine) -> dict[str, Any]:
    """What ``finish`` derives rather than restores: deadlines, open changes, lesson index."""
    state = engine.state
    return {
        "deadlines": dict(state.deadlines._current),
        "open_changes": (state.open_changes._by_ci, state.open_changes._cis_of),
        "lesson_keys": state.lesson_keys,
        "last_applied_at": engine.applied.last_applied_at,
    }


def rebuilt(entries: list[changelog.Entry]) -> Engine:
    engine = Engine(load_policy())
    changelog.rebuild(engine, entries)
    return engine


def standby(started_with: list[changelog.Entry], tailed: list[changelog.Entry]) -> Engine:
    """Rebuilt from ``started_with`` (finished, as at start), then ``tailed`` put one by one
    and finished again, as a standby does until it takes over."""
    engine = Engine(load_policy())
    restoring = changelog.Restoring(engine)
    for key, value in started_with:
        restoring.put(key, value)
    restoring.finish()
    for key, value in tailed:
        restoring.put(key, value)
    restoring.finish()
    return engine


def sample_changelog() -> tuple[list[str], list[changelog.Entry]]:
    """The first half of the sample week's lines, and the changelog they wrote."""
    lines = SAMPLE.read_text().splitlines()
    return lines, replay_with_changelog(lines[: len(lines) // 2])[1]


def test_a_standby_at_takeover_equals_a_rebuild_of_the_whole_changelog() -> None:
    """Started a third of the way in and fed the rest, the standby holds exactly the records,
    stores, identities, deadlines and indexes of one rebuild of the whole changelog."""
    _, entries = sample_changelog()
    third = len(entries) // 3
    taken_over = standby(entries[:third], entries[third:])
    whole = rebuilt(entries)
    assert _state_of(taken_over) == _state_of(whole)
    assert derived(taken_over) == derived(whole)
    assert len(derived(whole)["deadlines"]) > 10


@pytest.mark.parametrize("started_at", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
def test_deadlines_kept_armed_while_tailing_equal_a_full_rearm(started_at: float) -> None:
    """Wherever in the whole week's changelog the standby started, the deadlines it kept armed
    record by record (CIs, their neighbours, lessons, sources, suppressions, timelines, edge
    history, values replaced and deleted) equal those one rebuild arms from scratch."""
    lines = SAMPLE.read_text().splitlines()
    entries = replay_with_changelog(lines, batch=3)[1]
    split = int(len(entries) * started_at)
    taken_over, whole = standby(entries[:split], entries[split:]), rebuilt(entries)
    assert derived(taken_over) == derived(whole)
    assert _state_of(taken_over) == _state_of(whole)


def test_an_edge_tailed_to_an_unconnected_ci_disarms_its_orphan_deadline() -> None:
    """A database seen alone has an orphan deadline; a service's record that arrives later with
    an edge to it connects it, and the standby drops that deadline as a rebuild never arms it;
    the edge gone again, the standby arms it again."""
    engine = Engine(load_policy())
    apply(engine, observed("pg", ci_type="database"))
    alone = changelog.changed_entries(engine)
    edge = ("depends_on", "database/pg@prod")
    apply(engine, observed("api", time=at(hours=0.5), relations=[edge]))
    connected = changelog.changed_entries(engine)
    assert "ci/database/pg@prod" not in dict(connected)  # pg's own record is not written again
    apply(engine, observed("api", time=at(hours=0.6), complete=True))  # the edge is gone
    cut = changelog.changed_entries(engine)
    orphan = ("database/pg@prod", "orphan")
    assert orphan in derived(rebuilt(alone))["deadlines"]
    joined, parted = derived(rebuilt(alone + connected)), derived(rebuilt(alone + connected + cut))
    assert orphan not in joined["deadlines"]
    assert derived(standby(alone, connected)) == joined
    assert orphan in parted["deadlines"]
    assert derived(standby(alone + connected, cut)) == parted


def test_records_applied_again_change_nothing() -> None:
    """Replace semantics: the whole changelog put a second time (a tail re-read from an earlier
    offset) leaves the state and everything derived as one rebuild makes them."""
    _, entries = sample_changelog()
    twice = standby(entries, entries)
    assert _state_of(twice) == _state_of(rebuilt(entries))
    assert derived(twice) == derived(rebuilt(entries))


def _withheld_target(entries: list[changelog.Entry]) -> tuple[str, str]:
    """A CI with an edge, and the key of that edge's target (whose record can come later)."""
    values = dict(entries)
    for key, value in values.items():
        if key.startswith(changelog.CI_PREFIX) and value is not None:
            for target in json.loads(value).get("edges", {}):
                if values.get(changelog.CI_PREFIX + target) is not None:
                    return key.removeprefix(changelog.CI_PREFIX), changelog.CI_PREFIX + target
    raise AssertionError("no edge in the sample's changelog")


def test_an_edge_read_before_its_target_record_is_a_bare_node_not_a_crash() -> None:
    """A rebuild that reads a CI's edge before its target's record (a read of the state topic
    that ends between two partitions' commit markers; a standby mid-tail) re-arms what it has,
    does not count the target among the CIs, shows it as a bare neighbour, and holds it once
    its record arrives."""
    _, entries = sample_changelog()
    origin, target = _withheld_target(entries)
    early = standby(
        [entry for entry in entries if entry[0] != target],
        [entry for entry in entries if entry[0] == target],
    )
    partial = rebuilt([entry for entry in entries if entry[0] != target])
    target_id = target.removeprefix(changelog.CI_PREFIX)
    assert target_id in partial.state.cmdb.graph
    assert partial.state.cmdb.get(target_id) is None
    assert target_id not in {record.id for record in partial.state.cmdb.records()}
    api = Api(partial, threading.RLock(), lambda: at(days=3))
    status, _, body = Ui(api).get("ci/" + quote(origin, safe=""), {})
    assert status == HTTPStatus.OK and target_id in body.decode()
    assert _state_of(early) == _state_of(rebuilt(entries))
    assert derived(early) == derived(rebuilt(entries))


def test_the_new_active_judges_the_rest_as_an_unbroken_run(tmp_path: Path) -> None:
    """After taking over from a standby's engine, the rest of the sample week gives exactly the
    findings the engine that wrote the changelog gives."""
    lines, _ = sample_changelog()
    half = len(lines) // 2
    writer, entries = replay_with_changelog(lines[:half])
    writer_clock = EventClock()
    writer_clock.now(writer.applied.last_applied_at)
    expected = findings_of(writer, writer_clock, lines[half:])
    taken_over, clock = standby(entries[:5], entries[5:]), EventClock()
    clock.now(taken_over.applied.last_applied_at)
    assert findings_of(taken_over, clock, lines[half:]) == expected
    assert len(expected) > 20


# ------------------------------------------------------------------------------ a CI's values
ORIGIN = CIId("service/api@prod")
TARGETS = [CIId(f"database/db{n}@prod") for n in range(3)]


CIValue = tuple[CIRecord, dict[CIId, EdgeData]]
KINDS = st.lists(st.sampled_from(["depends_on", "runs_on"]), min_size=1, unique=True)
MINUTES = st.integers(0, 600)
OWNERS = [None, "team-a", "team-b"]


@st.composite
def ci_values(draw: st.DrawFn) -> CIValue:
    """One changelog value of ``ORIGIN``: some sources, identifiers and aliases, edges to some
    targets in some order, each with some kinds."""
    sources = draw(st.lists(st.sampled_from(["/k8s", "/vmware", "/aws"]), unique=True))
    seen = {source: at(draw(MINUTES) / 60) for source in sources}
    record = CIRecord(
        id=ORIGIN, type="service", name="api", environment="prod",
        identifiers=draw(st.sampled_from([{}, {"fqdn": "api.example.net"}, {"fqdn": "b.net"}])),
        aliases=draw(st.sampled_from([frozenset(), frozenset({CIId("service/old@prod")})])),
        seen_by=seen, first_seen=min(seen.values(), default=None),
    )  # fmt: skip
    targets = draw(st.permutations(TARGETS))[: draw(st.integers(0, len(TARGETS)))]
    return record, {target: _edge(draw) for target in targets}


def _edge(draw: st.DrawFn) -> EdgeData:
    return {kind: {"/k8s": at(draw(MINUTES) / 60)} for kind in draw(KINDS)}


@st.composite
def ci_histories(draw: st.DrawFn) -> list[CIValue]:
    """Successive values of ``ORIGIN``, each the last one refreshed (later sightings, other
    edge kinds: what a standby mostly applies), with its edges reordered, its identifiers or
    its sources changed (the rest kept), or drawn anew."""
    values = [draw(ci_values())]
    for _ in range(draw(st.integers(0, 4))):
        record, edges = values[-1]
        change = draw(st.sampled_from(["refresh", "reorder", "identifiers", "sources", "anew"]))
        if change == "anew":
            values.append(draw(ci_values()))
            continue
        sources = ["/aws", *record.seen_by] if change == "sources" else record.seen_by
        seen = {source: at(draw(MINUTES) / 60) for source in sources}
        record = dataclasses.replace(record, seen_by=seen, owner=draw(st.sampled_from(OWNERS)))
        targets = list(reversed(edges)) if change == "reorder" else list(edges)
        if change == "identifiers":
            record.identifiers = {"serial_number": draw(st.sampled_from(["SN-1", "SN-2"]))}
        values.append((record, {target: _edge(draw) for target in targets}))
    return values


def _graph_of(cmdb: Cmdb) -> dict[str, Any]:
    """The graph and indexes, edges in their order (what a traversal meets first)."""
    return {
        "records": {record.id: record for record in cmdb.records()},
        "edges": [(u, v, data) for u, v, data in cmdb.graph.edges(data=True)],
        "nodes": sorted(cmdb.graph.nodes),
        "indexes": (cmdb.aliases, cmdb.retired, cmdb.strong_ids),
        "by_source": {source: ids for source, ids in cmdb.by_source.items() if ids},
    }  # a source whose CIs all went keeps an empty set: it holds none, as one never seen


@settings(max_examples=300, deadline=None)
@given(values=ci_histories())
def test_a_ci_restored_value_after_value_equals_its_last_value_restored_alone(
    values: list[CIValue],
) -> None:
    """Whatever came before (refreshes updated in place, or values that moved an index key or
    an edge, withdrawn first), a CI's record, edges (data and order) and indexes end as its last
    value alone would leave them: what a standby holds equals a rebuild."""
    policy = load_policy()
    tailed = Engine(policy).state.cmdb
    for record, edges in values:
        tailed.restore(record, edges)
    alone = Engine(policy).state.cmdb
    alone.restore(*values[-1])
    assert _graph_of(tailed) == _graph_of(alone)
