"""The benchmarks keep working: each runs at a tiny size and yields well-formed figures.

Benchmarks are not tests: nothing here asserts a timing, only that the numbers are numbers > 0.
"""

import functools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench import (
    failover,
    governance,
    lean_view,
    partitioning,
    recovery,
    register,
    run_all,
    scale,
    synthetic,
    throughput,
)
from cmdb_worker.rules.policy import Policy, load_policy
from cmdb_worker.worker.kafka_clients import ownership
from tests.partitions import interleaved, placed
from tests.recovery_stream import discovery_stream as recovery_stream
from tests.test_merges_across_restarts import chained_merges


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _all_positive(result: dict[str, Any], keys: list[str]) -> None:
    for key in keys:
        values = result[key] if isinstance(result[key], list) else [result[key]]
        assert values, key
        assert all(_positive(v) for v in values), (key, values)


def test_footprint_at_a_tiny_size() -> None:
    """The footprint gives bytes per CI and per relation, and its parts account for most of them
    (a little more at this size: they also count shared strings made before tracing began).
    Whatever ran before in the process (imports, caches filled) does not change the figure."""
    result = scale.footprint(1000)
    assert result["bytes_per_ci"] > 0 and result["bytes_per_relation"] > 0
    parts = sum(value for key, value in result.items() if key.startswith("of which"))
    assert 0.8 * result["bytes_per_ci"] < parts <= 1.05 * result["bytes_per_ci"]
    assert scale.footprint(1000)["bytes_per_ci"] == pytest.approx(result["bytes_per_ci"], rel=0.01)


def test_scale_at_a_tiny_size() -> None:
    """Every scale figure comes out, and the due tick makes about 1% of the CIs stale (their
    sources stay alive, so they are not merely unverified)."""
    result = scale.measure(2000, ticks=200, due_slices=2, changes=50)
    assert result["cis"] >= 2000
    assert 0.005 <= result["due_tick_fraction"] <= 0.02
    assert result["relations"] >= 2 * result["cis"]
    _all_positive(
        result,
        [
            "build_seconds",
            "rss_mib",
            "idle_tick_us",
            "blast_radius_p50_ms",
            "blast_radius_p99_ms",
            "due_tick_ms",
            "due_tick_cis",
        ],
    )


def test_governance_at_a_tiny_size() -> None:
    """Open changes are indexed, and every per-event figure comes out."""
    result = governance.measure(2000, 500, 60, seed=1)
    assert result["open_changes"] == 500
    _all_positive(
        result,
        ["conflicts_p50_ms", "conflicts_p99_ms", "change_request_p50_ms",
         "change_request_p99_ms", "deploy_p50_ms", "deploy_p99_ms", "rss_mib"],
    )  # fmt: skip


def test_register_at_a_tiny_size() -> None:
    """The register benchmark checks the fast writer against the reference and times both."""
    result = register.measure(50, repetitions=2)
    assert result["lessons"] == 50
    _all_positive(result, ["write_seconds", "write_seconds_max", "reference_seconds"])


def test_replay_at_a_tiny_size() -> None:
    result = run_all.replay(300, repetitions=1)
    for key in ("seconds", "eps", "peak_rss_mib"):
        assert _positive(result[key]["median"]), key


@pytest.mark.kafka
def test_throughput_at_a_tiny_size(kafka_bootstrap: str) -> None:
    result = throughput.measure(kafka_bootstrap, events=300, repetitions=1)
    assert result["events"] == 300
    _all_positive(
        result, ["worker_eps", "bare_eps", "ratio", "worker_startup_s", "worker_cpu_us_per_event"]
    )


@pytest.mark.kafka
def test_recovery_at_a_tiny_size(kafka_bootstrap: str) -> None:
    result = recovery.measure(kafka_bootstrap, 1000, repetitions=1)
    assert result["rebuilt_cis"] == [result["cis"]]
    _all_positive(result, ["ready_s", "rebuild_s", "peak_rss_mib", "records", "topic_bytes"])


MINE = ["throughput", "scale", "recovery", "replay"]


