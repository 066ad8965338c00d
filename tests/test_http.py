"""The HTTP surface, in process: the read-only JSON API over a fed engine, and honest probes.

Each test serves a real ``StatusServer`` on a free loopback port and talks HTTP to it; the
engine is fed with the tests' event builders, no broker involved.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from cmdb_worker.rules.policy import Policy
from cmdb_worker.rules.risk import blast_radius
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.api import Api
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.export import lessons_yaml
from cmdb_worker.worker.http import StatusServer, liveness
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.runner import Runner
from cmdb_worker.worker.settings import Settings
from tests.conftest import Feed
from tests.events import at, heartbeats, observed
from tests.governance_helpers import SAFE, change_requested, change_updated, deploy, payments_estate

NOW = at(hours=1)
PAYMENTS_API = "service/payments-api@prod"


@dataclass(frozen=True)
class Reply:
    url: str
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Get = Callable[[str], Reply]


def http_get(url: str) -> Reply:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return Reply(url, response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        return Reply(url, error.code, error.headers["Content-Type"], error.read())


def serve(api: Api, is_live: Callable[[], bool], is_ready: Callable[[], bool]) -> Iterator[Get]:
    server = StatusServer("127.0.0.1", 0, CollectorRegistry(), api, is_live, is_ready).start()
    try:
        yield lambda path: http_get(f"http://127.0.0.1:{server.port}{path}")
    finally:
        server.stop()


@dataclass
class ManualClock:
    now: datetime = NOW


@pytest.fixture
def clock() -> ManualClock:
    """The API's clock: ``NOW`` unless a test moves it."""
    return ManualClock()


@pytest.fixture
def get(engine: Engine, clock: ManualClock) -> Iterator[Get]:
    """GET a path of a StatusServer answering from ``engine`` as of ``clock.now``."""
    api = Api(engine, threading.RLock(), lambda: clock.now)
    yield from serve(api, lambda: True, lambda: True)


# ------------------------------------------------------------------------------ /api/cis
def test_ci_shows_its_relations_and_dependents(feed: Feed, get: Get) -> None:
    """/api/cis/{id} answers the CI with its outgoing relations and the CIs that depend on it."""
    feed(*payments_estate())
    reply = get(f"/api/cis/{PAYMENTS_API}")
    assert (reply.status, reply.content_type) == (200, "application/json")
    document = reply.json()
    assert (document["id"], document["owner"], document["criticality"]) == (
        PAYMENTS_API, "team-payments", 1,
    )  # fmt: skip
    assert document["relations"] == [{"type": "depends_on", "target": "database/payments-pg@prod"}]
    assert document["dependents"] == [{"type": "depends_on", "source": "service/checkout-web@prod"}]


def test_ci_id_may_be_percent_encoded(feed: Feed, get: Get) -> None:
    """A CI id sent with its / and @ percent-encoded names the same CI as the raw id."""
    feed(*payments_estate())
    assert (
        get("/api/cis/service%2Fpayments-api%40prod").json()
        == get(f"/api/cis/{PAYMENTS_API}").json()
    )


def test_ci_is_found_by_an_alias(feed: Feed, get: Get) -> None:
    """A CI merged by a strong identifier is answered under its old name too, as the kept CI."""
    uid = {"identifiers": {"k8s_uid": "8c1f0e2a"}}
    feed(observed("pay-api", **uid), observed("payments-api", time=at(hours=0.5), **uid))
    document = get("/api/cis/service/payments-api@prod").json()
    assert document["id"] == "service/pay-api@prod"
    assert document["aliases"] == [PAYMENTS_API]


def test_unknown_ci_and_unknown_path_are_404_json(feed: Feed, get: Get) -> None:
    """An unknown CI id, an impact of an unknown CI and an unknown API path answer 404 JSON."""
    feed(*payments_estate())
    for path in ("/api/cis/service/nope@prod", "/api/cis/service/nope@prod/impact",
                 "/api/cis/", "/api/nothing", "/elsewhere"):  # fmt: skip
        reply = get(path)
        assert (reply.status, reply.content_type) == (404, "application/json"), path
        assert reply.json()["error"]


