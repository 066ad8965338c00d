"""The Lessons Register: ids, dedup, recurrence and reopening, due dates, owners, edits, overdue."""

import json
from datetime import date, datetime, timedelta

import pytest

from cmdb_worker.rules.policy import PolicyError, parse_policy
from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.replay import replay
from tests.events import T0, at, keep_alive, kinds, observed, to_input
from tests.governance_helpers import deploy, lesson_updated, of_kind
from tests.restarts import Run

API = "service/payments-api@prod"


def unauthorized(feed, n: int, service: str = "payments-api") -> list:
    """The nth deploy of ``service`` with no change: an unauthorized_deploys occurrence."""
    return feed(deploy(service, id=f"{service}-d{n}", time=at(hours=n)))


def test_lessons_get_sequential_zero_padded_ids(feed, engine):
    """The first lessons are LL-0001 and LL-0002, in filing order."""
    unauthorized(feed, 1, "payments-api")
    unauthorized(feed, 2, "ledger")
    assert list(engine.state.lessons) == ["LL-0001", "LL-0002"]


def test_a_recurrence_adds_evidence_and_counts_without_a_second_lesson(feed, engine):
    """The same (rule, subject) again: one lesson, two occurrences, both events as evidence."""
    first = unauthorized(feed, 1)
    second = unauthorized(feed, 2)
    assert len(of_kind(first, "lesson_filed")) == 1 and of_kind(second, "lesson_filed") == []
    (lesson,) = engine.state.lessons.values()
    assert (lesson.occurrences, lesson.evidence) == (2, ["payments-api-d1", "payments-api-d2"])
    assert lesson.updated_at == at(hours=2) and lesson.created_at == at(hours=1)


def test_a_recurrence_after_done_reopens_the_lesson(feed, engine, policy):
    """Done, then the same again: status Open, a fresh due date and lesson_filed (reopened)."""
    unauthorized(feed, 1)
    feed(lesson_updated("LL-0001", id="edit-1", time=at(hours=2), status="Done"))
    later = at(days=10)
    found = feed(deploy("payments-api", id="again", time=later))
    (reopened,) = of_kind(found, "lesson_filed")
    lesson = engine.state.lessons["LL-0001"]
    assert reopened.details()["reopened"] is True
    assert (lesson.status, lesson.occurrences) == ("Open", 2)
    assert lesson.due == later.date() + timedelta(days=policy.lessons.due_days.High)


def test_a_recurrence_after_wont_do_only_counts(feed, engine):
    """Won't Do stays Won't Do: the occurrence is counted, nothing is filed."""
    unauthorized(feed, 1)
    feed(lesson_updated("LL-0001", id="edit-1", time=at(hours=2), status="Won't Do"))
    assert of_kind(unauthorized(feed, 3), "lesson_filed") == []
    lesson = engine.state.lessons["LL-0001"]
    assert (lesson.status, lesson.occurrences) == ("Won't Do", 2)


def test_due_date_is_filing_date_plus_policy_days_by_impact():
    """High impact lessons are due after due_days.High days, as the policy says."""
    engine = Engine(parse_policy({"lessons": {"due_days": {"High": 3}}}))
    engine.apply(to_input(deploy("payments-api", id="d1", time=at(hours=1))), at(hours=1))
    lesson = engine.state.lessons["LL-0001"]
    assert (lesson.impact, lesson.due) == ("High", date(2026, 11, 23))


def test_owner_comes_from_the_ci_and_falls_back_to_the_policy(feed, engine):
    """An owned service's lesson goes to its team; an unowned one to the rule's fallback owner."""
    feed(observed("payments-api", owner="team-payments"))
    unauthorized(feed, 1, "payments-api")
    unauthorized(feed, 2, "ledger")
    owners = [lesson.owner for lesson in engine.state.lessons.values()]
    assert owners == ["team-payments", "Release Manager"]


def test_a_person_can_change_status_owner_and_due(feed, engine):
    """cmdb.lesson.updated sets status, owner and due, and the lesson's updated_at."""
    unauthorized(feed, 1)
    found = feed(lesson_updated("LL-0001", id="edit-1", time=at(hours=5), status="In Progress",
                                owner="Release Manager", due="2026-12-24"))  # fmt: skip
    lesson = engine.state.lessons["LL-0001"]
    assert of_kind(found, "lesson_filed") == []
    assert (lesson.status, lesson.owner, lesson.due) == (
        "In Progress", "Release Manager", date(2026, 12, 24),
    )  # fmt: skip
    assert lesson.updated_at == at(hours=5)


