"""Change conflicts (contract 9.2): overlapping open changes on the same or related CIs."""

import pytest

from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker.engine.apply import Engine
from tests.events import at, observed, to_input
from tests.governance_helpers import SAFE, change_requested, change_updated, of_kind
from tests.governance_policy import governance_policy, window

EARLIER = "overlaps open changes requested earlier: "
API, PG, WEB = "service/payments-api@prod", "database/payments-pg@prod", "service/web@prod"


@pytest.fixture
def policy() -> Policy:
    return governance_policy()


@pytest.fixture
def estate(feed) -> None:
    """payments-api depends on payments-pg; web stands alone."""
    feed(
        observed("payments-pg", ci_type="database", owner="dba"),
        observed("payments-api", owner="pay", relations=[("depends_on", PG)]),
        observed("web", owner="web", relations=[("depends_on", "database/web-pg@prod")]),
    )


def requested(change_id: str, *cis: str, start: float, end: float, hour: float = 0, **fields):
    """A safe change on ``cis`` planned from T0+start to T0+end hours, requested at T0+hour."""
    planned = window(at(hours=start), at(hours=end))
    return change_requested(change_id, *cis, time=at(hours=hour), **{**SAFE, **planned, **fields})


def conflict_codes(findings: list[Finding]) -> list[str]:
    """The conflicts named by the conflicting_change reason of the one assessment."""
    (assessed,) = of_kind(findings, "change_assessed")
    details = [r.detail for r in assessed.data.reasons if r.code == "conflicting_change"]
    return [detail.removeprefix(EARLIER) for detail in details]


def test_overlapping_changes_on_a_shared_ci_conflict(feed, estate):
    """The later requested change gets conflicting_change and a change_conflict naming the other."""
    assert conflict_codes(feed(requested("CHG1", API, start=10, end=12))) == []
    found = feed(requested("CHG2", API, start=11, end=13, hour=1))
    assert conflict_codes(found) == ["CHG1: both change service/payments-api@prod"]
    (conflict,) = of_kind(found, "change_conflict")
    assert (conflict.subject, conflict.data.model_extra["conflicts_with"]) == ("CHG2", "CHG1")


@pytest.mark.parametrize(("first", "second"), [(API, PG), (PG, API)])
def test_a_direct_dependency_between_the_cis_is_a_conflict(feed, estate, first, second):
    """One change on payments-api, the other on the database it depends on: either order."""
    feed(requested("CHG1", first, start=10, end=12))
    found = feed(requested("CHG2", second, start=11, end=13, hour=1))
    assert conflict_codes(found) == [f"CHG1: {API} depends on {PG}"]


@pytest.mark.parametrize(("cis", "start", "end"), [(WEB, 11, 13), (API, 12, 14), (API, 8, 10)])
def test_unrelated_or_non_overlapping_changes_do_not_conflict(feed, estate, cis, start, end):
    """Another CI with no edge between them, or a window that only touches: no conflict."""
    feed(requested("CHG1", API, start=10, end=12))
    found = feed(requested("CHG2", cis, start=start, end=end, hour=1))
    assert conflict_codes(found) == [] and of_kind(found, "change_conflict") == []


@pytest.mark.parametrize("state", ["completed", "cancelled", "rejected"])
def test_no_conflict_once_the_other_change_is_closed(feed, estate, state):
    """A completed, cancelled or rejected change no longer conflicts with new ones."""
    feed(requested("CHG1", API, start=10, end=12))
    feed(change_updated("CHG1", time=at(hours=0.5), state=state))
    assert conflict_codes(feed(requested("CHG2", API, start=11, end=13, hour=1))) == []


def test_moving_a_window_into_conflict_reports_it_once(feed, estate):
    """An update that moves the later change onto the earlier one's window flags it once."""
    feed(requested("CHG1", API, start=10, end=12))
    assert conflict_codes(feed(requested("CHG2", API, start=20, end=22, hour=1))) == []
    moved = feed(change_updated("CHG2", time=at(hours=2), **window(at(hours=11), at(hours=13))))
    assert len(of_kind(moved, "change_conflict")) == 1
    again = feed(change_updated("CHG2", time=at(hours=3), title="renamed", canary=False))
    assert conflict_codes(again) == ["CHG1: both change service/payments-api@prod"]
    assert of_kind(again, "change_conflict") == []


def test_moving_the_earlier_change_onto_a_later_one_flags_the_later(feed, estate):
    """When the earlier requested change moves, the later one is reassessed and carries it."""
    feed(requested("CHG1", API, start=30, end=32))
    feed(requested("CHG2", API, start=10, end=12, hour=1))
    moved = feed(change_updated("CHG1", time=at(hours=2), **window(at(hours=11), at(hours=13))))
    assessed = {f.subject: f for f in of_kind(moved, "change_assessed")}
    assert set(assessed) == {"CHG1", "CHG2"}
    assert conflict_codes([assessed["CHG2"]]) == ["CHG1: both change service/payments-api@prod"]
    assert conflict_codes([assessed["CHG1"]]) == []
    (conflict,) = of_kind(moved, "change_conflict")
    assert (conflict.subject, conflict.data.model_extra["conflicts_with"]) == ("CHG2", "CHG1")


def test_conflict_candidates_come_from_the_index(engine, feed, estate):
    """Only changes on the CIs or their direct neighbours are candidates, not every open change."""
    for number in range(200):
        feed(observed(f"svc{number}", owner="o", time=at(hours=0.1)))
        feed(requested(f"OTHER{number}", f"service/svc{number}@prod", start=10, end=12))
    feed(requested("CHG1", PG, start=10, end=12))
    assert engine.state.open_changes.near(engine.state.cmdb, [API]) == {"CHG1"}
    assert len(engine.state.open_changes) == 201


def test_closed_changes_leave_the_index(engine, feed, estate):
    """Completing a change removes it from the open-changes index."""
    feed(requested("CHG1", API, start=10, end=12))
    feed(change_updated("CHG1", time=at(hours=1), state="completed"))
    assert engine.state.open_changes.near(engine.state.cmdb, [API]) == set()
    assert len(engine.state.open_changes) == 0


def test_changes_without_a_window_are_not_indexed(policy):
    """A change that plans no time cannot overlap anything, so it is not a candidate."""
    engine = Engine(policy)
    engine.apply(to_input(change_requested("CHG1", API, **SAFE)), at())
    assert len(engine.state.open_changes) == 0
