"""Discovery source health (CONTRACT 9.5): a silent collector is one finding and one lesson, its
CIs are unverified instead of stale, and after it recovers they are judged from the recovery.
Every test runs live and after a changelog rebuild at its turning point."""

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from cmdb_worker.rules.policy import parse_policy
from cmdb_worker.schemas.lessons import Lesson
from cmdb_worker.schemas.records import SourceHealth
from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.export import node_document
from cmdb_worker.worker.kafka_clients import ownership
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.status import refresh_state_gauges
from tests.events import T0, at, kinds, observed
from tests.governance_helpers import PIPELINE, deploy
from tests.restarts import Run, of_kind

US, EU = "/discovery/k8s-us", "/discovery/a"
ONLY_US = [f"svc-{n}" for n in range(5)]


def estate(time=T0, names=ONLY_US) -> list[dict]:
    """Five services only US reports, and ``shared``, which EU reports too."""
    pg = [("depends_on", "database/pg@prod")]
    us = [observed(name, source=US, owner="team-us", time=time, relations=pg) for name in names]
    shared = [
        observed("shared", source=source, owner="team-eu", time=T0, relations=pg)
        for source in (US, EU)
    ]
    return us + (shared if time == T0 else [])


def lessons_of(run: Run) -> list[Lesson]:
    return list(run.engine.state.lessons.values())


def test_a_silent_source_is_one_finding_and_one_lesson_not_a_stale_storm(run: Run):
    """US falling silent gives one source_silent and one source_silent lesson; the CIs only it
    reports get no ci_stale and no cmdb_stale lesson, while ``shared`` (also reported by a live
    source) goes stale and files its lesson as before."""
    run.feed(*estate())
    silent = run.keep_alive(at(hours=7), EU)
    run.restart()
    later = run.keep_alive(at(days=5), EU, since=at(hours=7))
    (finding,) = of_kind(silent, "source_silent")
    assert finding.subject == US
    assert finding.details()["affected_cis"] == 5
    assert finding.details()["last_report"] == T0
    assert [f.subject for f in of_kind(later, "ci_stale")] == ["service/shared@prod"]
    lessons = {(lesson.rule, lesson.subject, lesson.owner) for lesson in lessons_of(run)}
    assert lessons == {("source_silent", US, "CMDB Manager"),
                       ("cmdb_stale", "service/shared@prod", "team-eu")}  # fmt: skip
    assert "source_silent" not in kinds(later)


def test_unverified_cis_are_counted_by_source_and_in_the_graph(run: Run):
    """cmdb_worker_cis_unverified{source} counts the CIs only the silent source vouches for,
    from the moment it falls silent; the source's last report is exported, and cmdb.json shows
    them unverified, not stale, even past their max age."""
    run.feed(*estate())
    run.keep_alive(at(hours=7), EU)
    registry = CollectorRegistry()
    refresh_state_gauges(run.engine, Metrics(registry), at(hours=7))
    value = registry.get_sample_value
    assert value("cmdb_worker_cis_unverified", {"source": US}) == 5
    run.restart()
    run.keep_alive(at(days=2), EU, since=at(hours=7))
    refresh_state_gauges(run.engine, Metrics(registry := CollectorRegistry()), at(days=2))
    value = registry.get_sample_value
    assert value("cmdb_worker_cis_unverified", {"source": US}) == 5
    assert value("cmdb_worker_cis_unverified", {"source": EU}) == 0
    assert value("cmdb_worker_source_silent", {"source": US}) == 1
    last_report = value("cmdb_worker_source_last_report_timestamp_seconds", {"source": US})
    assert last_report == T0.timestamp()
    record = run.engine.state.cmdb.get("service/svc-0@prod")
    assert not record.stale and "unverified" in record.flags
    node = node_document(record, run.policy, at(days=2))
    assert (node["stale"], node["unverified"]) == (False, True)


