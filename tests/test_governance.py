"""Deploy governance and change follow-up: refresh, authorisation, rollback, outcomes, bad input."""

import json
from datetime import timedelta

import pytest

from cmdb_worker.schemas.changes import ChangeOutcomes, ChangeRecord, CIHistory
from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.schemas.lessons import Lesson
from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine import teams
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.replay import replay
from tests.events import T0, at, heartbeats, kinds, observed, to_input
from tests.governance_helpers import (
    PIPELINE,
    SAFE,
    change_requested,
    change_updated,
    deploy,
    of_kind,
    payments_estate,
)

API = "service/payments-api@prod"
PG = "database/payments-pg@prod"


def team_outcomes(engine: Engine, team: str) -> ChangeOutcomes | None:
    return teams.of_team(engine.state.team_outcomes.values(), team)


def approved_change(change_id: str = "CHG1", **fields) -> dict:
    return change_requested(change_id, API, state="approved", **{**SAFE, **fields})


def test_deploy_refreshes_its_service_like_an_observation(feed, engine):
    """A deploy sets last seen (by the pipeline), version, owner, criticality and depends_on."""
    feed(deploy("orders", id="d1", time=at(hours=1), artifact="pkg:oci/orders@v7", owner="team-o",
                criticality=2, depends_on=[{"type": "database", "name": "orders-pg",
                                            "environment": "prod"}]))  # fmt: skip
    record = engine.state.cmdb.get("service/orders@prod")
    assert (record.version, record.owner, record.criticality) == ("pkg:oci/orders@v7", "team-o", 2)
    assert record.seen_by == {PIPELINE: at(hours=1)}
    assert engine.state.cmdb.graph.has_edge("service/orders@prod", "database/orders-pg@prod")


def test_deploy_of_a_stale_service_resolves_its_staleness(feed, engine):
    """A stale service that gets deployed is seen again: ci_stale_resolved."""
    feed(observed("orders", owner="team-o", time=T0, relations=[("depends_on", "database/x")]))
    assert "ci_stale" in kinds(feed(*heartbeats(at(days=2))))
    found = feed(deploy("orders", id="d1", time=at(days=2, hours=1), change_id=None))
    assert "ci_stale_resolved" in kinds(found)


def test_deploy_without_a_change_in_prod_is_unauthorized(feed):
    """No linked change in a governed environment: deploy_unauthorized on the service CI."""
    feed(*payments_estate())
    (finding,) = of_kind(
        feed(deploy("payments-api", id="d1", time=at(hours=1))), "deploy_unauthorized"
    )
    assert finding.subject == API
    assert [r.code for r in finding.data.reasons] == ["no_change"]


def test_deploy_outside_governed_environments_is_not_judged(feed):
    """A staging deploy without a change raises nothing about authorisation."""
    found = feed(deploy("notifications", id="d1", environment="staging"))
    assert of_kind(found, "deploy_unauthorized") == []


@pytest.mark.parametrize(
    ("state", "authorized"),
    [("approved", True), ("implementing", True), ("completed", False), ("requested", False),
     ("rejected", False), ("cancelled", False), ("failed", False), ("rolled_back", False)],
)  # fmt: skip
def test_only_an_approved_change_authorizes_a_deploy(feed, state, authorized):
    """approved and implementing authorise a deploy; every other state (completed too) does not."""
    feed(*payments_estate(), change_requested("CHG1", API, state=state, **SAFE))
    found = feed(deploy("payments-api", id="d1", time=at(hours=1), change_id="CHG1"))
    reasons = [r.code for f in of_kind(found, "deploy_unauthorized") for r in f.data.reasons]
    assert reasons == ([] if authorized else ["change_not_approved"])


def test_deploy_linked_to_an_unknown_change_is_unauthorized(feed):
    """A change_id the worker has never seen does not authorise a deploy."""
    found = feed(deploy("payments-api", id="d1", change_id="CHG404"))
    (finding,) = of_kind(found, "deploy_unauthorized")
    assert [r.code for r in finding.data.reasons] == ["unknown_change"]


