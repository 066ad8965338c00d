"""Phantoms and late relations (CONTRACT 9.7): a CI only relations name gets ci_phantom after its
grace; a relation to a retired CI raises relation_dangling again and never brings the CI back.
Each test runs live and after a changelog rebuild."""

from datetime import timedelta

from tests.events import at, observed, retired
from tests.restarts import Run, of_kind

GHOST, HOST = "database/ghost-db@prod", "host/h1"


def pointing(name: str, hours: float, target: str = GHOST, source: str = "/discovery/a") -> dict:
    return observed(name, source=source, owner="t", time=at(hours=hours),
                    relations=[("depends_on", target)], id=f"{name}-{hours}")  # fmt: skip


def test_a_ci_only_relations_name_is_a_phantom_after_its_grace(run: Run):
    """ci_phantom comes once, after hygiene.phantom_grace from the first relation naming the CI,
    listing the CIs that point at it."""
    run.feed(pointing("api", 0), pointing("web", 2))
    run.restart()
    grace = run.policy.hygiene.phantom_grace
    early = run.keep_alive(at() + grace, "/discovery/a")
    late = run.keep_alive(at() + grace + timedelta(hours=6), "/discovery/a", since=at() + grace)
    assert of_kind(early, "ci_phantom") == []
    (phantom,) = of_kind(late, "ci_phantom")
    assert phantom.subject == GHOST
    assert phantom.details()["referenced_by"] == ["service/api@prod", "service/web@prod"]
    run.restart()
    quiet = run.keep_alive(at(days=3), "/discovery/a", since=at(days=1.5))
    assert of_kind(quiet, "ci_phantom") == []


def test_a_target_observed_within_its_grace_is_no_phantom(run: Run):
    """A relation target that a source observes itself before the grace ends is a real CI."""
    run.feed(pointing("api", 0))
    run.restart()
    run.feed(observed("ghost-db", ci_type="database", owner="dba", time=at(hours=3),
                      relations=[("runs_on", "host/db1")]))  # fmt: skip
    later = run.keep_alive(at(days=1, hours=4), "/discovery/a")
    assert [f.subject for f in of_kind(later, "ci_phantom")] == ["host/db1"]


def test_a_relation_to_a_retired_ci_is_dangling_again_and_never_recreates_it(run: Run):
    """Reported after the retirement, a relation to the retired CI re-raises relation_dangling
    on the pointing CI and leaves the retired CI out of the graph."""
    run.feed(observed("h1", ci_type="host", environment=None), pointing("api", 0.5, HOST))
    first = run.feed(retired("host", "h1", time=at(hours=1)))
    run.restart()
    again = run.feed(pointing("api", 24, HOST))
    assert [f.subject for f in of_kind(first, "relation_dangling")] == ["service/api@prod"]
    (dangling,) = of_kind(again, "relation_dangling")
    assert dangling.subject == "service/api@prod" and dangling.details()["target"] == HOST
    assert dangling.id != of_kind(first, "relation_dangling")[0].id
    assert HOST not in run.engine.state.cmdb.graph
    assert of_kind(run.keep_alive(at(days=3), "/discovery/a", since=at(days=1)), "ci_phantom") == []


def test_a_retired_ci_observed_again_comes_back(run: Run):
    """Only the CI's own observation after its retirement brings it back into the graph."""
    run.feed(observed("h1", ci_type="host", environment=None),
             retired("host", "h1", time=at(hours=1)))  # fmt: skip
    run.restart()
    run.feed(observed("h1", ci_type="host", environment=None, time=at(hours=2), id="back"))
    assert HOST in run.engine.state.cmdb.graph


def test_a_late_relation_counts_the_phantom_grace_from_its_own_time(run: Run):
    """A relation reported late (older than the first) moves the start of the grace back, and a
    restart keeps it: ci_phantom comes a grace after the earliest relation."""
    run.feed(pointing("api", 2))
    run.feed(pointing("web", 0))  # a transaction of its own: the placeholder changed alone
    run.restart()
    grace = run.policy.hygiene.phantom_grace
    found = run.keep_alive(at() + grace + timedelta(hours=1), "/discovery/a")
    assert [finding.subject for finding in of_kind(found, "ci_phantom")] == [GHOST]
