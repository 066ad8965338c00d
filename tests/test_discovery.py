"""Discovery events against the CMDB graph: identity, merging, relations, retirement, scans."""

from datetime import timedelta

from cmdb_worker.rules.policy import parse_policy
from cmdb_worker.worker.engine.apply import Engine
from tests.events import at, heartbeats, kinds, observed, retired, scan_completed, to_input


def test_out_of_order_observation_never_moves_last_seen_back(feed, engine):
    """An older observation arriving late leaves last-seen and the newer owner untouched."""
    feed(observed("api", time=at(hours=5), owner="team-new"))
    feed(observed("api", time=at(hours=1), owner="team-old"), now=at(hours=5))
    record = engine.state.cmdb.get("service/api@prod")
    assert record.last_seen == at(hours=5)
    assert record.owner == "team-new"


def test_late_complete_relations_do_not_undo_newer_ones(feed, engine):
    """A late, older relations_complete list from the same source removes nothing newer."""
    feed(
        observed(
            "api", time=at(hours=5), relations=[("depends_on", "database/pg@prod")], complete=True
        )
    )
    feed(observed("api", time=at(hours=1), relations=[], complete=True), now=at(hours=5))
    assert engine.state.cmdb.graph.has_edge("service/api@prod", "database/pg@prod")


def test_redelivered_event_has_no_effect(engine):
    """The same (source, id) applied twice yields no findings and no change the second time."""
    message = observed("api", owner=None, id="obs-1")
    first = engine.apply(to_input(message), at())
    second = engine.apply(to_input(message), at())
    assert kinds(first) == ["ci_no_owner"]
    assert second is None


def test_same_host_from_two_sources_becomes_one_ci_with_an_alias(feed, engine):
    """Two names sharing an fqdn are one CI; the later name is an alias that resolves to it."""
    feed(
        observed(
            "db01.example.net",
            ci_type="host",
            environment=None,
            source="/discovery/vmw",
            identifiers={"fqdn": "db01.example.net"},
        )
    )
    findings = feed(
        observed(
            "ip-10-0-3-17",
            ci_type="host",
            environment=None,
            source="/aws",
            identifiers={"fqdn": "db01.example.net"},
            time=at(hours=1),
        )
    )
    cmdb = engine.state.cmdb
    assert cmdb.graph.number_of_nodes() == 1
    assert cmdb.get("host/ip-10-0-3-17").id == "host/db01.example.net"
    assert cmdb.get("host/db01.example.net").aliases == {"host/ip-10-0-3-17"}
    assert kinds(findings) == ["ci_duplicate_merged"]
    assert findings[0].subject == "host/db01.example.net"
    assert set(cmdb.get("host/db01.example.net").seen_by) == {"/discovery/vmw", "/aws"}


def test_relation_to_an_alias_lands_on_the_kept_ci(feed, engine):
    """A relation naming the alias points at the one merged CI, not at a new placeholder."""
    feed(
        observed("db01", ci_type="host", environment=None, identifiers={"serial_number": "S1"}),
        observed(
            "vm-9",
            ci_type="host",
            environment=None,
            identifiers={"serial_number": "S1"},
            source="/b",
        ),
        observed("pg", ci_type="database", relations=[("runs_on", "host/vm-9")]),
    )
    assert engine.state.cmdb.graph.has_edge("database/pg@prod", "host/db01")
    assert "host/vm-9" not in engine.state.cmdb.graph


def test_two_existing_cis_merge_with_their_edges(feed, engine):
    """A CI that later reports a strong id held by another is folded into it, edges and all."""
    feed(
        observed("a", ci_type="host", environment=None, identifiers={"fqdn": "x.example"}),
        observed("b", ci_type="host", environment=None, source="/b"),
        observed("pg", ci_type="database", relations=[("runs_on", "host/b")]),
        observed(
            "b",
            ci_type="host",
            environment=None,
            source="/b",
            time=at(hours=1),
            identifiers={"fqdn": "x.example"},
        ),
    )
    graph = engine.state.cmdb.graph
    assert "host/b" not in graph
    assert graph.has_edge("database/pg@prod", "host/a")


def test_different_types_with_the_same_identifier_stay_apart(feed, engine):
    """Strong identifiers identify a CI only among CIs of the same type."""
    feed(
        observed("x", ci_type="host", environment=None, identifiers={"fqdn": "x.example"}),
        observed(
            "x-lb", ci_type="load_balancer", environment=None, identifiers={"fqdn": "x.example"}
        ),
    )
    assert engine.state.cmdb.graph.number_of_nodes() == 2


