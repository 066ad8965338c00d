"""Which source wins an attribute (CONTRACT 9.6): a lower source never overwrites a higher one's
value, each source's value is kept so a retraction falls back to the next, and disagreement on
owner or criticality is a finding. Each test runs live and after a changelog rebuild."""

from typing import Any

import pytest

from cmdb_worker.rules.policy import parse_policy
from tests.events import at, observed
from tests.governance_helpers import deploy
from tests.restarts import Run, of_kind

TOP, MIDDLE, LOW, SHEET = "/discovery/top", "/discovery/middle", "/discovery/low", "/import/sheet"
API, KIND = "service/api@prod", "ci_attribute_conflict"
RANKED = {"identification": {"precedence": {"owner": [TOP, MIDDLE, LOW], "*": [TOP, MIDDLE]}}}


@pytest.fixture(params=[False, True], ids=["live", "rebuilt"])
def run(request: pytest.FixtureRequest) -> Run:
    """A run under a policy ranking owner top > middle > low, any other attribute top > middle."""
    return Run(request.param, parse_policy(RANKED))


def report(source: str, hours: float, **fields: Any) -> dict[str, Any]:
    return observed("api", source=source, time=at(hours=hours), **fields)


def owner(run: Run) -> str | None:
    return run.engine.state.cmdb.get(API).owner


def test_a_lower_source_cannot_overwrite_a_higher_ones_value(run: Run):
    """An unlisted spreadsheet import reporting an old owner and criticality 4 after the top
    source changes neither; it fills in only what no higher source gives."""
    run.feed(report(TOP, 0, owner="team-payments", criticality=1))
    run.restart()
    run.feed(report(SHEET, 1, owner="team-old", criticality=4, business_service="Payments"))
    record = run.engine.state.cmdb.get(API)
    assert (record.owner, record.criticality, record.business_service) == (
        "team-payments", 1, "Payments",
    )  # fmt: skip


def test_three_sources_rank_and_the_top_one_retracting_falls_back(run: Run):
    """With owner ranked top > middle > low: low's value counts until middle gives one, a later
    low report changes nothing, top wins once it reports, and top retracting (owner: null)
    leaves middle's value in force, across a restart."""
    run.feed(report(LOW, 0, owner="team-low"))
    assert owner(run) == "team-low"
    run.feed(report(MIDDLE, 1, owner="team-middle"), report(LOW, 2, owner="team-low-2"))
    assert owner(run) == "team-middle"
    run.feed(report(TOP, 3, owner="team-top"))
    run.restart()
    assert owner(run) == "team-top"
    run.feed(report(TOP, 4, owner=None))
    run.restart()
    assert owner(run) == "team-middle"
    run.feed(report(MIDDLE, 5, owner=None))
    assert owner(run) == "team-low-2"


@pytest.mark.parametrize("rebuild", [False, True], ids=["live", "rebuilt"])
def test_without_a_ranking_the_latest_report_wins(rebuild: bool):
    """An attribute the policy does not rank takes the latest observation's value, as before."""
    run = Run(rebuild, parse_policy({}))
    run.feed(report(TOP, 0, owner="team-a"))
    run.restart()
    run.feed(report(SHEET, 1, owner="team-b"))
    assert owner(run) == "team-b"


def test_sources_disagreeing_on_owner_and_criticality_are_findings(run: Run):
    """Two sources holding different owners and criticalities give one ci_attribute_conflict per
    attribute, naming each source's value and the winner; agreement later clears it, and a
    new disagreement is reported again."""
    run.feed(report(TOP, 0, owner="team-payments", criticality=1))
    found = run.feed(report(SHEET, 1, owner="team-old", criticality=4))
    run.restart()
    again = run.feed(report(SHEET, 2, owner="team-old", criticality=4))
    conflicts = {f.details()["attribute"]: f.details() for f in of_kind(found, KIND)}
    assert conflicts["owner"]["values"] == {SHEET: "team-old", TOP: "team-payments"}
    assert conflicts["owner"]["winner"] == TOP
    assert conflicts["criticality"]["values"] == {SHEET: 4, TOP: 1}
    assert of_kind(again, KIND) == []
    run.feed(report(SHEET, 3, owner="team-payments", criticality=1))
    renewed = run.feed(report(SHEET, 4, owner="team-x", criticality=1))
    assert [f.details()["attribute"] for f in of_kind(renewed, KIND)] == ["owner"]


def test_a_deploy_without_an_owner_retracts_nothing(run: Run):
    """A pipeline that once sent an owner keeps it when a later deploy carries none: only a
    discovery report with the attribute set to null is a retraction."""
    run.feed(deploy("api", id="d1", time=at(hours=0), change_id=None, owner="team-p"))
    run.restart()
    run.feed(deploy("api", id="d2", time=at(hours=1), change_id=None))
    assert owner(run) == "team-p"


def test_any_other_attribute_follows_the_star_ranking(run: Run):
    """With ``*`` ranked top > middle, an ``attributes`` entry from middle does not overwrite
    top's, and falls back to it when top sends the entry as null."""
    run.feed(report(MIDDLE, 0, attributes={"replicas": 2}))
    run.feed(report(TOP, 1, attributes={"replicas": 6}))
    run.feed(report(MIDDLE, 2, attributes={"replicas": 3, "zone": "b"}))
    run.restart()
    assert run.engine.state.cmdb.get(API).attributes == {"replicas": 6, "zone": "b"}
    run.feed(report(TOP, 3, attributes={"replicas": None}))
    assert run.engine.state.cmdb.get(API).attributes == {"replicas": 3, "zone": "b"}
