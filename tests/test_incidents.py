"""Incident correlation: suspects on and upstream of the incident's CI, ranked; incident lessons."""

from datetime import timedelta

from cmdb_worker.rules.policy import parse_policy
from cmdb_worker.worker.engine.apply import Engine
from tests.events import at, heartbeats, observed, to_input
from tests.governance_helpers import (
    SAFE,
    change_requested,
    change_updated,
    deploy,
    incident,
    of_kind,
    payments_estate,
)

WEB, API, PG = "service/checkout-web@prod", "service/payments-api@prod", "database/payments-pg@prod"


def suspects_of(findings) -> list[tuple[str, str, int]]:
    (correlated,) = of_kind(findings, "incident_correlated")
    return [(s["kind"], s["id"], s["hops"]) for s in correlated.details()["suspects"]]


def test_upstream_change_is_a_suspect_with_its_reasons(feed):
    """A change on the database two hops upstream, implemented 60 minutes before, is suspected."""
    feed(*payments_estate(), change_requested("CHG1", PG, rollback_plan=None, state="approved"))
    feed(change_updated("CHG1", time=at(hours=1), state="implementing"))
    found = feed(incident("INC-1", "checkout-web", id="i1", time=at(hours=2)))
    (correlated,) = of_kind(found, "incident_correlated")
    (suspect,) = correlated.details()["suspects"]
    assert correlated.subject == "INC-1" and correlated.details()["ci"] == WEB
    assert (suspect["id"], suspect["hops"], suspect["minutes_before"]) == ("CHG1", 2, 60)
    assert suspect["why"][:2] == [f"upstream at 2 hops: {PG}", "60 minutes before the incident"]
    assert "no rollback plan" in suspect["why"]


def test_a_deploy_on_the_incident_ci_outranks_one_upstream(feed):
    """Two clean deploys at the same time: the one on the incident's own CI ranks first."""
    feed(*payments_estate())
    feed(deploy("payments-api", id="up", time=at(hours=1), environment="prod"),
         deploy("checkout-web", id="same", time=at(hours=1)))  # fmt: skip
    found = feed(incident("INC-1", "checkout-web", id="i1", time=at(hours=2)))
    assert suspects_of(found) == [("deploy", "same", 0), ("deploy", "up", 1)]


def test_a_more_recent_suspect_ranks_first_at_equal_distance(feed):
    """On the same CI, the deploy closer to the incident ranks above the older one."""
    feed(*payments_estate(), *(change_requested(c, WEB, state="approved", **SAFE) for c in "AB"))
    feed(deploy("checkout-web", id="old", time=at(hours=1), change_id="A"),
         deploy("checkout-web", id="new", time=at(hours=5), change_id="B"))  # fmt: skip
    found = feed(incident("INC-1", "checkout-web", id="i1", time=at(hours=6)))
    deploys = [s for s in suspects_of(found) if s[0] == "deploy"]
    assert deploys == [("deploy", "new", 0), ("deploy", "old", 0)]


def test_changes_outside_the_lookback_are_not_suspects(feed, policy):
    """A deploy older than correlation.lookback before the incident is left out."""
    feed(*payments_estate(), deploy("checkout-web", id="d1", time=at(hours=1)))
    late = at(hours=1) + policy.correlation.lookback + timedelta(minutes=1)
    found = feed(incident("INC-1", "checkout-web", id="i1", time=late))
    assert suspects_of(found) == []


def test_suspects_are_looked_for_only_up_to_max_hops():
    """With max_hops 1, a change two hops upstream is not a suspect; one hop away is."""
    engine = Engine(parse_policy({"correlation": {"max_hops": 1}}))
    upstream_change = change_requested("CHG1", PG, planned_start="2026-11-20T11:00:00Z")
    for message in [
        *payments_estate(),
        deploy("payments-api", id="d1", time=at(1)),
        upstream_change,
    ]:
        engine.apply(to_input(message), at(hours=1))
    found = engine.apply(to_input(incident("INC-1", "checkout-web", id="i1", time=at(2))), at(2))
    assert suspects_of(found) == [("deploy", "d1", 1)]


def test_incident_with_nothing_recent_has_no_suspects(feed):
    """An incident on a CI with no recent changes is still correlated, with an empty list."""
    feed(observed("search-api", owner="team-search"))
    (correlated,) = of_kind(feed(incident("INC-1", "search-api", id="i1")), "incident_correlated")
    assert correlated.details()["suspects"] == []
    assert [r.code for r in correlated.data.reasons] == ["no_suspects"]


