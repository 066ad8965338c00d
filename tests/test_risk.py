"""Change risk: reason codes, score, levels and routing, blast radius, change_missing_rollback."""

from datetime import timedelta
from typing import Any

import networkx as nx
import pytest

from cmdb_worker.rules import risk
from cmdb_worker.rules.conflicts import Conflict
from cmdb_worker.rules.policy import Policy, PolicyError, load_policy, parse_policy
from cmdb_worker.schemas.changes import TeamHistory
from cmdb_worker.schemas.events import ChangeRequested
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord
from tests.events import T0, at, observed
from tests.governance_helpers import (
    SAFE,
    change_requested,
    change_updated,
    of_kind,
    payments_estate,
)

POLICY = load_policy()
PG = CIId("database/pg@prod")


def record(ci_id: str, criticality: int | None = None, last_seen: Any = T0) -> CIRecord:
    ci_type, rest = ci_id.split("/", 1)
    return CIRecord(
        id=CIId(ci_id), type=ci_type, name=rest.split("@")[0], environment="prod",
        criticality=criticality, seen_by={"/discovery/a": last_seen},
    )  # fmt: skip


def scope(
    dependents: dict[str, int] | None = None, *, unknown: tuple[str, ...] = (),
    failures: tuple[str, ...] = (), records: list[CIRecord] | None = None,
    conflicts: tuple[Conflict, ...] = (), team: TeamHistory | None = None,
) -> risk.Scope:  # fmt: skip
    deps = {CIId(ci): hops for ci, hops in (dependents or {}).items()}
    known = {r.id: r for r in records or [record(PG), *(record(ci) for ci in deps)]}
    return risk.Scope(
        [PG], [CIId(ci) for ci in unknown], deps, known, list(failures), list(conflicts), team
    )


def change(**fields: Any) -> ChangeRequested:
    return ChangeRequested.model_validate({"change_id": "CHG1", **SAFE, **fields})


def codes(policy: Policy, change: ChangeRequested, scope: risk.Scope) -> dict[str, int | None]:
    assessment = risk.assess(policy, change, scope, T0, 1)
    return {reason.code: reason.points for reason in assessment.reasons}


def test_safe_change_has_no_reasons_and_is_fast_tracked():
    """A change with an automated rollback and a canary on a plain CI scores 0, low, fast_track."""
    assessment = risk.assess(POLICY, change(), scope(), T0, 1)
    assert (assessment.score, assessment.level, assessment.route) == (0, "low", "fast_track")
    assert assessment.reasons == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"rollback_plan": None}, "no_rollback_plan"),
        ({"rollback_plan": "   "}, "no_rollback_plan"),
        ({"rollback_plan": ""}, "no_rollback_plan"),
        ({"rollback_automated": False}, "rollback_manual"),
        ({"rollback_automated": None}, "rollback_manual"),
        ({"db_migration": True}, "db_migration"),
        ({"canary": False}, "no_canary"),
        ({"type": "emergency"}, "emergency"),
    ],
)
def test_each_change_field_reason_scores_its_policy_weight(fields, code):
    """Each risky field of the request gives its reason code, worth the policy's points."""
    found = codes(POLICY, change(**fields), scope())
    assert found == {code: getattr(POLICY.risk.weights, code)}


def test_critical_dependent_raises_critical_ci():
    """A criticality-1 CI in the blast radius gives critical_ci, naming it and its distance."""
    critical = record("service/api@prod", criticality=1)
    assessment = risk.assess(
        POLICY, change(), scope({"service/api@prod": 1}, records=[record(PG), critical]), T0, 1
    )
    assert [r.code for r in assessment.reasons] == ["critical_ci"]
    assert "service/api@prod (criticality 1, dependent at 1 hop)" in assessment.reasons[0].detail


def test_large_blast_radius_from_the_policy_threshold():
    """large_blast_radius applies from ``risk.large_blast_radius`` dependents, not one fewer."""
    limit = POLICY.risk.large_blast_radius
    many = {f"service/s{i}@prod": 1 for i in range(limit)}
    fewer = dict(list(many.items())[:-1])
    assert "large_blast_radius" in codes(POLICY, change(), scope(many))
    assert "large_blast_radius" not in codes(POLICY, change(), scope(fewer))


def test_stale_ci_in_scope_raises_risk():
    """A CI in scope last seen longer ago than its max age gives stale_ci_in_scope."""
    old = record(PG, last_seen=T0 - POLICY.staleness.max_age("database") - timedelta(hours=1))
    assert "stale_ci_in_scope" in codes(POLICY, change(), scope(records=[old]))
    assert "stale_ci_in_scope" not in codes(POLICY, change(), scope())


def test_recent_failures_and_unknown_cis_are_reasons():
    """Recent failures on the CIs in scope and CIs unknown to the CMDB each add their reason."""
    found = codes(POLICY, change(), scope(unknown=("service/ghost@prod",), failures=("CHG0",)))
    assert set(found) == {"recent_failures", "unknown_ci"}


