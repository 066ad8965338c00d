"""The changelog: a state rebuilt from its records equals the state that wrote them."""

import json
from pathlib import Path
from typing import Any

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker import changelog
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.export import graph_document, lessons_yaml
from cmdb_worker.worker.processing import process
from cmdb_worker.worker.replay import message_from_line
from tests.events import at, heartbeats, observed, to_input

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "events.jsonl"


def replay_with_changelog(lines: list[str], batch: int = 7) -> tuple[Engine, list[changelog.Entry]]:
    """Apply lines as the runner does, taking changelog entries after every ``batch`` lines."""
    engine, clock, entries = Engine(load_policy()), EventClock(), []
    for number, line in enumerate(lines, start=1):
        message = message_from_line(line)
        process(engine, message.value, message.headers, clock)
        if number % batch == 0:
            entries += changelog.changed_entries(engine)
    entries += changelog.changed_entries(engine)
    return engine, entries


def apply(engine: Engine, message: dict[str, Any]) -> list[Finding]:
    """Apply one event as of its own time, as replay does."""
    event = to_input(message)
    return engine.apply(event, event.time) or []


def test_rebuilt_state_equals_the_state_that_wrote_the_changelog():
    """Graph, lessons and changes rebuilt from the sample's changelog equal the originals."""
    lines = SAMPLE.read_text().splitlines()
    original, entries = replay_with_changelog(lines)
    rebuilt = Engine(load_policy())
    changelog.rebuild(rebuilt, entries)
    as_of = at(days=3)
    assert graph_document(rebuilt.state.cmdb, rebuilt.policy, as_of) == graph_document(
        original.state.cmdb, original.policy, as_of
    )
    assert lessons_yaml(rebuilt.state.lessons.values()) == lessons_yaml(
        original.state.lessons.values()
    )
    assert rebuilt.state.changes == original.state.changes
    assert rebuilt.state.cmdb.aliases == original.state.cmdb.aliases
    assert original.state.cmdb.graph.number_of_nodes() > 10


def findings_of(engine: Engine, clock: EventClock, lines: list[str]) -> list[str]:
    """The ids of the findings ``lines`` cause, applied as replay does."""
    found = []
    for line in lines:
        message = message_from_line(line)
        found += [f.id for f in process(engine, message.value, message.headers, clock).findings]
    return found


def test_a_rebuild_midway_through_the_sample_changes_no_finding():
    """Restarted from its changelog halfway through the sample week (silent source, precedence,
    phantoms, lessons and all), the worker emits exactly the findings of an unbroken run."""
    lines = SAMPLE.read_text().splitlines()
    first_half, second_half = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    unbroken, unbroken_clock = Engine(load_policy()), EventClock()
    findings_of(unbroken, unbroken_clock, first_half)
    expected = findings_of(unbroken, unbroken_clock, second_half)
    _, entries = replay_with_changelog(first_half)
    rebuilt, clock = Engine(load_policy()), EventClock()
    changelog.rebuild(rebuilt, entries)
    clock.now(rebuilt.applied.last_applied_at)
    assert findings_of(rebuilt, clock, second_half) == expected
    assert len(expected) > 20
    assert rebuilt.state.sources == unbroken.state.sources


def test_rebuilt_engine_still_ignores_applied_events():
    """An event applied before the rebuild is a duplicate after it."""
    message = observed("api", owner="t", id="o-1")
    engine = Engine(load_policy())
    engine.apply(to_input(message), at())
    rebuilt = Engine(load_policy())
    changelog.rebuild(rebuilt, changelog.changed_entries(engine))
    assert rebuilt.apply(to_input(message), at()) is None


def test_rebuilt_engine_keeps_judging_staleness():
    """Deadlines are re-armed on rebuild, so a restored CI still goes stale on time."""
    engine = Engine(load_policy())
    engine.apply(
        to_input(observed("api", owner="t", relations=[("depends_on", "database/x@prod")])), at()
    )
    rebuilt = Engine(load_policy())
    changelog.rebuild(rebuilt, changelog.changed_entries(engine))
    findings = [f for beat in heartbeats(at(days=2)) for f in apply(rebuilt, beat)]
    assert [f.kind for f in findings] == ["ci_phantom", "ci_stale"]  # database/x never observed


def test_merged_away_ci_leaves_a_tombstone():
    """A CI folded into another by a strong identifier is deleted from the changelog."""
    engine = Engine(load_policy())
    for name, source in (("a", "/s1"), ("b", "/s2")):
        engine.apply(
            to_input(
                observed(
                    name,
                    ci_type="host",
                    environment=None,
                    source=source,
                    identifiers={"fqdn": "x.example"},
                )
            ),
            at(),
        )
    entries = dict(changelog.changed_entries(engine))
    assert entries["ci/host/b"] is None
    assert json.loads(entries["ci/host/a"])["record"]["aliases"] == ["host/b"]
