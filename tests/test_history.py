"""History (CONTRACT 10): ``/api/cis/{id}/history`` and ``/api/changes/{id}/history`` answer every
finding about the subject, a change's assessments among them, oldest first, bounded by the
policy's ``history`` retention and count; the same after a rebuild from the changelog."""

import json
import threading
from datetime import datetime
from typing import Any

import pytest

from cmdb_worker.rules.policy import Policy, load_policy, parse_policy
from cmdb_worker.worker import changelog
from cmdb_worker.worker.api import Api, NotFound
from cmdb_worker.worker.engine.apply import Engine
from tests.events import at, cloudevent, iso, observed, retired
from tests.governance_helpers import SAFE, change_requested, change_updated
from tests.restarts import Run

API, PG = "service/api@prod", "database/pg@prod"


def api_of(engine: Engine, now: datetime) -> Api:
    return Api(engine, threading.RLock(), lambda: now)


def history(run: Run, path: str, now: datetime) -> dict[str, Any]:
    """``/api/{path}/history`` as the run's engine answers it (restarted first if rebuilt)."""
    run.restart()
    document: dict[str, Any] = json.loads(api_of(run.engine, now).get(f"{path}/history", {})[1])
    return document


def kinds_of(document: dict[str, Any]) -> list[str]:
    return [entry["kind"] for entry in document["entries"]]


def bounded(**history: Any) -> Policy:
    return parse_policy({"history": history})


def a_ci_with_three_findings(run: Run) -> None:
    """``api`` without an owner (ci_no_owner at once), unconnected (ci_orphan an hour later) and
    unseen for over a day (ci_stale), its source kept alive so it is judged stale."""
    run.feed(observed("api"))
    run.tick(at(hours=2))
    run.keep_alive(at(days=1, hours=3), "/discovery/a")


def test_a_ci_history_lists_its_findings_oldest_first(run: Run) -> None:
    """ci_no_owner, ci_orphan and ci_stale about a CI come back in the order they happened,
    each with its id, type, time and reasons, live and after a rebuild."""
    a_ci_with_three_findings(run)
    document = history(run, f"cis/{API}", at(days=2))
    assert (document["subject"], document["count"]) == (API, 3)
    assert kinds_of(document) == ["ci_no_owner", "ci_orphan", "ci_stale"]
    times = [entry["time"] for entry in document["entries"]]
    assert times == sorted(times) and times[0] == iso(at())
    assert all(e["id"].startswith("finding-") and e["reasons"] for e in document["entries"])
    assert document["entries"][0]["type"] == "cmdb.finding.ci_no_owner"


def test_a_change_history_holds_every_assessment_with_score_route_and_reasons(run: Run) -> None:
    """A change requested, then updated to a riskier plan, has both assessments in its history
    oldest first (revision, score, level, route, reasons, when), with the finding it caused."""
    run.feed(observed("pg", ci_type="database", owner="dba"))
    run.feed(change_requested("CHG1", PG, time=at(hours=1), **SAFE))
    run.feed(change_updated("CHG1", time=at(hours=2), rollback_plan=None, db_migration=True))
    document = history(run, "changes/CHG1", at(hours=3))
    assessed = [entry for entry in document["entries"] if entry["kind"] == "change_assessed"]
    assert [entry["revision"] for entry in assessed] == [1, 2]
    assert [entry["detected_at"] for entry in assessed] == [iso(at(hours=1)), iso(at(hours=2))]
    assert assessed[0]["route"] == "fast_track" and assessed[1]["score"] > assessed[0]["score"]
    assert {"no_rollback_plan", "db_migration"} <= {r["code"] for r in assessed[1]["reasons"]}
    assert document["subject"] == "CHG1" and document["count"] == len(document["entries"])


def test_history_keeps_only_what_the_retention_keeps(run: Run) -> None:
    """With history.retention 1d, an assessment older than a day is gone once a newer one comes,
    and a subject left quiet loses its last entries when they age out (its deadline fires)."""
    run.policy = bounded(retention="1d")
    run.engine = Engine(run.policy)
    run.feed(change_requested("CHG1", PG, time=at(), **SAFE))
    run.feed(change_updated("CHG1", time=at(days=2), canary=False))
    assert [e["revision"] for e in history(run, "changes/CHG1", at(days=2))["entries"]] == [2]
    run.tick(at(days=3, hours=1))
    assert history(run, "changes/CHG1", at(days=4))["entries"] == []
    assert "CHG1" not in run.engine.state.timelines