def test_a_redelivered_lesson_update_has_no_second_effect(engine):
    """The same edit applied twice is ignored the second time."""
    engine.apply(to_input(deploy("payments-api", id="d1")), T0)
    edit = to_input(lesson_updated("LL-0001", id="edit-1", status="Done"))
    assert engine.apply(edit, T0) == []
    assert engine.apply(edit, T0) is None


def test_update_of_an_unknown_lesson_is_refused_before_any_effect(engine):
    """An edit of a lesson the register does not hold raises unknown_lesson naming it."""
    with pytest.raises(InvalidEvent) as refused:
        engine.apply(to_input(lesson_updated("LL-0042", id="edit-1", status="Done")), T0)
    assert refused.value.code == "unknown_lesson" and "LL-0042" in refused.value.detail
    assert engine.state.take_dirty() == set()


def test_bad_lesson_update_is_dead_lettered_and_later_lines_still_apply(tmp_path, policy):
    """In a replay, an unknown lesson's edit is a dead letter; the following lines apply."""
    lines = [deploy("payments-api", id="d1"), lesson_updated("LL-0042", id="e1", status="Done"),
             lesson_updated("LL-0001", id="e2", time=at(1), status="Done")]  # fmt: skip
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    engine = Engine(policy)
    result = replay(engine, [events])
    (dead,) = result.dead_letters
    assert (dead.line, dead.reason.split(":")[0]) == (2, "unknown_lesson")
    assert engine.state.lessons["LL-0001"].status == "Done"


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"status": "Finished"}, "invalid_value"), ({"due": "soon"}, "bad_time"),
     ({"owner": ""}, "invalid_value"), ({"owner": 7}, "wrong_type")],
)  # fmt: skip
def test_invalid_lesson_edits_are_refused_by_the_schema(fields, code):
    """An unknown status, a due that is not a date, or a blank owner make the edit invalid."""
    with pytest.raises(InvalidEvent) as refused:
        to_input(lesson_updated("LL-0001", id="e1", **fields))
    assert refused.value.code == code


def due_passes(engine: Engine) -> datetime:
    due = engine.state.lessons["LL-0001"].due
    return datetime.combine(due + timedelta(days=1), datetime.min.time(), T0.tzinfo)


def overdue(engine: Engine, now: datetime) -> list:
    """The lesson_overdue findings of a tick at ``now`` (other deadlines fire too)."""
    return of_kind(engine.tick(now), "lesson_overdue")


def test_lesson_overdue_fires_once_when_the_due_date_has_passed(engine):
    """With an injected clock: nothing on the due date, lesson_overdue after it, only once."""
    engine.apply(to_input(deploy("payments-api", id="d1")), T0)
    passed = due_passes(engine)
    assert overdue(engine, passed - timedelta(minutes=1)) == []
    (late,) = overdue(engine, passed + timedelta(minutes=1))
    assert (late.subject, late.details()["owner"]) == ("LL-0001", "Release Manager")
    assert overdue(engine, passed + timedelta(days=1)) == []


def test_a_lesson_done_before_its_due_date_is_never_overdue(engine):
    """Done before the due date: the deadline passes without lesson_overdue."""
    engine.apply(to_input(deploy("payments-api", id="d1")), T0)
    engine.apply(to_input(lesson_updated("LL-0001", id="e1", status="Done")), T0)
    assert overdue(engine, due_passes(engine) + timedelta(days=1)) == []


def test_a_new_due_date_moves_the_overdue_check(engine):
    """A person moving the due date later means no lesson_overdue at the old date."""
    engine.apply(to_input(deploy("payments-api", id="d1")), T0)
    old = due_passes(engine)
    engine.apply(to_input(lesson_updated("LL-0001", id="e1", due="2027-01-31")), T0)
    assert overdue(engine, old + timedelta(days=1)) == []
    later = overdue(engine, datetime(2027, 2, 1, 1, tzinfo=T0.tzinfo))
    assert "LL-0001" in [finding.subject for finding in later]


