"""Change risk from governance (contract 9.2-9.4): freezes, standard templates, stale dependents,
team history; bad windows refused; all of it the same after a changelog rebuild."""

from datetime import timedelta
from typing import Any

import pytest

from cmdb_worker.rules.policy import Policy, PolicyError
from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine import teams
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.kafka_clients import ownership
from tests.events import T0, at, observed, to_input
from tests.governance_helpers import (
    SAFE,
    change_requested,
    change_updated,
    deploy,
    of_kind,
    payments_estate,
)
from tests.governance_policy import FREEZE, governance_policy, policy_with, window
from tests.restarts import Run

API, PG, WEB = (
    "service/payments-api@prod", "database/payments-pg@prod", "service/checkout-web@prod"
)  # fmt: skip
FROZEN = window(at(days=5, hours=2), at(days=5, hours=3))
"""A planned window inside ``FREEZE``."""


@pytest.fixture
def policy() -> Policy:
    return governance_policy()


def assessed(findings: list[Finding]) -> Any:
    (finding,) = of_kind(findings, "change_assessed")
    return finding.data


def codes(findings: list[Finding]) -> list[str]:
    return [reason.code for reason in assessed(findings).reasons]


def test_a_change_planned_into_a_freeze_goes_to_cab(feed):
    """in_freeze_window with its policy points, naming the freeze; the route is cab."""
    feed(*payments_estate())
    data = assessed(feed(change_requested("CHG1", API, **SAFE, **FROZEN)))
    (reason,) = [reason for reason in data.reasons if reason.code == "in_freeze_window"]
    assert (reason.code, reason.points) == ("in_freeze_window", 30)
    assert "peak (2026-11-25T00:00:00+00:00" in reason.detail
    assert data.route == "cab"


def test_a_freeze_routes_to_cab_whatever_the_score():
    """With the freeze worth 0 points the change scores low, and still goes to cab."""
    policy = policy_with(
        governance={"freeze_windows": [FREEZE]}, risk={"weights": {"in_freeze_window": 0}}
    )
    engine = Engine(policy)
    engine.apply(to_input(observed("plain", owner="team-a")), T0)
    request = change_requested("CHG1", "service/plain@prod", **SAFE, **FROZEN)
    data = assessed(engine.apply(to_input(request), T0) or [])
    assert (data.score, data.level, data.route) == (0, "low", "cab")


def test_a_change_next_to_a_freeze_is_not_frozen(feed):
    """A window ending exactly as the freeze starts does not overlap it (half-open windows)."""
    planned = window(at(days=4, hours=13), at(days=4, hours=14))  # ends 2026-11-25T00:00Z
    assert "in_freeze_window" not in codes(feed(change_requested("CHG1", API, **SAFE, **planned)))
    frozen = window(at(days=4, hours=13), at(days=4, hours=14) + timedelta(seconds=1))
    assert "in_freeze_window" in codes(feed(change_requested("CHG2", API, **SAFE, **frozen)))


@pytest.mark.parametrize(
    ("template", "preapproved", "route"),
    [("scale-replicas", True, "fast_track"), ("hand-edit-prod", False, "fast_track")],
)
def test_standard_changes_from_listed_templates_are_preapproved(feed, template, preapproved, route):
    """A low-risk standard change is pre-approved only if its template is listed."""
    feed(*payments_estate())
    found = feed(change_requested("CHG1", API, type="standard", template=template, **SAFE))
    data = assessed(found)
    assert (data.preapproved, data.route, data.level) == (preapproved, route, "low")
    deployed = feed(deploy("payments-api", id="d1", time=at(hours=1), change_id="CHG1"))
    refused = of_kind(deployed, "deploy_unauthorized")
    unauthorized = [reason.code for finding in refused for reason in finding.data.reasons]
    assert unauthorized == ([] if preapproved else ["change_not_approved"])


def test_a_deploy_under_a_preapproved_change_implements_it(feed, engine):
    """The first deploy under a pre-approved standard change moves it to implementing."""
    feed(*payments_estate())
    feed(change_requested("CHG1", API, type="standard", template="scale-replicas", **SAFE))
    feed(deploy("payments-api", id="d1", time=at(hours=1), change_id="CHG1"))
    change = engine.state.changes["CHG1"]
    assert (change.request.state, change.implemented_at) == ("implementing", at(hours=1))