def test_score_is_capped_at_100():
    """However many reasons apply, the score never exceeds 100."""
    worst = change(rollback_plan=None, db_migration=True, canary=False, type="emergency")
    many = {f"service/s{i}@prod": 1 for i in range(20)}
    assessment = risk.assess(POLICY, worst, scope(many, unknown=("x/y",), failures=("C",)), T0, 1)
    assert sum(r.points or 0 for r in assessment.reasons) > 100
    assert assessment.score == 100


def only_db_migration_weighs(points: int, **risk_section: Any) -> Policy:
    zero = dict.fromkeys(type(POLICY.risk.weights).model_fields, 0)
    return parse_policy({"risk": {"weights": zero | {"db_migration": points}, **risk_section}})


@pytest.mark.parametrize(
    ("score", "level", "route"),
    [
        (0, "low", "fast_track"), (24, "low", "fast_track"), (25, "medium", "cab"),
        (49, "medium", "cab"), (50, "high", "cab"), (74, "high", "cab"), (75, "critical", "cab"),
    ],
)  # fmt: skip
def test_levels_and_routes_at_the_boundaries(score, level, route):
    """A score at a level's floor is that level; one below is the level beneath it."""
    assessment = risk.assess(
        only_db_migration_weighs(score), change(db_migration=True), scope(), T0, 1
    )
    assert (assessment.score, assessment.level, assessment.route) == (score, level, route)


@pytest.mark.parametrize(("score", "route"), [(49, "fast_track"), (50, "cab")])
def test_fast_track_ceiling_comes_from_the_policy(score, route):
    """With fast_track_max_level: medium, medium goes fast_track and high goes to cab."""
    policy = only_db_migration_weighs(score, fast_track_max_level="medium")
    assert risk.assess(policy, change(db_migration=True), scope(), T0, 1).route == route


def test_emergency_changes_always_go_to_cab():
    """A type in cab_types goes to cab even when its score is low."""
    policy = parse_policy({"risk": {"weights": {"emergency": 0}}})
    assessment = risk.assess(policy, change(type="emergency"), scope(), T0, 1)
    assert (assessment.level, assessment.route) == ("low", "cab")


def test_bad_risk_policy_is_refused_naming_the_key():
    """An unknown weight, or levels that do not rise, are refused with the key in the message."""
    with pytest.raises(PolicyError, match=r"risk\.weights\.no_rollbak"):
        parse_policy({"risk": {"weights": {"no_rollbak": 5}}})
    with pytest.raises(PolicyError, match=r"risk\.levels"):
        parse_policy({"risk": {"levels": {"medium": 60, "high": 50, "critical": 75}}})


def graph(*edges: tuple[str, str]) -> nx.DiGraph:
    """Edges run from a CI to what it depends on."""
    built = nx.DiGraph()
    built.add_edges_from(edges)
    return built


def test_blast_radius_counts_a_diamond_top_once_at_its_shortest_distance():
    """top depends on left and right, both on base: top is counted once, at 2 hops."""
    diamond = graph(("left", "base"), ("right", "base"), ("top", "left"), ("top", "right"))
    assert risk.blast_radius(diamond, [CIId("base")], 10) == {"left": 1, "right": 1, "top": 2}


def test_blast_radius_survives_cycles_and_excludes_the_roots():
    """A dependency cycle through the root ends the walk; the root is never its own dependent."""
    cyclic = graph(("a", "base"), ("b", "a"), ("a", "b"), ("base", "b"))
    assert risk.blast_radius(cyclic, [CIId("base")], 10) == {"a": 1, "b": 2}


def test_blast_radius_of_a_set_excludes_every_member():
    """When one root depends on another, it is in the set, not in the blast radius."""
    chain = graph(("b", "a"), ("c", "b"))
    assert risk.blast_radius(chain, [CIId("a"), CIId("b")], 10) == {"c": 1}


def test_blast_radius_stops_at_the_depth_bound():
    """On a chain of 20 dependents, depth 10 reaches exactly the nearest 10."""
    chain = graph(*((f"c{i}", f"c{i - 1}") for i in range(1, 21)))
    radius = risk.blast_radius(chain, [CIId("c0")], 10)
    assert radius == {f"c{i}": i for i in range(1, 11)}


def test_blast_radius_limit_keeps_the_nearest_rings_whole():
    """Counting stops after the ring that reaches the limit; that ring is kept whole, the next
    is not explored, and the same CIs come back whatever order the edges were added in."""
    edges = [*((f"a{i}", "root") for i in range(3)), *((f"b{i}", f"a{i % 3}") for i in range(6)),
             *((f"c{i}", f"b{i % 6}") for i in range(12))]  # fmt: skip
    forwards, backwards = graph(*edges), graph(*reversed(edges))
    for built in (forwards, backwards):
        radius = risk.blast_radius(built, [CIId("root")], 10, limit=5)
        assert radius == {**{f"a{i}": 1 for i in range(3)}, **{f"b{i}": 2 for i in range(6)}}
    assert len(risk.blast_radius(forwards, [CIId("root")], 10, limit=100)) == 21


