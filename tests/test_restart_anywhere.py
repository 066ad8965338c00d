"""Property: a restart anywhere changes nothing. Random streams (strong-identifier merges,
retirements and returns, relations that come and go, late sightings, scans, change requests and
updates, deploys, incidents, lesson edits) are applied as ``run`` applies them, once straight
through and once with the engine replaced at random points by one made from its own changelog:
rebuilt from it (a replica killed and restarted), or a standby's, which tailed it from some
earlier point with its deadlines kept armed and then took over. Every event's findings and the
final state must be the same."""

import json
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
from tests.events import T0, observed, retired, scan_completed
from tests.governance_helpers import (
    change_requested,
    change_updated,
    deploy,
    incident,
    lesson_updated,
)
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
    targets = draw(st.lists(st.sampled_from(HOSTS), max_size=2, unique=True))
    return observed(draw(st.sampled_from(SERVICES)), time=at, id=f"e{step}", owner="team-a",
                    relations=[("runs_on", f"host/{target}") for target in targets],
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
    if kind == "deploy":
        linked = draw(st.sampled_from([{}, {"change_id": change}]))
        predicate = draw(st.sampled_from(["deployed", "rolledback"]))
        return deploy(service, id=f"e{step}", time=at, predicate=predicate, **linked)
    if kind == "incident":
        return incident(f"INC{step % 3}", service, id=f"e{step}", time=at,
                        predicate=draw(st.sampled_from(["detected", "resolved"])))  # fmt: skip
    status = draw(st.sampled_from(["Done", "In Progress", "Open"]))
    return lesson_updated(f"LL-000{draw(st.integers(1, 3))}", id=f"e{step}", time=at,
                          status=status)  # fmt: skip


@st.composite
def event(draw: st.DrawFn, step: int, at: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["host", "host", "service", "service", "retire", "scan",
                                 "request", "update", "deploy", "incident", "lesson"]))  # fmt: skip
    if kind == "host":
        return draw(host_sighting(step, at))
    if kind == "service":
        return draw(service_sighting(step, at))
    if kind in ("request", "update", "deploy", "incident", "lesson"):
        return draw(governance(kind, step, at))
    if kind == "retire":
        name = draw(st.sampled_from(HOSTS + SERVICES))
        ci_type, environment = ("host", None) if name in HOSTS else ("service", "prod")
        return retired(ci_type, name, environment=environment, time=at, id=f"e{step}")
    return scan_completed(started=at - timedelta(hours=12), time=at, id=f"e{step}",
                          source=draw(st.sampled_from(SOURCES)), types=["host"])  # fmt: skip


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    at, events = T0, []
    for step in range(draw(st.integers(min_value=1, max_value=30))):
        at += timedelta(hours=draw(hours))
        events.append(draw(event(step, at)))
    return events


def apply_all(
    events: list[dict[str, Any]], restarts: dict[int, int | None], owners: Ownership
) -> tuple[list[Any], Engine]:
    """Each event's findings (by id and kind), the engine replaced before each event in
    ``restarts`` by one made from the changelog written so far (a transaction per event):
    rebuilt (None), or a standby's that tailed it from the given number of records on."""
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


def _made_from(
    entries: list[changelog.Entry], standby_from: int | None, owners: Ownership
) -> Engine:
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
    how = st.one_of(st.none(), st.integers(min_value=0, max_value=200))
    restarts = data.draw(st.dictionaries(steps, how))
    owners = data.draw(
        st.sampled_from([ONE_OWNER, ownership(2)])
    )  # lesson ids: one sequence or two
    straight, engine = apply_all(events, {}, owners)
    restarted, rebuilt = apply_all(events, restarts, owners)
    assert restarted == straight
    assert _state_of(rebuilt) == _state_of(engine)