def test_relations_complete_removes_a_vanished_edge_of_that_source_only(feed, engine):
    """relations_complete drops this source's unlisted edges and keeps other sources' ones."""
    feed(
        observed(
            "api",
            relations=[("depends_on", "database/pg@prod"), ("depends_on", "service/cache@prod")],
            complete=True,
        ),
        observed("api", source="/discovery/b", relations=[("depends_on", "service/cache@prod")]),
        observed(
            "api", time=at(hours=1), relations=[("depends_on", "database/pg@prod")], complete=True
        ),
    )
    graph = engine.state.cmdb.graph
    assert graph.has_edge("service/api@prod", "database/pg@prod")
    assert graph["service/api@prod"]["service/cache@prod"] == {"depends_on": {"/discovery/b": at()}}
    feed(observed("api", source="/discovery/b", time=at(hours=2), complete=True))
    assert not graph.has_edge("service/api@prod", "service/cache@prod")


def test_retirement_removes_the_ci_and_flags_what_pointed_at_it(feed, engine):
    """A retired CI leaves with its edges; each CI still pointing at it gets relation_dangling."""
    feed(
        observed("api", relations=[("runs_on", "host/h1")]),
        observed("h1", ci_type="host", environment=None, relations=[("part_of", "rack/r1")]),
    )
    findings = feed(retired("host", "h1", time=at(hours=1)))
    graph = engine.state.cmdb.graph
    assert "host/h1" not in graph
    assert not graph.has_edge("host/h1", "rack/r1")
    assert kinds(findings) == ["relation_dangling"]
    assert findings[0].subject == "service/api@prod"
    assert findings[0].details()["target"] == "host/h1"


def test_a_source_whose_cis_all_went_has_no_index_entry_left(feed, engine):
    """The source index keeps no empty entry once a source's last CI is retired."""
    feed(observed("h1", ci_type="host", environment=None, source="/discovery/old"),
         observed("h2", ci_type="host", environment=None))  # fmt: skip
    feed(retired("host", "h1", time=at(hours=1)))
    assert "/discovery/old" not in engine.state.cmdb.by_source
    assert engine.state.cmdb.seen_by_source("/discovery/a") == {"host/h2"}


def test_retired_ci_is_not_checked_for_staleness(feed, engine):
    """Once retired, a CI never produces ci_stale, however long the clock runs."""
    feed(observed("h1", ci_type="host", environment=None), retired("host", "h1", time=at(hours=1)))
    assert feed(*heartbeats(at(days=30))) == []


def test_an_older_observation_does_not_resurrect_a_retired_ci(feed, engine):
    """An observation from before the retirement, arriving after it, is ignored."""
    feed(retired("host", "h1", time=at(hours=2)))
    feed(observed("h1", ci_type="host", environment=None, time=at(hours=1)), now=at(hours=2))
    assert "host/h1" not in engine.state.cmdb.graph
    feed(observed("h1", ci_type="host", environment=None, time=at(hours=3), id="later"))
    assert "host/h1" in engine.state.cmdb.graph


def test_relation_to_a_retired_ci_is_dangling(feed, engine):
    """A source naming a retired CI as a target gets relation_dangling, and no edge is made."""
    feed(observed("h1", ci_type="host", environment=None), retired("host", "h1", time=at(hours=1)))
    findings = feed(observed("api", time=at(hours=1), relations=[("runs_on", "host/h1")]))
    assert "relation_dangling" in kinds(findings)
    assert "host/h1" not in engine.state.cmdb.graph


def test_scan_completion_flags_in_scope_cis_the_source_missed(feed):
    """CIs this source saw before but not since the scan began get ci_missing_from_scan."""
    feed(
        observed("h1", ci_type="host", environment="prod"),
        observed("h2", ci_type="host", environment="prod"),
        observed("h3", ci_type="host", environment="dev"),
        observed("api", environment="prod"),
        observed("h4", ci_type="host", environment="prod", source="/other"),
    )
    feed(observed("h1", ci_type="host", environment="prod", time=at(hours=2)))
    findings = feed(
        scan_completed(started=at(hours=1), time=at(hours=3), types=["host"], environment="prod")
    )
    assert [(f.kind, f.subject) for f in findings] == [("ci_missing_from_scan", "host/h2@prod")]