def test_history_keeps_at_most_the_policy_count_per_subject(run: Run) -> None:
    """With history.max_entries_per_subject 2, four assessments leave the newest two."""
    run.policy = bounded(max_entries_per_subject=2)
    run.engine = Engine(run.policy)
    run.feed(change_requested("CHG1", PG, time=at(), **SAFE))
    for hour, canary in ((1, False), (2, True), (3, False)):
        run.feed(change_updated("CHG1", time=at(hours=hour), canary=canary))
    document = history(run, "changes/CHG1", at(hours=4))
    assert [entry["revision"] for entry in document["entries"]] == [3, 4]
    assert document["max_entries"] == 2


def test_a_merged_away_id_or_alias_answers_for_the_surviving_ci(run: Run) -> None:
    """A CI merged into another by a strong identifier: its id answers the survivor's history,
    which holds the findings about both, and the merge itself."""
    uid = {"identifiers": {"k8s_uid": "8c1f0e2a"}}
    run.feed(observed("payments-api"), observed("pay-api", time=at(hours=0.1), **uid))
    run.feed(observed("payments-api", time=at(hours=0.5), **uid))
    by_alias = history(run, "cis/service/payments-api@prod", at(hours=1))
    assert by_alias == history(run, "cis/service/pay-api@prod", at(hours=1))
    assert by_alias["subject"] == "service/pay-api@prod"
    subjects_and_kinds = [(e["subject"], e["kind"]) for e in by_alias["entries"]]
    assert subjects_and_kinds == [
        ("service/payments-api@prod", "ci_no_owner"), ("service/pay-api@prod", "ci_no_owner"),
        ("service/pay-api@prod", "ci_duplicate_merged"),
    ]  # fmt: skip


def test_a_held_back_finding_is_in_the_history_marked_suppressed(run: Run) -> None:
    """A finding a suppression holds back is recorded with ``suppressed: true``; others false."""
    data = {"subject": API, "kinds": ["ci_no_owner"], "until": iso(at(days=3)),
            "reason": "migration", "by": "alice"}  # fmt: skip
    run.feed(cloudevent("cmdb.suppression.set", data, id="sup-1", source="/people/alice"))
    run.feed(observed("api", time=at(hours=1)))
    run.tick(at(hours=3))
    entries = history(run, f"cis/{API}", at(hours=4))["entries"]
    assert [(e["kind"], e["suppressed"]) for e in entries] == [
        ("ci_no_owner", True), ("ci_orphan", False),
    ]  # fmt: skip


def test_unknown_ids_are_not_found(run: Run) -> None:
    """A history of a CI or change the worker never heard of is a 404 naming the id."""
    a_ci_with_three_findings(run)
    api = api_of(run.engine, at(days=2))
    for path, named in (("cis/service/nope@prod/history", "service/nope@prod/history"),
                        ("changes/CHG404/history", "CHG404/history")):  # fmt: skip
        with pytest.raises(NotFound, match=named):
            api.get(path, {})


def test_a_rebuild_answers_every_history_exactly_as_live() -> None:
    """After a mixed stream, every subject's history from an engine rebuilt from the changelog
    equals the live engine's, document for document."""
    live = Run(rebuild=False)
    a_ci_with_three_findings(live)
    live.feed(change_requested("CHG1", API, time=at(days=1, hours=4)))
    rebuilt = Engine(load_policy())
    changelog.rebuild(rebuilt, live.entries)
    now = at(days=2)
    paths = [f"cis/{API}/history", "changes/CHG1/history", "cis/service/api%40prod/history"]
    answers = [[api_of(e, now).get(p, {}) for p in paths] for e in (live.engine, rebuilt)]
    assert answers[0] == answers[1]
    assert b"change_assessed" in answers[0][1][1]


def test_a_retired_ci_keeps_its_history(run: Run) -> None:
    """A CI retired after a finding about it still answers its history, and the relation left
    dangling by the retirement (then its orphaning) is in the history of the CI that pointed."""
    run.feed(observed("pg", ci_type="database"),
             observed("api", owner="t", relations=[("depends_on", PG)]))  # fmt: skip
    run.feed(retired("database", "pg", environment="prod", time=at(hours=2)))
    assert kinds_of(history(run, f"cis/{PG}", at(hours=3))) == ["ci_no_owner"]
    assert kinds_of(history(run, f"cis/{API}", at(hours=3))) == ["relation_dangling", "ci_orphan"]