def test_deploy_moves_an_approved_change_to_implementing(feed, engine):
    """A deploy linked to an approved change makes it implementing and records the deploy."""
    feed(*payments_estate(), approved_change())
    feed(deploy("payments-api", id="d1", time=at(hours=1), change_id="CHG1"))
    change = engine.state.changes["CHG1"]
    assert (change.request.state, change.implemented_at) == ("implementing", at(hours=1))
    assert (change.deploys, change.deployed_services) == (["d1"], [API])


def test_rollback_is_reported_and_fails_the_linked_change(feed, engine):
    """service.rolledback gives deploy_rolled_back and counts the linked change as failed."""
    feed(*payments_estate(), approved_change(), deploy("payments-api", id="d1", change_id="CHG1"))
    found = feed(deploy("payments-api", id="d2", predicate="rolledback", time=at(hours=1),
                        change_id="CHG1"))  # fmt: skip
    assert kinds(found).count("deploy_rolled_back") == 1
    assert of_kind(found, "deploy_unauthorized") == []
    assert engine.state.changes["CHG1"].outcome == "failure"
    assert team_outcomes(engine, "team-a") == ChangeOutcomes(team="team-a", failed=1)


def test_outcomes_count_once_and_a_later_failure_moves_the_count(feed, engine):
    """completed counts a success; the same change failing afterwards becomes one failure."""
    feed(*payments_estate(), approved_change())
    feed(change_updated("CHG1", time=at(hours=1), state="completed"))
    feed(change_updated("CHG1", time=at(hours=2), state="completed", title="again"))
    assert team_outcomes(engine, "team-a") == ChangeOutcomes(team="team-a", succeeded=1)
    feed(change_updated("CHG1", time=at(hours=3), state="failed"))
    assert team_outcomes(engine, "team-a") == ChangeOutcomes(team="team-a", failed=1)
    assert team_outcomes(engine, "nobody") is None


def test_outcomes_from_before_owner_partitions_are_counted_on(engine):
    """A ``team_outcomes/<team>`` record written before owner partitions (its team under
    ``key``) reads back, and later outcomes add to it."""
    earlier = {"key": "team-a", "succeeded": 4, "failed": 1}
    changelog.rebuild(engine, [("team_outcomes/team-a", json.dumps(earlier).encode())])
    for message in [*payments_estate(), approved_change()]:
        engine.apply(to_input(message), T0)
    engine.apply(to_input(change_updated("CHG1", time=at(hours=1), state="failed")), at(hours=1))
    assert team_outcomes(engine, "team-a") == ChangeOutcomes(team="team-a", succeeded=4, failed=2)


def test_service_removed_retires_the_ci(feed, engine):
    """service.removed takes the CI out of the graph; what depended on it dangles."""
    feed(*payments_estate())
    found = feed(deploy("payments-api", id="d1", predicate="removed", time=at(hours=1)))
    assert engine.state.cmdb.get(API) is None
    assert [f.subject for f in of_kind(found, "relation_dangling")] == ["service/checkout-web@prod"]


def test_implementing_a_change_without_rollback_plan_files_a_lesson(feed, engine):
    """rollback_missing: the change reaches implementing with no plan; subject is its first CI."""
    feed(*payments_estate(), change_requested("CHG1", PG, rollback_plan="", owner="team-dba"))
    found = feed(change_updated("CHG1", id="u1", time=at(hours=1), state="implementing"))
    (filed,) = of_kind(found, "lesson_filed")
    lesson = engine.state.lessons[filed.subject]
    assert (lesson.rule, lesson.subject, lesson.owner) == ("rollback_missing", PG, "team-dba")
    assert lesson.evidence == ["u1", "CHG1"]


