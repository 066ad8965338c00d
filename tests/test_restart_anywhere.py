"""Property: a restart anywhere changes nothing. Random discovery streams (strong-identifier
merges, retirements and returns, relations that come and go, late sightings, scans) are applied
as ``run`` applies them, once straight through and once with the engine rebuilt from its own
changelog at random points, as a replica killed and restarted (or a standby taking over) would
be: every event's findings and the final state must be the same."""

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker import changelog
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine.apply import Engine
from tests.events import T0, observed, retired, scan_completed, to_input
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


@st.composite
def event(draw: st.DrawFn, step: int, at: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["host", "host", "service", "service", "retire", "scan"]))
    if kind == "host":
        return draw(host_sighting(step, at))
    if kind == "service":
        return draw(service_sighting(step, at))
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


def apply_all(events: list[dict[str, Any]], restarts: set[int]) -> tuple[list[Any], Engine]:
    """Each event's findings (by id and kind), the engine rebuilt before the events in
    ``restarts`` from the changelog written so far (a transaction per event)."""
    engine, clock, entries = Engine(POLICY), EventClock(), []
    seen: list[list[tuple[str, str]]] = []
    for step, message in enumerate(events):
        if step in restarts:
            engine, clock = Engine(POLICY), EventClock()
            changelog.rebuild(engine, entries)
            clock.now(engine.applied.last_applied_at)
        decoded = to_input(message)
        findings: list[Finding] = engine.apply(decoded, clock.now(decoded.time)) or []
        seen.append(sorted((finding.id, finding.kind) for finding in findings))
        entries += changelog.changed_entries(engine)
    return seen, engine


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), data=st.data())
def test_a_restart_anywhere_changes_no_finding_and_no_state(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    restarts = data.draw(st.sets(st.integers(min_value=1, max_value=len(events))))
    straight, engine = apply_all(events, set())
    restarted, rebuilt = apply_all(events, restarts)
    assert restarted == straight
    assert _state_of(rebuilt) == _state_of(engine)