@pytest.mark.kafka
def test_run_all_writes_results(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    tiny = ["--bootstrap", kafka_bootstrap, "--repetitions", "1", "--events", "200",
            "--cis", "1000", "--replay-events", "200", "--ticks", "100", "--changes", "20",
            "--out", str(out)]  # fmt: skip
    results = run_all.main([*tiny, "--only", *MINE])
    assert set(results) == set(MINE)
    text = out.read_text()
    for heading in (
        "Machine and versions",
        "Targets",
        "Throughput",
        "Scale",
        "Recovery",
        "Replay",
        "kafka-python",
        "networkx",
        "Kafka broker",
        "nproc",
        "target at 1M: <= 30 s",
        "peak RSS during that start / steady RSS of the same state <= 1.2",
        "replay / bare json.loads >= 0.2",
        "bench/ANALYSIS.md",
    ):
        assert heading in text

    merged = run_all.main([*tiny, "--only", "scale", "--merge"])
    assert set(merged) == set(MINE)
    assert "Throughput" in out.read_text()


@pytest.mark.kafka
def test_failover_at_a_tiny_size(kafka_bootstrap: str) -> None:
    """One kill -9 of the active of three replicas gives a failover time, its summary and the
    new active's takeover step by step, which the report lists."""
    result = failover.measure(kafka_bootstrap, repetitions=1, rate=50)
    assert len(result["seconds"]) == 1
    _all_positive(result, ["seconds", "p50", "p99", "min", "max", "takeover_seconds"])
    phases = [f"takeover_{phase}_seconds" for phase in run_all.TAKEOVER_PHASES]
    assert all(len(result[phase]) == 1 for phase in phases)
    assert sum(result[phase][0] for phase in phases) <= result["takeover_seconds"][0] + 0.01
    report = run_all.report({"failover": result}, "pytest", 1.0)
    assert all(what in report for what in run_all.TAKEOVER_PHASES.values())


def _observed(name: str, depends_on: str) -> str:
    target = {"type": "service", "name": depends_on, "environment": "prod"}
    ci = {"type": "service", "name": name, "environment": "prod", "owner": "team-a"}
    return json.dumps({
        "specversion": "1.0", "id": f"obs-{name}", "source": "/discovery/k8s",
        "type": "cmdb.ci.observed", "time": "2026-11-01T00:00:00Z",
        "data": {"ci": ci, "relations": [{"type": "depends_on", "target": target}]},
    })  # fmt: skip


def test_partitioning_counts_a_placeholder_on_another_owner() -> None:
    """svc-0 and svc-2 fall on different partitions of 2: observing svc-0 with a relation to
    svc-2 writes svc-2's placeholder on its owner; with one partition nothing is foreign."""
    assert ownership(2).partition_of("service/svc-0@prod") == 0
    assert ownership(2).partition_of("service/svc-2@prod") == 1
    lines = [_observed("svc-0", depends_on="svc-2")]
    tallies = partitioning.survey(lines, load_policy(), [1, 2])["partitions"]
    spread = tallies["2"]["by_event_type"]["cmdb.ci.observed"]
    assert spread["foreign_writes_by_kind"]["ci"] == 1
    assert spread["owners_per_application"] == 2
    alone = tallies["1"]["events"]
    assert alone["share_writing_another_owner"] == 0 and alone["owners_per_application"] == 1


def test_partitioning_counts_the_operations_owners_exchange() -> None:
    """Judged by two owners, the relation from svc-0 to svc-2 (not yet observed) is one
    operation to svc-2's owner, and no key is written by its non-owner; one owner sends none."""
    lines = [_observed("svc-0", depends_on="svc-2")]
    tallies = partitioning.survey(lines, load_policy(), [1, 2], exchanged=1)["partitions"]
    two, one = tallies["2"]["operations"], tallies["1"]["operations"]
    assert two["operations_by_kind"] == {"referenced": 1} and two["foreign_writes_by_kind"] == {}
    assert two["operations_per_event"] == 1 and one["operations_per_event"] == 0


def test_partitioning_at_a_tiny_size() -> None:
    """Every event type and deadline kind of the synthetic stream gets its figures, an
    observation's report from its source and a deploy's DORA totals and findings (its lesson's
    included) are written by the CI's owner, and the view's cost comes out."""
    result = partitioning.survey(synthetic.events(3000, n_services=300), load_policy(), [6])
    tally = result["partitions"]["6"]
    assert set(tally["by_event_type"]) == {"cmdb.ci.observed", "dev.cdevents.service.deployed"}
    observed = tally["by_event_type"]["cmdb.ci.observed"]["foreign_writes_by_kind"]
    assert "source_report" not in observed and "source" not in observed
    deployed = tally["by_event_type"]["dev.cdevents.service.deployed"]["foreign_writes_by_kind"]
    assert "dora_team" not in deployed and "timeline" not in deployed  # its lesson's too
    assert {"stale", "phantom"} <= set(tally["by_deadline_kind"])
    for figures in [tally["events"], *tally["by_event_type"].values()]:
        assert 1 <= figures["owners_per_application"] <= 6
    _all_positive(result, ["changelog_records_per_event", "view_us_per_record"])


@functools.cache
def _streams() -> dict[str, tuple[list[str], Policy]]:
    """Built once for the three cases that read them (read only)."""
    sample, synthetic_stream, _ = partitioning.streams(2000)
    retiring = [json.dumps(event) for event in recovery_stream(2000)]
    return {
        "sample week": sample[1:],
        "synthetic": synthetic_stream[1:],
        "retirements and merges": (retiring, load_policy()),
    }


@pytest.mark.parametrize("read", ["in write order", "partitions interleaved"])
@pytest.mark.parametrize("stream", ["sample week", "synthetic", "retirements and merges"])
def test_a_lean_view_holds_the_graph_the_whole_view_holds(stream: str, read: str) -> None:
    """What other owners' judgements read (edges, a CI's read fields, aliases, open changes) is
    the same in a lean view as in the engine that wrote the changelog: merges, retirements,
    tombstones and churning relations included, whatever order cmdb.state's partitions are
    read in."""
    lines, policy = _streams()[stream]
    survey = partitioning.Survey(policy, 6)
    survey.run(lines)
    entries = survey.changelog
    if read == "partitions interleaved":
        entries = list(interleaved(placed(entries, lambda entry: entry[0], 3), seed=1))
    lean = lean_view.LeanView()
    lean.apply(entries)
    cmdb = survey.engine.state.cmdb
    assert set(lean.graph.edges) == set(cmdb.graph.edges)
    assert set(lean.graph.nodes) == set(cmdb.graph.nodes)
    for record in cmdb.records():
        read = {field: getattr(record, field) for field in lean_view.READ_FIELDS}
        assert lean.graph.nodes[record.id] == read
    assert lean.aliases == cmdb.aliases
    assert lean.changes == survey.engine.state.changes


def test_a_lean_view_resolves_merged_ids_read_out_of_order() -> None:
    engine, read = chained_merges()
    lean = lean_view.LeanView()
    lean.apply(read)
    assert lean.aliases == engine.state.cmdb.aliases == {"host/h0": "host/h1", "host/h2": "host/h1"}


def test_run_all_reports_what_partitioning_would_meet(tmp_path: Path) -> None:
    """The report gets a row per stream and partition count, and one per stream for the view."""
    out = tmp_path / "RESULTS.md"
    results = run_all.main(["--only", "partitioning", "--events", "300", "--out", str(out)])
    surveys = results["partitioning"]
    assert len(surveys) == 3  # the sample week and two synthetic streams
    text = out.read_text()
    assert "## What partitioned judgement would meet" in text
    for name, survey in surveys.items():
        assert set(survey["partitions"]) == {"3", "6", "12"}
        for n, tally in survey["partitions"].items():
            owners = tally["events"]["owners_per_application"]
            assert f"| {name}, {n} | " in text and f"| {owners:.2f} |" in text
        assert f"| {name} | {survey['changelog_records_per_event']:.2f} |" in text