def test_a_linked_deploy_counts_as_implementing_the_change(feed, engine):
    """A deploy linked to a change with no rollback plan files rollback_missing once."""
    feed(*payments_estate(), approved_change(rollback_plan=None))
    first = feed(deploy("payments-api", id="d1", time=at(hours=1), change_id="CHG1"))
    second = feed(deploy("payments-api", id="d2", time=at(hours=2), change_id="CHG1"))
    assert [engine.state.lessons[f.subject].rule for f in of_kind(first, "lesson_filed")] == [
        "rollback_missing"
    ]
    assert of_kind(second, "lesson_filed") == []
    assert engine.state.lessons["LL-0001"].occurrences == 1


def test_a_change_with_a_rollback_plan_files_no_lesson(feed, engine):
    """Implementing a change that has a rollback plan files nothing."""
    feed(*payments_estate(), approved_change())
    feed(change_updated("CHG1", time=at(hours=1), state="completed"))
    assert engine.state.lessons == {}


def test_redelivered_deploy_has_no_second_effect(engine):
    """The same deploy event applied twice: None the second time, nothing counted twice."""
    message = deploy("payments-api", id="d1")
    assert "deploy_unauthorized" in kinds(engine.apply(to_input(message), T0))
    assert engine.apply(to_input(message), T0 + timedelta(minutes=1)) is None
    assert engine.state.lessons["LL-0001"].occurrences == 1
    assert len(engine.state.histories[API].deploys) == 1


def test_update_of_an_unknown_change_is_refused_before_any_effect(engine):
    """An update for a change never requested raises unknown_change and is not remembered."""
    update = to_input(change_updated("CHG9", id="u1", state="approved"))
    with pytest.raises(InvalidEvent) as refused:
        engine.apply(update, T0)
    assert refused.value.code == "unknown_change" and "CHG9" in refused.value.detail
    assert engine.state.changes == {} and engine.state.take_dirty() == set()
    engine.apply(to_input(change_requested("CHG9", API)), T0)
    assert engine.apply(update, at(hours=1)) is not None


def test_bad_change_update_is_dead_lettered_and_later_lines_still_apply(tmp_path, policy):
    """In a replay, the unknown change's update goes to dead letters; the next line applies."""
    lines = [change_updated("CHG9", state="approved"), change_requested("CHG1", API, time=at(1))]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    engine = Engine(policy)
    result = replay(engine, [events])
    assert [(d.line, d.reason.split(":")[0]) for d in result.dead_letters] == [
        (1, "unknown_change")
    ]
    assert "CHG1" in engine.state.changes and result.applied == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [({"state": "done"}, "invalid_value"), ({"canary": "yes"}, "wrong_type"),
     ({"type": "urgent"}, "invalid_value"), ({"cis": "database/pg"}, "wrong_type")],
)  # fmt: skip
def test_invalid_change_values_are_refused_by_the_schema(data, code):
    """A change event with an unknown state or type, or a field of the wrong type, is invalid."""
    with pytest.raises(InvalidEvent) as refused:
        to_input(change_updated("CHG1", **data))
    assert refused.value.code == code


def test_governance_entities_round_trip_and_are_marked_changed(feed, engine):
    """Changes, histories, outcomes and lessons are touched and survive a JSON round trip."""
    feed(*payments_estate(), approved_change(rollback_plan=None))
    engine.state.take_dirty()
    feed(deploy("payments-api", id="d1", predicate="rolledback", change_id="CHG1"))
    touched = {kind for kind, _ in engine.state.take_dirty()}
    assert {"change", "ci_history", "team_outcomes", "team_history", "lesson"} <= touched
    state = engine.state
    for model, entity in [(ChangeRecord, state.changes["CHG1"]), (CIHistory, state.histories[API]),
                          (ChangeOutcomes, state.team_outcomes["0/team-a"]),
                          (Lesson, state.lessons["LL-0001"])]:  # fmt: skip
        assert model.model_validate(json.loads(entity.model_dump_json())) == entity