def test_resolved_closes_the_incident_of_the_same_subject_id(feed, engine):
    """incident.resolved with the same subject.id sets the incident's resolved time."""
    feed(incident("INC-1", "checkout-web", id="i1"))
    found = feed(incident("INC-1", "checkout-web", id="i2", time=at(1), predicate="resolved"))
    assert found == [] and engine.state.incidents["INC-1"].resolved_at == at(1)


def test_an_open_incident_reported_again_adds_nothing(feed, engine):
    """incident.reported for an incident already detected and still open is not correlated again."""
    feed(incident("INC-1", "checkout-web", id="i1"))
    again = feed(incident("INC-1", "checkout-web", id="i2", time=at(1), predicate="reported"))
    assert again == []
    assert len(engine.state.histories[WEB].incidents) == 1


def test_top_suspect_change_that_failed_files_change_caused_incident(feed, engine):
    """The top suspect's change failed: change_caused_incident on the CI it landed on."""
    feed(*payments_estate(), change_requested("CHG1", API, state="approved", owner="team-pay",
                                              **SAFE))  # fmt: skip
    feed(
        deploy("payments-api", id="d1", time=at(hours=1), change_id="CHG1"),
        change_updated("CHG1", time=at(hours=1) + timedelta(minutes=5), state="failed"),
    )
    found = feed(incident("INC-1", "checkout-web", id="i1", time=at(hours=2)))
    (filed,) = of_kind(found, "lesson_filed")
    lesson = engine.state.lessons[filed.subject]
    assert (lesson.rule, lesson.subject, lesson.owner) == (
        "change_caused_incident",
        API,
        "team-pay",
    )
    assert {"INC-1", "CHG1"} <= set(lesson.evidence)


def test_a_clean_top_suspect_files_no_lesson(feed, engine):
    """A top suspect that neither failed nor lacked a rollback plan blames nothing."""
    feed(*payments_estate(), change_requested("CHG1", API, state="approved", **SAFE))
    feed(deploy("payments-api", id="d1", time=at(hours=1), change_id="CHG1"))
    feed(incident("INC-1", "checkout-web", id="i1", time=at(hours=2)))
    assert engine.state.lessons == {}


def test_third_incident_within_the_window_files_repeat_incidents(feed, engine):
    """The 3rd incident on a CI within 30 days files repeat_incidents; the 2nd does not."""
    feed(observed("search-api", owner="team-search"), *heartbeats(at(hours=4)))
    first_two = feed(incident("INC-1", "search-api", id="i1", time=at(hours=5)),
                     *heartbeats(at(hours=8), since=at(hours=4)),
                     incident("INC-2", "search-api", id="i2", time=at(hours=10)))  # fmt: skip
    feed(*heartbeats(at(hours=12), since=at(hours=8)))
    third = feed(incident("INC-3", "search-api", id="i3", time=at(hours=15)))
    assert of_kind(first_two, "lesson_filed") == []
    (filed,) = of_kind(third, "lesson_filed")
    lesson = engine.state.lessons[filed.subject]
    assert (lesson.rule, lesson.owner, lesson.evidence) == (
        "repeat_incidents", "team-search", ["INC-1", "INC-2", "INC-3"],
    )  # fmt: skip


def test_incidents_spread_over_weeks_count_within_the_window(feed, engine):
    """Incidents on days 5, 10 and 15 are three within 30 days: repeat_incidents is filed."""
    feed(*(incident(f"INC-{n}", "search-api", id=f"i{n}", time=at(days=5 * n)) for n in (1, 2, 3)))
    assert [lesson.rule for lesson in engine.state.lessons.values()] == ["repeat_incidents"]


def test_incidents_spread_beyond_the_window_do_not_repeat(feed, engine):
    """Three incidents more than 30 days apart in total file no repeat_incidents lesson."""
    feed(*(incident(f"INC-{n}", "search-api", id=f"i{n}", time=at(days=20 * n)) for n in range(3)))
    assert engine.state.lessons == {}


def test_per_ci_history_is_bounded_by_the_policy():
    """With history_per_ci 3, only the 3 latest deploys of a service are remembered."""
    engine = Engine(parse_policy({"correlation": {"history_per_ci": 3}}))
    for n in range(5):
        message = deploy("orders", id=f"d{n}", time=at(hours=n), environment="staging")
        engine.apply(to_input(message), at(hours=n))
    history = engine.state.histories["service/orders@staging"]
    assert [entry.event_id for entry in history.deploys] == ["d2", "d3", "d4"]
