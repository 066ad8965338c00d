"""Strong-identifier merges hold across a restart: a retired CI keeps the ids merged into it (a
late sighting under a merged-away name is dropped, the CI comes back with its ids), brings them
along when a live CI's identifier claims it, and a CI is found by its identifiers' current
values only. Each test runs live and after a changelog rebuild (a restarted replica must judge
alike)."""

from typing import Any

from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine.apply import Engine
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


def test_a_retired_ci_merged_into_a_live_one_brings_the_ids_merged_into_it(run: Run):
    """h1 merged into h2, h2 retired; h0 then reports h2's name with its own serial number: h2
    joins h0, and a sighting of h1 lands on h0 too (not on a CI h2 brought back)."""
    run.feed(host("h2", 0, identifiers={"serial_number": "SN0"}),
             host("h1", 0.5, identifiers={"serial_number": "SN0"}),
             retired("host", "h1", environment=None, time=at(hours=1), id="retire"),
             host("h0", 2, identifiers={"serial_number": "SN1"}),
             host("h2", 3, identifiers={"serial_number": "SN1"}))  # fmt: skip
    run.restart()
    run.feed(host("h1", 4))
    cmdb = run.engine.state.cmdb
    assert list(cmdb.graph.nodes) == ["host/h0"]
    record = cmdb.get("host/h1")
    assert record is not None and record.id == "host/h0"
    assert record.aliases == {"host/h1", "host/h2"}


def test_a_ci_is_found_by_the_current_value_of_its_identifier_only(run: Run):
    """h1's serial number changes from SN1 to SN0: a CI reporting SN1 later is a CI of its own."""
    run.feed(host("h1", 0, identifiers={"serial_number": "SN1"}),
             host("h1", 1, identifiers={"serial_number": "SN0"}))  # fmt: skip
    run.restart()
    run.feed(host("h0", 2, identifiers={"serial_number": "SN1"}))
    assert sorted(run.engine.state.cmdb.graph.nodes) == ["host/h0", "host/h1"]


def chained_merges() -> tuple[Engine, list[changelog.Entry]]:
    """h0 merged into h2 (serial SN1), then h2 into h1 (serial SN0), a transaction each; and
    the changelog in an order cmdb.state's partitions may be read in: h1's last record before
    h2's older ones, which still list h0 and SN1 (h2's tombstone gives them up after)."""
    live = Run(rebuild=False)
    for sighting in (host("h0", 0), host("h2", 0, identifiers={"serial_number": "SN1"}),
                     host("h0", 1, identifiers={"serial_number": "SN1"}),
                     host("h1", 1, identifiers={"serial_number": "SN0"}),
                     host("h0", 2, identifiers={"serial_number": "SN0"})):  # fmt: skip
        live.feed(sighting)
    first = {KEPT: 0, MERGED: 1}  # a stable sort keeps each key's own order, as a partition does
    return live.engine, sorted(live.entries, key=lambda entry: first.get(entry[0][3:], 2))


def test_merges_hold_whatever_order_the_state_partitions_are_read_in() -> None:
    """Read out of order, h0 and h2 still lead to h1, and the serial finds it."""
    live, read = chained_merges()
    cmdb = live.state.cmdb
    assert dict(cmdb.aliases) == {"host/h0": KEPT, MERGED: KEPT}
    rebuilt = Engine(live.policy)
    changelog.rebuild(rebuilt, read)
    again = rebuilt.state.cmdb
    assert dict(again.aliases) == dict(cmdb.aliases)
    assert (
        dict(again.strong_ids) == dict(cmdb.strong_ids) == {("host", "serial_number", "SN0"): KEPT}
    )
    assert not again.aliases.contested and not again.strong_ids.contested