# ------------------------------------------------------------------------------ impact
def test_impact_is_the_blast_radius_nearest_first(feed: Feed, get: Get, engine: Engine) -> None:
    """/api/cis/{id}/impact lists every direct and transitive dependent with its hop count."""
    feed(*payments_estate())
    document = get("/api/cis/database/payments-pg@prod/impact").json()
    assert (document["ci"], document["count"], document["bounded"]) == (
        "database/payments-pg@prod",
        2,
        False,
    )
    assert [(d["id"], d["hops"], d["criticality"]) for d in document["dependents"]] == [
        (PAYMENTS_API, 1, 1), ("service/checkout-web@prod", 2, 1),
    ]  # fmt: skip
    depth = engine.policy.graph.blast_radius_depth
    expected = blast_radius(engine.state.cmdb.graph, [CIId("database/payments-pg@prod")], depth)
    assert {d["id"]: d["hops"] for d in document["dependents"]} == expected


def test_impact_of_a_ci_with_no_dependents_is_empty(feed: Feed, get: Get) -> None:
    """A CI nothing depends on has an empty blast radius, not a 404."""
    feed(*payments_estate())
    document = get("/api/cis/service/checkout-web@prod/impact").json()
    assert (document["count"], document["dependents"]) == (0, [])


def test_a_ci_named_impact_is_still_a_ci(feed: Feed, get: Get) -> None:
    """A CI whose id ends in /impact is answered as that CI when no CI is named by the rest."""
    feed(observed("impact", environment=None, owner="team-x"))
    document = get("/api/cis/service/impact").json()
    assert (document["id"], document["owner"]) == ("service/impact", "team-x")


def test_an_encoded_slash_tells_a_ci_from_an_impact(feed: Feed, get: Get) -> None:
    """When both service/a and service/a/impact exist, /impact is the blast radius of service/a
    and an encoded slash (a%2Fimpact) names the CI service/a/impact."""
    feed(observed("a", environment=None), observed("a/impact", environment=None))
    assert get("/api/cis/service/a/impact").json()["ci"] == "service/a"
    assert get("/api/cis/service/a%2Fimpact").json()["id"] == "service/a/impact"


# ------------------------------------------------------------------------------ /api/stale
def test_stale_lists_only_the_cis_marked_stale(
    feed: Feed, get: Get, engine: Engine, clock: ManualClock
) -> None:
    """/api/stale lists the CIs the staleness deadlines marked stale, and nothing fresh."""
    feed(*payments_estate())
    assert get("/api/stale").json() == []
    clock.now = at(days=2)
    feed(*heartbeats(clock.now))
    stale = get("/api/stale").json()
    assert [ci["id"] for ci in stale] == ["service/checkout-web@prod", PAYMENTS_API]
    assert all(ci["stale"] for ci in stale)


# ------------------------------------------------------------------------------ /api/changes
def test_change_shows_its_latest_assessment(feed: Feed, get: Get) -> None:
    """/api/changes/{id} answers the change's current fields and its latest risk assessment."""
    feed(*payments_estate())
    feed(change_requested("CHG1", "database/payments-pg@prod", time=at(hours=0.1)))
    first = get("/api/changes/CHG1").json()["assessment"]
    feed(change_updated("CHG1", time=at(hours=0.2), **SAFE))
    document = get("/api/changes/CHG1").json()
    assessment = document["assessment"]
    assert (document["change_id"], document["rollback_plan"]) == ("CHG1", "helm rollback")
    assert (first["revision"], assessment["revision"]) == (1, 2)
    assert assessment["score"] < first["score"]
    assert "no_rollback_plan" not in {reason["code"] for reason in assessment["reasons"]}
    assert assessment["blast_radius"] == 2 and assessment["route"] in {"fast_track", "cab"}


def test_unknown_change_is_404(get: Get) -> None:
    """An unknown change id answers 404 JSON naming it."""
    reply = get("/api/changes/CHG-NOPE")
    assert reply.status == 404 and "CHG-NOPE" in reply.json()["error"]