def test_ci_goes_stale_after_its_types_max_age_and_resolves_when_seen(feed, engine):
    """A service (max age 1d) is stale only past 24h and ci_stale_resolved when seen again."""
    feed(observed("api", owner="team", relations=[("depends_on", "database/pg@prod")]))
    assert feed(*heartbeats(at(hours=24))) == []
    stale = engine.tick(at(hours=24) + timedelta(seconds=1))
    assert kinds(stale) == ["ci_phantom", "ci_stale"]  # database/pg is never observed itself
    assert feed(*heartbeats(at(days=3), since=at(hours=24))) == []
    resolved = feed(observed("api", owner="team", time=at(days=3), id="again"))
    assert kinds(resolved) == ["ci_stale_resolved"]
    assert not engine.state.cmdb.get("service/api@prod").stale


def test_max_age_comes_from_the_policy_by_type():
    """A host uses its own max age (3d here), other types the default."""
    engine = Engine(parse_policy({"staleness": {"default": "2h", "by_type": {"host": "3d"}}}))
    for message in (
        observed("h", ci_type="host", environment=None),
        observed("x", ci_type="queue"),
    ):
        engine.apply(to_input(message), at())
    assert [f.subject for f in engine.tick(at(hours=3))] == ["queue/x@prod"]


def test_no_owner_only_in_governed_environments_and_once(feed):
    """ci_no_owner is raised once for an ownerless prod CI, never for dev."""
    findings = feed(
        observed("api", environment="prod"),
        observed("api", time=at(hours=1)),
        observed("tool", environment="dev"),
    )
    assert [(f.kind, f.subject) for f in findings] == [("ci_no_owner", "service/api@prod")]


def test_orphan_after_grace_for_expected_types_only(feed, engine):
    """An unconnected service is an orphan once the grace passes; an unconnected host is not."""
    feed(
        observed("lonely", owner="t"),
        observed("h", ci_type="host", environment=None),
        observed("busy", owner="t", relations=[("depends_on", "database/pg@prod")]),
    )
    findings = engine.tick(at(hours=2))
    assert [(f.kind, f.subject) for f in findings] == [("ci_orphan", "service/lonely@prod")]


def test_orphan_not_raised_when_a_relation_arrives_in_time(feed, engine):
    """A CI that gains a dependent within the grace is not an orphan."""
    feed(
        observed("db", ci_type="database", owner="t"),
        observed(
            "api", owner="t", time=at(hours=0.5), relations=[("depends_on", "database/db@prod")]
        ),
    )
    assert "ci_orphan" not in kinds(engine.tick(at(hours=2)))


def test_losing_the_last_relation_to_a_retirement_makes_an_orphan(feed, engine):
    """A service whose only relation pointed at a retired host is an orphan, live as after a
    restart (which re-arms every CI's checks)."""
    feed(observed("reports", owner="t", relations=[("runs_on", "host/old")]))
    found = feed(retired("host", "old", time=at(hours=0.5)))
    assert kinds(found) == ["relation_dangling"]
    assert [(f.kind, f.subject) for f in engine.tick(at(hours=2))] == [
        ("ci_orphan", "service/reports@prod")
    ]


def test_losing_the_last_dependent_makes_an_orphan(feed, engine):
    """A service connected only by a dependent's relation is an orphan once the dependent's
    complete report stops listing it, or the dependent retires: live, as a restart (which
    re-arms every CI's checks) would find it."""
    web = {"owner": "t", "complete": True}
    feed(
        observed(
            "web", **web, relations=[("uses", "service/api@prod"), ("uses", "service/db@prod")]
        )
    )
    feed(observed("api", owner="t", source="/discovery/b"))
    feed(observed("db", owner="t", source="/discovery/b"))
    dropped = feed(
        observed("web", **web, time=at(hours=2), relations=[("uses", "service/db@prod")])
    )
    assert [(f.kind, f.subject) for f in dropped] == [("ci_orphan", "service/api@prod")]
    gone = feed(retired("service", "web", environment="prod", time=at(hours=3)))
    assert [(f.kind, f.subject) for f in gone] == [("ci_orphan", "service/db@prod")]


def test_finding_ids_are_deterministic(policy):
    """Two engines fed the same facts emit findings with the same ids."""

    def run() -> list[str]:
        engine = Engine(policy)
        findings = engine.apply(to_input(observed("api")), at()) or []
        for beat in map(to_input, heartbeats(at(days=2))):
            findings += engine.apply(beat, beat.time) or []
        return [f.id for f in findings]

    assert run() == run()
    assert len(set(run())) == 3  # ci_no_owner, ci_orphan and ci_stale


def test_orphan_grace_counts_from_first_sighting(feed, engine):
    """Seeing an unconnected CI again does not push its orphan check further out."""
    feed(observed("lonely", owner="t"), observed("lonely", owner="t", time=at(hours=0.9)))
    assert kinds(engine.tick(at(hours=1.1))) == ["ci_orphan"]
