"""Deploy authorisation (contract 9.1): state, scope, planned window and freeze, each a reason."""

from datetime import datetime, timedelta
from typing import get_args

import pytest

from cmdb_worker.rules.authorization import DeployCheck
from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker.engine.apply import Engine
from tests.events import T0, at, observed, to_input
from tests.governance_helpers import (
    SAFE,
    change_requested,
    change_updated,
    deploy,
    lesson_updated,
    of_kind,
    payments_estate,
)
from tests.governance_policy import governance_policy, window

API, WEB = "service/payments-api@prod", "service/checkout-web@prod"
IN_FREEZE = datetime.fromisoformat("2026-11-25T12:00:00+00:00")


@pytest.fixture
def policy() -> Policy:
    return governance_policy()


def reasons_of(findings: list[Finding]) -> list[str]:
    (finding,) = of_kind(findings, "deploy_unauthorized")
    return [reason.code for reason in finding.data.reasons]


def approved(change_id: str = "CHG1", *cis: str, **fields) -> dict:
    """An approved change on ``cis`` (payments-api by default), planned for T0+1h to T0+3h."""
    planned = window(at(hours=1), at(hours=3))
    terms = {"state": "approved", **SAFE, **planned, **fields}
    return change_requested(change_id, *(cis or (API,)), **terms)


def deploy_api(when: datetime = T0 + timedelta(hours=2), id: str = "d1", **custom) -> dict:
    return deploy("payments-api", id=id, time=when, **{"change_id": "CHG1", **custom})


def test_a_deploy_covered_by_its_change_is_authorised(feed):
    """Approved, in scope, inside the window, no freeze: no deploy_unauthorized."""
    feed(*payments_estate(), approved())
    assert of_kind(feed(deploy_api()), "deploy_unauthorized") == []


CASES = [
        (None, {"change_id": None}, at(hours=2), "no_change"),
        (None, {"change_id": "CHG404"}, at(hours=2), "unknown_change"),
        ({"state": "requested"}, {}, at(hours=2), "change_not_approved"),
        ({"cis": [WEB]}, {}, at(hours=2), "change_out_of_scope"),
        ({}, {}, at(hours=9), "outside_change_window"),
        (window(IN_FREEZE - timedelta(hours=1), IN_FREEZE + timedelta(hours=1)), {}, IN_FREEZE,
         "in_freeze_window"),
]  # fmt: skip
"""(change terms or None for no change, deploy customData, deploy time, the one failing code)"""


@pytest.mark.parametrize(("change", "custom", "when", "code"), CASES)
def test_each_failing_check_is_its_own_reason(feed, change, custom, when, code):
    """One failing check gives a deploy_unauthorized with exactly that reason code."""
    feed(*payments_estate())
    if change is not None:
        cis = change.pop("cis", [API])
        feed(approved("CHG1", *cis, **change))
    assert reasons_of(feed(deploy_api(when, **custom))) == [code]


def test_every_reason_code_is_proven_on_its_own():
    """Each code of the DeployCheck vocabulary has its own case above, and no case is extra."""
    assert sorted(code for *_, code in CASES) == sorted(get_args(DeployCheck))


def test_all_failing_checks_come_in_one_finding(feed):
    """Not approved, out of scope, outside the window and in a freeze: four reasons, one finding."""
    feed(*payments_estate(), approved("CHG1", WEB, state="requested"))
    found = feed(deploy_api(IN_FREEZE))
    assert reasons_of(found) == [
        "change_not_approved",
        "change_out_of_scope",
        "outside_change_window",
        "in_freeze_window",
    ]
    assert len(of_kind(found, "deploy_unauthorized")) == 1


def test_no_change_in_a_freeze_gives_both_reasons(feed):
    """A deploy with no change during a freeze lacks a change and an emergency change."""
    assert reasons_of(feed(deploy_api(IN_FREEZE, change_id=None))) == [
        "no_change",
        "in_freeze_window",
    ]


def test_an_emergency_change_may_deploy_in_a_freeze(feed):
    """Inside a freeze, a deploy under an approved emergency change covering it is authorised."""
    planned = window(IN_FREEZE - timedelta(hours=1), IN_FREEZE + timedelta(hours=1))
    feed(*payments_estate(), approved("CHG1", type="emergency", **planned))
    assert of_kind(feed(deploy_api(IN_FREEZE)), "deploy_unauthorized") == []


def test_a_freeze_holds_only_in_its_environments(feed):
    """A freeze listing staging only does not stop a prod deploy."""
    staging_only = governance_policy(
        freeze_windows=[{"name": "qa", "start": "2026-11-25T00:00:00Z",
                         "end": "2026-11-27T00:00:00Z", "environments": ["Staging"]}]
    )  # fmt: skip
    engine = Engine(staging_only)
    planned = window(IN_FREEZE - timedelta(hours=1), IN_FREEZE + timedelta(hours=1))
    for message in [*payments_estate(), approved("CHG1", **planned)]:
        engine.apply(to_input(message), T0)
    found = engine.apply(to_input(deploy_api(IN_FREEZE)), IN_FREEZE) or []
    assert of_kind(found, "deploy_unauthorized") == []