# ------------------------------------------------------------------------------ /api/lessons
@pytest.fixture
def unauthorized(feed: Feed) -> None:
    """A prod deploy with no linked change: files an unauthorized_deploys lesson."""
    feed(*payments_estate(), deploy("payments-api", id="dep-1", time=at(hours=0.5)))


@pytest.mark.usefixtures("unauthorized")
def test_lessons_as_json(get: Get) -> None:
    """/api/lessons answers the register as JSON, register fields first."""
    reply = get("/api/lessons")
    assert (reply.status, reply.content_type) == (200, "application/json")
    (lesson,) = reply.json()["lessons_register"]
    assert list(lesson)[:8] == [
        "id", "title", "description", "impact", "owner", "action", "due", "status",
    ]  # fmt: skip
    assert (lesson["id"], lesson["rule"], lesson["status"]) == (
        "LL-0001", "unauthorized_deploys", "Open",
    )  # fmt: skip


@pytest.mark.usefixtures("unauthorized")
def test_lessons_as_yaml_is_the_exported_register(get: Get, engine: Engine) -> None:
    """/api/lessons?format=yaml answers exactly the register `lessons_yaml` exports."""
    reply = get("/api/lessons?format=yaml")
    assert (reply.status, reply.content_type) == (200, "application/yaml")
    assert reply.body.decode() == lessons_yaml(engine.state.lessons.values())
    assert yaml.safe_load(reply.body)["lessons_register"][0]["id"] == "LL-0001"


def test_lessons_in_an_unknown_format_is_400(get: Get) -> None:
    """An unknown ?format= answers 400 naming the formats there are."""
    reply = get("/api/lessons?format=xml")
    assert reply.status == 400 and "yaml" in reply.json()["error"]


def test_empty_register_is_an_empty_list(get: Get) -> None:
    """With no lessons, /api/lessons answers an empty register, not a 404."""
    assert get("/api/lessons").json() == {"lessons_register": []}


# ------------------------------------------------------------------------------ probes
@pytest.fixture
def runner(policy: Policy) -> Runner:
    """A Runner that has not started: no Kafka client is made until ``run()``."""
    return Runner(Settings(liveness_timeout_seconds=30), policy, Metrics(CollectorRegistry()))


@pytest.fixture
def probe(runner: Runner) -> Iterator[Get]:
    """A StatusServer whose probes are wired to ``runner`` as ``worker.service`` wires them."""
    api = Api(runner.engine, runner.lock, runner.clock.now)
    is_live = liveness(lambda: runner.last_progress, runner.settings.liveness_timeout_seconds)
    yield from serve(api, is_live, lambda: runner.ready)


def test_healthz_fails_when_the_loop_stops_progressing(runner: Runner, probe: Get) -> None:
    """/healthz is 200 while the loop progressed within the liveness timeout, 503 once it has
    not (judged on the monotonic clock), and 200 again when the loop progresses."""
    assert probe("/healthz").status == 200
    runner.last_progress = time.monotonic() - runner.settings.liveness_timeout_seconds - 1
    reply = probe("/healthz")
    assert (reply.status, reply.json()) == (503, {"status": "failing", "check": "live"})
    runner.last_progress = time.monotonic()
    assert probe("/healthz").status == 200


def test_readyz_waits_for_rebuild_and_the_group(runner: Runner, probe: Get) -> None:
    """/readyz is 503 until the state is rebuilt and the group has given the replica its
    assignment, then 200: also a standby's empty one (it serves reads from the whole graph)."""
    assert probe("/readyz").status == 503
    runner.rebuilt = True
    assert probe("/readyz").status == 503
    runner.joined = True
    assert not runner.assigned
    reply = probe("/readyz")
    assert (reply.status, reply.json()) == (200, {"status": "ok", "check": "ready"})


def test_metrics_are_served_in_the_format_asked_for(get: Get) -> None:
    """/metrics answers the classic text format by default, OpenMetrics when Accept asks for it."""
    assert get("/metrics").content_type.startswith("text/plain; version=0.0.4")
    request = urllib.request.Request(
        get("/metrics").url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().endswith(b"# EOF\n")