def test_a_live_source_reporting_an_unverified_ci_verifies_it(run: Run):
    """A CI only a silent source vouched for is verified again, and judged as usual, once a live
    discovery source reports it; a deploy alone does not verify it."""
    run.feed(*estate())
    run.keep_alive(at(hours=7), EU)
    run.feed(deploy("svc-0", id="d-svc-0", time=at(hours=8), change_id=None))
    run.restart()
    assert "unverified" in run.engine.state.cmdb.get("service/svc-0@prod").flags
    run.feed(observed("svc-1", source=EU, owner="team-us", time=at(hours=8),
                      relations=[("depends_on", "database/pg@prod")]))  # fmt: skip
    later = run.keep_alive(at(days=1, hours=9), EU, since=at(hours=8))
    assert "unverified" not in run.engine.state.cmdb.get("service/svc-1@prod").flags
    assert "service/svc-1@prod" in [f.subject for f in of_kind(later, "ci_stale")]
    assert "service/svc-0@prod" not in [f.subject for f in of_kind(later, "ci_stale")]


def test_recovery_judges_the_sources_cis_again_from_the_recovery(run: Run):
    """US reporting again gives source_recovered; the CI it no longer reports goes stale one
    max age after the recovery, not at once for its old last sighting."""
    run.feed(*estate())
    run.keep_alive(at(days=2), EU)
    recovered = run.feed(*estate(time=at(days=2), names=ONLY_US[:4]))
    run.restart()
    max_age = run.policy.staleness.max_age("service")
    before = run.keep_alive(at(days=2) + max_age, EU, US, since=at(days=2))
    after = run.keep_alive(at(days=2) + max_age + timedelta(hours=1), EU, US,
                           since=at(days=2) + max_age)  # fmt: skip
    assert [f.subject for f in of_kind(recovered, "source_recovered")] == [US]
    assert of_kind(before, "ci_stale") == []
    assert "service/svc-4@prod" in [f.subject for f in of_kind(after, "ci_stale")]
    assert "unverified" not in run.engine.state.cmdb.get("service/svc-0@prod").flags


def test_a_recovered_sources_ci_stale_lesson_counts_from_the_recovery(run: Run):
    """The cmdb_stale lesson of a CI the recovered source dropped waits for its grace after the
    recovery-based staleness, like any other."""
    run.feed(*estate())
    run.keep_alive(at(days=2), EU)
    run.feed(*estate(time=at(days=2), names=ONLY_US[:4]))
    run.restart()
    run.keep_alive(at(days=5.9), EU, US, since=at(days=2))
    assert ("cmdb_stale", "service/svc-4@prod") not in run.engine.state.lesson_keys
    run.keep_alive(at(days=6.1), EU, US, since=at(days=5.9))
    assert ("cmdb_stale", "service/svc-4@prod") in run.engine.state.lesson_keys


def test_silence_period_and_owner_come_from_the_policy():
    """sources.by_source gives a source its own silence period and sources.owners the owner of
    its lesson."""
    policy = parse_policy({"sources": {"by_source": {US: "2d"}, "owners": {US: "team-k8s"}}})
    run = Run(False, policy)
    run.feed(*estate())
    assert of_kind(run.keep_alive(at(days=2), EU), "source_silent") == []
    (silent,) = of_kind(run.keep_alive(at(days=2, hours=1), EU, since=at(days=2)), "source_silent")
    (lesson,) = lessons_of(run)
    assert (silent.subject, lesson.rule, lesson.owner) == (US, "source_silent", "team-k8s")


def test_deploys_are_sightings_not_sources(run: Run):
    """A service that only a pipeline reports is judged stale normally: the pipeline is never a
    discovery source, so never silent."""
    run.feed(deploy("orders", id="d1", time=T0, change_id=None))
    run.restart()
    later = run.keep_alive(at(days=2), EU)
    assert PIPELINE not in run.engine.state.sources
    assert [f.subject for f in of_kind(later, "ci_stale")] == ["service/orders@prod"]


