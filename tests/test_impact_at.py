"""Impact at a time (CONTRACT 10): ``/api/cis/{id}/impact?at=`` is the blast radius over the
edges that stood then, by event time; older than ``history.edge_retention`` is refused (410), a
bad ``at`` is a 400 naming the parameter; live and after a rebuild from the changelog alike."""

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cmdb_worker.rules.policy import parse_policy
from cmdb_worker.worker.api import Api, BadRequest, Gone
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.http import StatusServer
from tests.events import at, iso, observed, retired
from tests.governance_helpers import payments_estate
from tests.restarts import Run
from tests.test_http import Get, http_get

PG = "database/payments-pg@prod"
NOW = at(days=3)


def api_of(engine: Engine, now: datetime = NOW) -> Api:
    return Api(engine, threading.RLock(), lambda: now)


def impact(run: Run, when: datetime | None, ci: str = PG) -> dict[str, Any]:
    """``/api/cis/{ci}/impact[?at=when]`` as the run's engine answers it (restarted if rebuilt)."""
    run.restart()
    query = {"at": [iso(when)]} if when else {}
    document: dict[str, Any] = json.loads(api_of(run.engine).get(f"cis/{ci}/impact", query)[1])
    return document


def dependents(document: dict[str, Any]) -> list[tuple[str, int]]:
    return [(dependent["id"], dependent["hops"]) for dependent in document["dependents"]]


def an_edge_that_comes_and_goes(run: Run) -> None:
    """The payments estate at T0, and orders-api (first seen then with no relations) depending on
    payments-pg from day 1 to day 2, when it reports its whole (empty) set of relations."""
    run.feed(*payments_estate(), observed("orders-api", owner="team-orders"))
    run.feed(observed("orders-api", owner="team-orders", time=at(days=1),
                      relations=[("depends_on", PG)]))  # fmt: skip
    run.feed(observed("orders-api", owner="team-orders", time=at(days=2), complete=True))


BEFORE = [("service/payments-api@prod", 1), ("service/checkout-web@prod", 2)]


def test_impact_before_during_and_after_an_edge_differs_as_the_graph_did(run: Run) -> None:
    """Before the edge appeared the radius is the estate's two, while it stood orders-api is in
    it too, after it went it is two again; before anything was seen it is empty."""
    an_edge_that_comes_and_goes(run)
    assert dependents(impact(run, at(hours=12))) == BEFORE
    during = impact(run, at(days=1, hours=12))
    assert dependents(during) == [BEFORE[0], ("service/orders-api@prod", 1), BEFORE[1]]
    assert during["at"] == at(days=1, hours=12).isoformat() and during["count"] == 3
    assert dependents(impact(run, at(days=2, hours=12))) == BEFORE
    assert impact(run, at(hours=-1))["count"] == 0


def test_without_at_the_impact_is_the_graph_as_it_stands(run: Run) -> None:
    """No ``at``: today's blast radius, as before (no ``at`` field in the answer)."""
    an_edge_that_comes_and_goes(run)
    document = impact(run, None)
    assert dependents(document) == BEFORE and "at" not in document


def test_a_retired_dependent_counts_while_it_stood(run: Run) -> None:
    """checkout-web retired on day 2 is in payments-pg's radius on day 1 (marked gone from the
    graph) and not on day 3."""
    run.feed(*payments_estate())
    run.feed(retired("service", "checkout-web", environment="prod", time=at(days=2)))
    day_one = impact(run, at(days=1))["dependents"]
    assert [(d["id"], d.get("in_graph", True)) for d in day_one] == [
        ("service/payments-api@prod", True), ("service/checkout-web@prod", False),
    ]  # fmt: skip
    assert dependents(impact(run, at(days=3))) == BEFORE[:1]