def test_a_preapproved_change_still_needs_scope_and_window(feed):
    """A pre-approved standard change does not cover another service, nor a deploy outside it."""
    feed(*payments_estate())
    planned = window(at(hours=1), at(hours=2))
    feed(change_requested("CHG1", API, type="standard", template="scale-replicas",
                          **SAFE, **planned))  # fmt: skip
    found = feed(deploy("checkout-web", id="d1", time=at(hours=9), change_id="CHG1"))
    (finding,) = of_kind(found, "deploy_unauthorized")
    assert [r.code for r in finding.data.reasons] == [
        "change_out_of_scope",
        "outside_change_window",
    ]


def test_a_risky_standard_change_is_not_preapproved(feed):
    """A standard change from a listed template that scores above low goes the normal way."""
    feed(*payments_estate())
    found = feed(change_requested("CHG1", PG, type="standard", template="scale-replicas",
                                  **{**SAFE, "rollback_plan": None}))  # fmt: skip
    data = assessed(found)
    assert (data.preapproved, data.route) == (False, "cab")


def test_a_cancelled_preapproved_change_authorises_nothing(feed):
    """Pre-approval covers a standard change while requested, not once it is cancelled."""
    feed(*payments_estate())
    feed(change_requested("CHG1", API, type="standard", template="scale-replicas", **SAFE))
    feed(change_updated("CHG1", time=at(hours=1), state="cancelled"))
    found = feed(deploy("payments-api", id="d1", time=at(hours=2), change_id="CHG1"))
    assert [r.code for r in of_kind(found, "deploy_unauthorized")[0].data.reasons] == [
        "change_not_approved"
    ]


def test_stale_dependents_raise_risk_with_count_and_first_ids(feed):
    """A blast radius holding stale CIs gives stale_dependents naming how many and the nearest."""
    feed(*payments_estate())
    for hours in range(4, 52, 4):  # the source stays alive, reporting only the database
        feed(observed("payments-pg", ci_type="database", owner="team-dba", time=at(hours)))
    found = feed(change_requested("CHG1", PG, time=at(days=2), **SAFE))
    (reason,) = [r for r in assessed(found).reasons if r.code == "stale_dependents"]
    assert reason.points == 10
    assert reason.detail.startswith("2 stale CIs in the blast radius")
    assert reason.detail.endswith(f"{API}, {WEB}")


def finished_changes(team: str, failed: int, total: int, day: float = 0) -> list[dict[str, Any]]:
    """``total`` changes of ``team`` finished on day ``day``; the first ``failed`` failed."""
    events = []
    for number in range(total):
        change_id = f"{team}-{day}-{number}"
        when = at(days=day, hours=number)
        outcome = "failed" if number < failed else "completed"
        events += [
            change_requested(change_id, WEB, owner=team, time=when, **SAFE),
            change_updated(change_id, time=when + timedelta(minutes=30), state=outcome),
        ]
    return events


def team_rate_reason(feed, *history: dict[str, Any], day: float = 1) -> list[str]:
    feed(*history)
    found = feed(change_requested("NEW", API, owner="team-a", time=at(days=day), **SAFE))
    return [r.detail for r in assessed(found).reasons if r.code == "team_failure_rate"]


@pytest.mark.parametrize(
    ("failed", "total", "flagged"),
    [(1, 5, False), (2, 5, True), (2, 4, False), (2, 10, False), (3, 10, True)],
)
def test_team_failure_rate_above_the_threshold_with_enough_changes(feed, failed, total, flagged):
    """More than 20% of at least 5 finished changes failed: team_failure_rate (20% is not above)."""
    details = team_rate_reason(feed, *finished_changes("team-a", failed, total))
    assert bool(details) is flagged
    if flagged:
        assert details == [
            f"team team-a: {failed} of {total} changes failed within 90d "
            f"({failed / total:.0%}, above 20%)"
        ]


def test_team_failures_outside_the_window_do_not_count(feed):
    """Failures finished more than team_history_window before the change are forgotten."""
    old = finished_changes("team-a", 3, 3, day=0)
    recent = finished_changes("team-a", 0, 3, day=95)
    assert team_rate_reason(feed, *old, *recent, day=96) == []


def test_other_teams_history_does_not_count(feed):
    """Only the change owner's team history is judged."""
    assert team_rate_reason(feed, *finished_changes("team-b", 5, 5)) == []