@pytest.mark.parametrize(
    ("when", "authorised"),
    [
        (at(hours=0), True),  # exactly planned_start - slack (1h)
        (at(hours=0) - timedelta(seconds=1), False),
        (at(hours=4), True),  # exactly planned_end + slack
        (at(hours=4) + timedelta(seconds=1), False),
    ],
)
def test_window_edges_include_the_slack(feed, when, authorised):
    """The window is [start - slack, end + slack], both edges included."""
    feed(*payments_estate(), approved())
    found = of_kind(feed(deploy_api(when)), "deploy_unauthorized")
    assert [r.code for f in found for r in f.data.reasons] == (
        [] if authorised else ["outside_change_window"]
    )


def test_scope_follows_aliases_and_merges(feed, engine):
    """A change naming a CI's old name covers a deploy to the name it was merged into, and back."""
    feed(observed("payments", owner="t", identifiers={"fqdn": "pay.example"}, id="o1"),
         observed("payments-api", owner="t", identifiers={"fqdn": "pay.example"}, id="o2",
                  time=at(hours=0.5)))  # fmt: skip
    assert engine.state.cmdb.resolve("service/payments-api@prod") == "service/payments@prod"
    feed(approved("CHG1", "service/payments@prod"), approved("CHG2", API))
    assert of_kind(feed(deploy_api(id="d1")), "deploy_unauthorized") == []
    found = feed(deploy("payments", id="d2", time=at(hours=2), change_id="CHG2"))
    assert of_kind(found, "deploy_unauthorized") == []


def test_scope_requires_the_same_environment(feed):
    """A change on payments-api in staging does not cover a deploy of payments-api in prod."""
    feed(*payments_estate(), approved("CHG1", "service/payments-api@staging"))
    assert reasons_of(feed(deploy_api())) == ["change_out_of_scope"]


def test_a_change_is_judged_as_it_stood_when_the_deploy_happened(feed):
    """Scope widened and window moved by an update timed after the deploy do not cover it,
    even when the deploy arrives after the update; deploys after the update are covered."""
    feed(*payments_estate(), approved("CHG1", WEB))
    widened = [{"type": "service", "name": n, "environment": "prod"}
               for n in ("checkout-web", "payments-api")]  # fmt: skip
    feed(change_updated("CHG1", time=at(hours=5), cis=widened,
                        **window(at(hours=5), at(hours=30))))  # fmt: skip
    assert of_kind(feed(deploy_api(at(hours=20), id="after")), "deploy_unauthorized") == []
    found = feed(deploy_api(at(hours=2), id="late-arrival"))
    assert reasons_of(found) == ["change_out_of_scope"]


def test_a_later_update_does_not_rejudge_a_deploy(feed, engine):
    """After the deploy is judged, widening the change's scope changes nothing about it."""
    feed(*payments_estate(), approved("CHG1", WEB))
    first = feed(deploy_api())
    widened = [{"type": "service", "name": "payments-api", "environment": "prod"}]
    later = feed(change_updated("CHG1", time=at(hours=3), cis=widened))
    assert reasons_of(first) == ["change_out_of_scope"]
    assert of_kind(later, "deploy_unauthorized") == []
    assert engine.state.histories[API].deploys[-1].authorized is False


def test_a_redelivered_deploy_produces_nothing_new(engine):
    """The same unauthorized deploy applied twice: findings once, one lesson occurrence."""
    for message in [*payments_estate(), approved("CHG1", WEB)]:
        engine.apply(to_input(message), T0)
    message = to_input(deploy_api())
    assert len(of_kind(engine.apply(message, at(hours=2)) or [], "deploy_unauthorized")) == 1
    assert engine.apply(message, at(hours=2, days=1)) is None
    (lesson,) = engine.state.lessons.values()
    assert (lesson.rule, lesson.occurrences) == ("unauthorized_deploys", 1)


def test_unauthorized_deploy_lessons_dedup_and_reopen(feed, engine):
    """Two out-of-scope deploys make one lesson (2 occurrences); a third after Done reopens it."""
    feed(*payments_estate(), approved("CHG1", WEB))
    feed(deploy_api(id="d1"), deploy_api(at(hours=2.5), id="d2"))
    (lesson,) = engine.state.lessons.values()
    assert (lesson.occurrences, lesson.status) == (2, "Open")
    assert "not among the CIs of change CHG1" in lesson.description
    feed(lesson_updated(lesson.id, id="done", time=at(hours=2.6), status="Done"))
    found = feed(deploy_api(at(hours=2.7), id="d3"))
    (filed,) = of_kind(found, "lesson_filed")
    assert filed.data.model_extra["reopened"] is True
    assert engine.state.lessons[lesson.id].occurrences == 3