def test_a_bounded_blast_radius_is_reported_as_at_least():
    """When counting stops at graph.blast_radius_limit, the assessment says so."""
    policy = parse_policy({"graph": {"blast_radius_limit": 12}})
    many = {f"service/s{i}@prod": 1 for i in range(12)}
    assessment = risk.assess(policy, change(), scope(many), T0, 1)
    (large,) = [r for r in assessment.reasons if r.code == "large_blast_radius"]
    assert assessment.blast_radius_bounded and assessment.blast_radius == 12
    assert large.detail == "at least 12 dependent CIs (large from 10)"
    assert not risk.assess(POLICY, change(), scope(many), T0, 1).blast_radius_bounded


def test_requested_change_is_assessed_with_its_blast_radius(feed):
    """change_assessed carries score, level, route, blast radius, reasons and top dependents."""
    feed(*payments_estate())
    found = feed(change_requested("CHG1", "database/payments-pg@prod", time=at(hours=1), **SAFE))
    (assessed,) = of_kind(found, "change_assessed")
    data = assessed.details()
    assert assessed.subject == "CHG1"
    assert (data["blast_radius"], data["level"], data["route"]) == (2, "low", "fast_track")
    assert [d["id"] for d in data["top_dependents"]] == [
        "service/payments-api@prod", "service/checkout-web@prod",
    ]  # fmt: skip
    assert data["cis"] == ["database/payments-pg@prod"]
    assert [r.code for r in assessed.data.reasons] == ["critical_ci"]
    assert data["score"] == POLICY.risk.weights.critical_ci


def test_change_on_unknown_cis_is_assessed_anyway(feed):
    """A change naming a CI the CMDB has never seen is assessed, with unknown_ci as a reason."""
    found = feed(change_requested("CHG1", "service/ghost@prod", **SAFE))
    (assessed,) = of_kind(found, "change_assessed")
    assert assessed.details()["unknown_cis"] == ["service/ghost@prod"]
    assert [r.code for r in assessed.data.reasons] == ["unknown_ci"]


def test_update_that_matters_reassesses_and_one_that_does_not_is_quiet(feed):
    """Changing the rollback plan reassesses (revision 2); changing only the title does not."""
    feed(change_requested("CHG1", "service/ghost@prod", **SAFE))
    quiet = feed(change_updated("CHG1", time=at(hours=1), title="renamed"))
    loud = feed(change_updated("CHG1", time=at(hours=2), rollback_plan=" "))
    assert of_kind(quiet, "change_assessed") == []
    (reassessed,) = of_kind(loud, "change_assessed")
    assert reassessed.details()["revision"] == 2
    assert "no_rollback_plan" in [r.code for r in reassessed.data.reasons]


def test_missing_rollback_is_flagged_for_high_and_critical_only(feed):
    """change_missing_rollback for a critical change with no plan; not for a medium one."""
    feed(*payments_estate())
    risky = change_requested(
        "CHG1", "database/payments-pg@prod", rollback_plan=None, canary=False, db_migration=True
    )
    medium = change_requested("CHG2", "service/ghost@prod", rollback_plan=None, canary=True)
    found = feed(risky, medium)
    assert [f.subject for f in of_kind(found, "change_missing_rollback")] == ["CHG1"]
    levels = {f.subject: f.details()["level"] for f in of_kind(found, "change_assessed")}
    assert levels == {"CHG1": "critical", "CHG2": "medium"}


def test_missing_rollback_is_not_repeated_while_it_stays_missing(feed):
    """A reassessment that still lacks a plan does not raise change_missing_rollback again."""
    feed(*payments_estate())
    feed(change_requested("CHG1", "database/payments-pg@prod", rollback_plan=None,
                          canary=False, db_migration=True))  # fmt: skip
    again = feed(change_updated("CHG1", time=at(hours=1), canary=True))
    assert len(of_kind(again, "change_assessed")) == 1
    assert of_kind(again, "change_missing_rollback") == []


def test_stale_ci_in_scope_through_the_engine(feed):
    """A change on a CI not seen for longer than its max age scores stale_ci_in_scope."""
    feed(observed("pg", ci_type="database", owner="team-dba", time=T0))
    late = T0 + POLICY.staleness.max_age("database") + timedelta(hours=1)
    found = feed(change_requested("CHG1", "database/pg@prod", time=late, **SAFE))
    (assessed,) = of_kind(found, "change_assessed")
    assert "stale_ci_in_scope" in [r.code for r in assessed.data.reasons]


def test_a_long_list_in_a_reason_names_the_first_few_and_counts_the_rest():
    """Forty critical dependents: the detail names five, nearest first, and says 35 more."""
    critical = [record(f"service/s{i:02d}@prod", criticality=1) for i in range(40)]
    deps = {r.id: 1 + i // 20 for i, r in enumerate(critical)}
    found = risk.assess(POLICY, change(), scope(deps, records=[record(PG), *critical]), T0, 1)
    (reason,) = [reason for reason in found.reasons if reason.code == "critical_ci"]
    assert reason.detail.startswith("critical CIs affected: service/s00@prod (criticality 1, dep")
    assert reason.detail.endswith(" and 35 more") and reason.detail.count("criticality 1") == 5