def test_an_overdue_lesson_is_reported_once_across_a_restart():
    """A replica restarted (or a standby taking over) after lesson_overdue went out does not
    report it again; a due date moved later is reported when it passes, after a restart too."""
    run = Run(rebuild=True)
    run.feed(deploy("payments-api", id="d1"))
    passed = due_passes(run.engine)
    assert len(of_kind(run.tick(passed + timedelta(minutes=1)), "lesson_overdue")) == 1
    run.restart()
    assert of_kind(run.tick(passed + timedelta(hours=1)), "lesson_overdue") == []
    run.feed(lesson_updated("LL-0001", id="e1", due="2027-01-31", time=passed))
    run.restart()
    later = run.tick(datetime(2027, 2, 1, 1, tzinfo=T0.tzinfo))
    assert [f.subject for f in of_kind(later, "lesson_overdue")].count("LL-0001") == 1


def test_a_ci_stale_beyond_its_grace_files_cmdb_stale(engine, policy):
    """A service stale for more than 3x its max age gets a cmdb_stale lesson for its owner."""
    engine.apply(
        to_input(observed("orders", owner="team-o", relations=[("depends_on", "x/y")])), T0
    )
    max_age = policy.staleness.max_age("service")
    stale_at, grace_ends = T0 + max_age + timedelta(minutes=1), T0 + 4 * max_age
    assert kinds(keep_alive(engine, stale_at)) == ["ci_phantom", "ci_stale"]  # x/y: a phantom
    assert keep_alive(engine, grace_ends - timedelta(minutes=1), since=stale_at) == []
    (filed,) = keep_alive(engine, grace_ends + timedelta(minutes=1), since=grace_ends)
    lesson = engine.state.lessons[filed.subject]
    assert (lesson.rule, lesson.subject, lesson.owner) == (
        "cmdb_stale",
        "service/orders@prod",
        "team-o",
    )


def test_a_restart_after_cmdb_stale_was_filed_counts_no_second_occurrence(policy):
    """A rebuilt replica re-arms the stale CI's grace, which has passed: filing the same
    staleness again (the same ci_stale finding as evidence) counts nothing."""
    run = Run(rebuild=True)
    run.feed(
        observed("orders", owner="team-o", relations=[("depends_on", "service/db@prod")]),
        observed("db", owner="team-o", relations=[("depends_on", "service/orders@prod")]),
    )
    grace_ends = T0 + 4 * policy.staleness.max_age("service")
    filed = of_kind(run.keep_alive(grace_ends + timedelta(hours=1), "/discovery/a"), "lesson_filed")
    assert len(filed) == 2
    run.restart()
    run.keep_alive(grace_ends + timedelta(hours=6), "/discovery/a", since=grace_ends)
    assert [lesson.occurrences for lesson in run.engine.state.lessons.values()] == [1, 1]


def test_a_stale_ci_seen_again_within_the_grace_files_nothing(engine, policy):
    """Seen again after going stale, before the grace ended: no cmdb_stale lesson, ever."""
    orders = observed("orders", owner="team-o", relations=[("depends_on", "x/y")])
    engine.apply(to_input(orders), T0)
    max_age = policy.staleness.max_age("service")
    seen = T0 + 2 * max_age
    keep_alive(engine, seen)
    engine.apply(to_input(observed("orders", owner="team-o", time=seen, id="again")), seen)
    keep_alive(engine, T0 + 4 * max_age + timedelta(minutes=1), since=seen)
    assert engine.state.lessons == {}


def test_bad_lesson_policy_is_refused_naming_the_key():
    """A lesson text with an unknown placeholder, or an unknown impact, is refused by key."""
    text = {"impact": "High", "fallback_owner": "x", "title": "{ci}", "description": "d",
            "action": "a"}  # fmt: skip
    with pytest.raises(PolicyError, match=r"lessons\.rules\.cmdb_stale\.title"):
        parse_policy({"lessons": {"rules": {"cmdb_stale": text}}})
    with pytest.raises(PolicyError, match=r"lessons\.rules\.cmdb_stale\.impact"):
        parse_policy(
            {"lessons": {"rules": {"cmdb_stale": text | {"title": "t", "impact": "Huge"}}}}
        )
