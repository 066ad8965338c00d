"""A retired CI keeps the ids merged into it: a late sighting under a merged-away name is
dropped, and the CI comes back with its ids when it is observed again. Each test runs live and
after a changelog rebuild (a restarted replica must judge alike)."""

from typing import Any

from tests.events import at, observed, retired
from tests.restarts import Run

KEPT, MERGED = "host/h1", "host/h2"


def host(name: str, hours: float, **fields: Any) -> dict[str, Any]:
    return observed(name, ci_type="host", environment=None, time=at(hours=hours),
                    id=f"{name}-{hours}", owner="team-infra", **fields)  # fmt: skip


def merged_then_retired(run: Run) -> None:
    """h2 shares h1's serial number (merged into h1), then h1 is retired at hour 2."""
    run.feed(host("h1", 0, identifiers={"serial_number": "SN1"}),
             host("h2", 1, identifiers={"serial_number": "SN1"}),
             retired("host", "h1", environment=None, time=at(hours=2), id="retire"))  # fmt: skip
    run.restart()


def test_a_late_sighting_of_a_merged_away_name_does_not_come_back_as_a_new_ci(run: Run):
    merged_then_retired(run)
    assert run.feed(host("h2", 1.5)) == []
    assert list(run.engine.state.cmdb.graph.nodes) == []
    assert run.engine.state.cmdb.resolve(MERGED) == KEPT


def test_a_retired_ci_observed_again_comes_back_with_the_ids_merged_into_it(run: Run):
    merged_then_retired(run)
    run.feed(host("h1", 3))
    run.restart()
    cmdb = run.engine.state.cmdb
    record = cmdb.get(KEPT)
    assert record is not None and record.aliases == {MERGED}
    assert cmdb.resolve(MERGED) == KEPT
    run.feed(host("h2", 4))
    assert list(cmdb.graph.nodes) == [KEPT]


def test_a_later_sighting_of_a_merged_away_name_brings_the_ci_back(run: Run):
    merged_then_retired(run)
    run.feed(host("h2", 3))
    run.restart()
    cmdb = run.engine.state.cmdb
    assert list(cmdb.graph.nodes) == [KEPT]
    record = cmdb.get(MERGED)
    assert record is not None and record.id == KEPT and record.aliases == {MERGED}