def test_a_recovered_source_can_fall_silent_again(run: Run):
    """After recovering, a source that stops again is silent again: a second source_silent, and
    its lesson counts a second occurrence."""
    run.feed(*estate())
    run.keep_alive(at(days=1), EU)
    run.feed(*estate(time=at(days=1)))
    run.restart()
    again = run.keep_alive(at(days=2), EU, since=at(days=1))
    assert [f.subject for f in of_kind(again, "source_silent")] == [US]
    (lesson,) = [lesson for lesson in lessons_of(run) if lesson.rule == "source_silent"]
    assert lesson.occurrences == 2


OWNERS = ownership(3)
"""Three owner partitions, as Kafka's default partitioner places the CIs' ids."""


def _written(run: Run, source: str) -> dict[str, dict]:
    """The source's record and partials written since the last call, with their last value."""
    written = {
        key: json.loads(value)
        for key, value in run.entries
        if key.startswith("source") and key.endswith(source)
    }
    run.entries = []
    return written


def _partial(ci_id: str) -> str:
    return f"source_report/{OWNERS.partition_of(ci_id)}/{US}"


def test_each_owner_partition_writes_only_its_own_partial_of_a_source():
    """Every report raises the partial of the partition the reported CI belongs to, which
    holds the latest report among that partition's CIs; the source's own record (another
    owner's key) is written only when the source falls silent and when it recovers."""
    run = Run(False, ownership=OWNERS)
    reports = [observed(f"svc-{n}", source=US, time=at(hours=n / 4)) for n in range(12)]
    run.feed(*reports)
    latest: dict[str, str] = {}
    for report in reports:
        latest[_partial(f"service/{report['data']['ci']['name']}@prod")] = report["time"]
    written = _written(run, US)
    assert sorted(written) == sorted(latest) and len(latest) == 3
    assert {key: value["last_report"] for key, value in written.items()} == latest
    run.keep_alive(at(days=1), EU)
    (key, value), *others = _written(run, US).items()
    assert (key, others) == (f"source/{US}", [])
    assert SourceHealth(**value) == SourceHealth(source=US, last_report=at(hours=2.75), silent=True)
    run.feed(observed("svc-0", source=US, time=at(days=1, hours=1)))
    written = _written(run, US)
    assert sorted(written) == sorted([f"source/{US}", _partial("service/svc-0@prod")])
    assert written[f"source/{US}"]["silent"] is False


def _compacted(run: Run) -> list[changelog.Entry]:
    """Each key's last record, as a compacted cmdb.state keeps them."""
    return list(dict(run.entries).items())


def _partitioned_run(recover: bool) -> Run:
    """US reports on every owner partition, falls silent, and (if ``recover``) comes back on
    one partition, then reports on the others."""
    run = Run(False, ownership=OWNERS)
    run.feed(*estate())
    run.keep_alive(at(days=1), EU)
    if recover:
        run.feed(*estate(time=at(days=1, hours=1), names=ONLY_US[:1]))
        run.feed(*estate(time=at(days=1, hours=2), names=ONLY_US[1:]))
    return run


@pytest.mark.parametrize("recover", [False, True], ids=["silent", "recovered"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_source_read_back_in_any_order_is_as_it_was(recover: bool, data: st.DataObject):
    """The source's record and its partials, read back in any order (each key once, as after
    compaction), give its silence as written and its latest report of all."""
    live = _partitioned_run(recover)
    entries = data.draw(st.permutations(_compacted(live)))
    rebuilt = Engine(live.policy, OWNERS)
    changelog.rebuild(rebuilt, entries)
    assert rebuilt.state.sources == live.engine.state.sources
    assert rebuilt.state.sources[US].silent is not recover


def test_a_changelog_written_before_the_partials_restores_its_sources():
    """A ``source/<name>`` record from before partials existed (its last report kept there)
    restores the source as it was, silence deadline included."""
    engine = Engine(parse_policy({}))
    health = SourceHealth(source=US, last_report=T0)
    changelog.rebuild(engine, [(f"source/{US}", health.model_dump_json().encode())])
    assert engine.state.sources == {US: health}
    (finding,) = of_kind(engine.tick(at(hours=7)), "source_silent")
    assert finding.details()["last_report"] == T0