@pytest.mark.parametrize("rebuild", [False, True], ids=["live", "rebuilt"])
def test_a_teams_history_kept_per_owner_partition_is_judged_whole(policy, rebuild):
    """With 3 owner partitions, a finished change counts in its own partition's partials of
    the team's outcomes and history; the failure rate is judged on all of them together, live
    and after a rebuild, as with one owner."""
    run = Run(rebuild, policy, ownership(3))
    run.feed(*finished_changes("team-a", 2, 5))
    assert len({key.partition("/")[0] for key in run.engine.state.team_histories}) > 1
    run.restart()
    found = run.feed(change_requested("NEW", API, owner="team-a", time=at(days=1), **SAFE))
    details = [r.detail for r in assessed(found).reasons if r.code == "team_failure_rate"]
    assert details == ["team team-a: 2 of 5 changes failed within 90d (40%, above 20%)"]
    outcomes = teams.of_team(run.engine.state.team_outcomes.values(), "team-a")
    assert outcomes is not None and (outcomes.failed, outcomes.succeeded) == (2, 3)


def test_planned_end_before_start_is_refused_before_any_effect(engine):
    """An update that moves planned_end before planned_start is invalid_value; the change stays."""
    engine.apply(to_input(change_requested("CHG1", API, **window(at(hours=1), at(hours=2)))), T0)
    before = engine.state.changes["CHG1"].model_copy(deep=True)
    update = change_updated("CHG1", time=at(hours=1), planned_end="2026-11-20T10:30:00Z")
    with pytest.raises(InvalidEvent) as refused:
        engine.apply(to_input(update), at(hours=1))
    assert refused.value.code == "invalid_value" and "planned_end" in refused.value.detail
    assert engine.state.changes["CHG1"] == before


def test_a_request_with_its_window_reversed_is_refused(engine):
    """itsm.change.requested with planned_end before planned_start is invalid_value too."""
    request = change_requested("CHG1", API, **window(at(hours=2), at(hours=1)))
    with pytest.raises(InvalidEvent) as refused:
        engine.apply(to_input(request), T0)
    assert refused.value.code == "invalid_value" and engine.state.changes == {}


@pytest.mark.parametrize(
    ("governance", "key"),
    [
        ({"freeze_windows": [{**FREEZE, "end": "2026-11-24T00:00:00Z"}]},
         "governance.freeze_windows.0"),
        ({"freeze_windows": [{**FREEZE, "until": "2026-11-24T00:00:00Z"}]},
         "governance.freeze_windows.0.until"),
        ({"standard_templates": [{"name": "x", "owner": "y"}]},
         "governance.standard_templates.0.owner"),
        ({"window_slack": "-1h"}, "governance.window_slack"),
    ],
)  # fmt: skip
def test_bad_governance_policy_is_refused_naming_the_key(governance, key):
    """A freeze ending before it starts, or an unknown key in a freeze or template, is refused."""
    with pytest.raises(PolicyError) as refused:
        policy_with(governance=governance)
    assert key in str(refused.value)


def governance_week() -> list[dict[str, Any]]:
    """Conflicts, a freeze, a standard change, unauthorized deploys and team failures."""
    return [
        *payments_estate(),
        *finished_changes("team-a", 3, 5),
        change_requested("CHG1", API, time=at(days=1), **SAFE, **window(at(days=1), at(days=2))),
        change_requested("CHG2", PG, time=at(days=1, hours=1), **SAFE,
                         **window(at(days=1, hours=12), at(days=3))),
        change_requested("CHG3", WEB, time=at(days=1, hours=2), type="standard",
                         template="scale-replicas", **SAFE, **FROZEN),
        change_updated("CHG1", time=at(days=1, hours=3), state="approved"),
        deploy("payments-api", id="d1", time=at(days=1, hours=4), change_id="CHG1"),
        deploy("checkout-web", id="d2", time=at(days=5, hours=2), change_id="CHG3"),
        change_updated("CHG2", time=at(days=1, hours=5), owner="team-b",
                       **window(at(days=6), at(days=7))),
        deploy("checkout-web", id="d3", time=at(days=1, hours=6), change_id="CHG1"),
    ]  # fmt: skip


def test_the_same_findings_after_a_changelog_rebuild(policy):
    """Cut anywhere, a rebuild from the changelog goes on to give exactly the same findings."""
    events = [to_input(message) for message in governance_week()]
    whole = Engine(policy)
    expected = [f for event in events for f in whole.apply(event, event.time) or []]
    assert {"change_conflict", "deploy_unauthorized"} <= {f.kind for f in expected}
    for cut in range(0, len(events), 4):
        first = Engine(policy)
        found = [f for event in events[:cut] for f in first.apply(event, event.time) or []]
        rebuilt = Engine(policy)
        changelog.rebuild(rebuilt, changelog.changed_entries(first))
        found += [f for event in events[cut:] for f in rebuilt.apply(event, event.time) or []]
        assert [f.model_dump() for f in found] == [f.model_dump() for f in expected], cut
        assert rebuilt.state.team_histories == whole.state.team_histories
