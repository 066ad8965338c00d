"""Suppressions (CONTRACT 9.8): while in force, findings of the named kinds about the subject are
held back and counted; at expiry a condition that still holds is reported; a suppression without
``until``, with a past one or naming an unknown kind is dead-lettered. Live and rebuilt alike."""

import json
from datetime import datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.processing import process
from tests.events import at, cloudevent, iso, observed
from tests.restarts import Run, of_kind

API = "service/api@prod"
EU = "/discovery/a"


def suppression(subject: str, kinds: list[str], until: datetime | None, **extra: Any) -> dict:
    data = {"subject": subject, "kinds": kinds, "reason": "planned migration", "by": "alice"}
    data |= {"until": iso(until)} if until else {}
    return cloudevent("cmdb.suppression.set", data | extra, id=f"sup-{subject}-{until}",
                      source="/people/alice", time=at(hours=1))  # fmt: skip


def stale_api(run: Run) -> None:
    run.feed(observed("api", owner="t", relations=[("depends_on", "database/pg@prod")]),
             observed("pg", ci_type="database", owner="dba",
                      relations=[("runs_on", "host/h@prod")]))  # fmt: skip


def test_a_suppression_in_force_holds_findings_back_and_counts_them(run: Run):
    """ci_stale for a suppressed CI is not emitted while the suppression is in force, other CIs
    and kinds are untouched, and the held finding is counted by kind."""
    stale_api(run)
    run.feed(suppression(API, ["ci_stale"], at(days=3)))
    run.restart()
    found = run.keep_alive(at(days=2), EU)
    assert of_kind(found, "ci_stale") == []
    assert [f.subject for f in of_kind(found, "ci_phantom")] == ["host/h@prod"]
    assert run.engine.take_suppressed() == {"ci_stale": 1}
    assert run.engine.state.cmdb.get(API).stale


def test_at_expiry_a_condition_still_true_is_reported(run: Run):
    """When the suppression ends and the CI is still stale, ci_stale is reported then."""
    stale_api(run)
    run.feed(suppression(API, ["ci_stale"], at(days=3)))
    run.keep_alive(at(days=2), EU)
    run.restart()
    later = run.keep_alive(at(days=3, hours=1), EU, since=at(days=2))
    (stale,) = of_kind(later, "ci_stale")
    assert stale.subject == API
    assert at(days=3) < stale.time <= at(days=3, hours=1)


def test_at_expiry_a_condition_no_longer_true_is_not_reported(run: Run):
    """A CI seen again before the suppression ends has nothing to report at expiry."""
    stale_api(run)
    run.feed(suppression(API, ["ci_stale"], at(days=3)))
    run.keep_alive(at(days=2.5), EU)
    run.feed(observed("api", owner="t", time=at(days=2.5), id="again"))
    run.restart()
    later = run.keep_alive(at(days=3, hours=1), EU, since=at(days=2.5))
    assert [f.subject for f in of_kind(later, "ci_stale")] == []


def test_a_silent_source_can_be_suppressed_for_a_planned_outage(run: Run):
    """A suppression naming a source holds its source_silent back until it ends."""
    run.feed(observed("api", owner="t", source="/discovery/k8s-us"))
    run.feed(suppression("/discovery/k8s-us", ["source_silent"], at(days=1)))
    run.restart()
    during = run.keep_alive(at(hours=20), EU)
    after = run.keep_alive(at(days=1, hours=1), EU, since=at(hours=20))
    assert of_kind(during, "source_silent") == []
    assert [f.subject for f in of_kind(after, "source_silent")] == ["/discovery/k8s-us"]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (suppression(API, ["ci_stale"], None), "missing_field"),
        (suppression(API, ["ci_stale"], at(hours=0.5)), "invalid_value"),
        (suppression(API, ["ci_stale", "ci_exploded"], at(days=1)), "invalid_value"),
        (suppression(API, [], at(days=1)), "invalid_value"),
    ],
    ids=["no-until", "past-until", "unknown-kind", "no-kinds"],
)
def test_a_bad_suppression_is_dead_lettered(message: dict, code: str):
    """No until, an until not after the event's time, or an unknown kind: a dead letter."""
    outcome = process(Engine(Run(False).policy), json.dumps(message).encode(), [], EventClock())
    assert outcome.invalid is not None and outcome.invalid.code == code


def test_held_back_findings_are_counted_in_the_metric():
    """cmdb_worker_findings_suppressed_total{kind} counts what the engine held back."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.findings_held_back({"ci_stale": 2})
    value = registry.get_sample_value("cmdb_worker_findings_suppressed_total", {"kind": "ci_stale"})
    assert value == 2
    assert (
        registry.get_sample_value("cmdb_worker_findings_suppressed_total", {"kind": "ci_orphan"})
        == 0
    )