def test_a_merged_ci_answers_with_the_edges_of_every_id_merged_into_it(run: Run) -> None:
    """api depends on payments-db, which on day 1 turns out (same serial number) to be pg-main:
    pg-main's radius holds api before the merge (through the merged-away id) and after it
    (through the moved edge), asked under either id."""
    serial = {"identifiers": {"serial_number": "SN-1"}}
    run.feed(
        observed("payments-db", ci_type="database", owner="dba"),
        observed("pg-main", ci_type="database", owner="dba", **serial),
        observed("api", owner="t", relations=[("depends_on", "database/payments-db@prod")]),
    )
    run.feed(observed("payments-db", ci_type="database", owner="dba", time=at(days=1), **serial))
    for ci in ("database/pg-main@prod", "database/payments-db@prod"):
        for moment in (at(hours=12), at(days=2)):
            assert dependents(impact(run, moment, ci)) == [("service/api@prod", 1)], (ci, moment)


def test_a_graph_loaded_once_keeps_no_intervals() -> None:
    """Edges that arrive with their CI's first sighting cost no interval; a later edge does, and
    its removal closes it."""
    run = Run(rebuild=False)
    run.feed(*payments_estate())
    assert run.engine.state.edge_changes == {}
    an_edge_that_comes_and_goes(run)
    changed = run.engine.state.edge_changes["service/orders-api@prod"]
    assert changed.targets == {PG: [(at(days=1), at(days=2))]}


def test_a_time_older_than_the_edge_retention_is_refused_saying_the_retention(run: Run) -> None:
    """``at`` before now minus history.edge_retention (30d) is Gone, naming the key and value."""
    an_edge_that_comes_and_goes(run)
    with pytest.raises(Gone, match=r"history\.edge_retention: 30d"):
        api_of(run.engine).get(f"cis/{PG}/impact", {"at": [iso(NOW - timedelta(days=31))]})


@pytest.mark.parametrize("text", ["yesterday", "2026-11-20T10:00:00", "2026-11-20", ""])
def test_a_bad_at_is_refused_naming_the_parameter(text: str) -> None:
    """An ``at`` that is no RFC 3339 time with an offset is a BadRequest naming ``at``."""
    run = Run(rebuild=False)
    run.feed(*payments_estate())
    with pytest.raises(BadRequest, match=r"^at must be an RFC 3339 time"):
        api_of(run.engine).get(f"cis/{PG}/impact", {"at": [text]})


def test_expired_intervals_are_dropped_and_answers_within_retention_hold() -> None:
    """With history.edge_retention 1d, the orders-api interval (ended day 2) is dropped by day 4
    (its origin's deadline), and the radius half a day before then is still the estate's two."""
    run = Run(rebuild=True, policy=parse_policy({"history": {"edge_retention": "1d"}}))
    an_edge_that_comes_and_goes(run)
    run.restart()
    run.tick(at(days=4))
    assert run.engine.state.edge_changes == {}
    api = api_of(run.engine, at(days=4))
    document = json.loads(api.get(f"cis/{PG}/impact", {"at": [iso(at(days=3, hours=12))]})[1])
    assert dependents(document) == BEFORE


@pytest.fixture
def get() -> Iterator[Get]:
    """GET a path of a StatusServer answering from the coming-and-going estate as of NOW."""
    run = Run(rebuild=False)
    an_edge_that_comes_and_goes(run)
    server = StatusServer(
        "127.0.0.1", 0, CollectorRegistry(), api_of(run.engine), lambda: True, lambda: True
    ).start()
    try:
        yield lambda path: http_get(f"http://127.0.0.1:{server.port}{path}")
    finally:
        server.stop()


def test_over_http_at_answers_200_and_refusals_are_410_and_400(get: Get) -> None:
    """Over HTTP: a good ``at`` is 200, one past the retention 410, a bad one 400, JSON errors."""
    path = f"/api/cis/{PG}/impact?at="
    assert get(path + "2026-11-21T12:00:00Z").json()["count"] == 3
    assert get(path + "2026-11-21T12:00:00%2B00:00").json()["count"] == 3
    gone, bad = get(path + "2025-01-01T00:00:00Z"), get(path + "soon")
    assert (gone.status, bad.status) == (410, 400)
    assert "history.edge_retention" in gone.json()["error"] and "at" in bad.json()["error"]
