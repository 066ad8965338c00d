"""``cmdb-worker replay``: output files, dead letters by line, --as-of, --policy, the sample."""

import json
from pathlib import Path

import yaml

from cmdb_worker.worker.cli import main
from tests.events import at, cloudevent, heartbeats, iso, observed, retired

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "events.jsonl"
SAMPLE_POLICY = SAMPLE.with_name("policy.yaml")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    return main(["replay", *args, "--out", str(out), "--quiet"]), out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


BAD = {
    "not_json": "{oops",
    "not_an_object": "[1, 2, 3]",
    "missing_field": json.dumps({k: v for k, v in observed("x").items() if k != "id"}),
    "bad_time": json.dumps(observed("x") | {"time": "20/11/2026"}),
    "wrong_type": json.dumps(observed("x") | {"source": ["not", "a", "string"]}),
    "unknown_type": json.dumps(observed("x") | {"type": "cmdb.ci.teleported"}),
}


def test_bad_lines_are_dead_lettered_by_line_and_reason_and_the_replay_goes_on(tmp_path):
    """Each bad line lands in dead_letters.jsonl with its number and reason; good lines apply."""
    lines = [json.dumps(observed("first", owner="t"))]
    for bad in BAD.values():
        lines += [bad, json.dumps(observed(f"after-{len(lines)}", owner="t"))]
    code, out = run(tmp_path, str(write_lines(tmp_path / "e.jsonl", lines)))
    assert code == 0
    letters = read_jsonl(out / "dead_letters.jsonl")
    assert [(d["line"], d["reason"].split(":")[0]) for d in letters] == [
        (2 * i + 2, reason) for i, reason in enumerate(BAD)
    ]
    assert [d["raw"] for d in letters] == list(BAD.values())
    assert len(json.loads((out / "cmdb.json").read_text())["nodes"]) == 1 + len(BAD)


def test_every_output_file_is_written(tmp_path):
    """A replay writes findings, lessons, dead letters, the graph and the summary."""
    lines = [
        json.dumps(observed("api", relations=[("depends_on", "database/pg@prod")])),
        *(json.dumps(beat) for beat in heartbeats(at(days=2))),
        json.dumps(observed("pg", ci_type="database", owner="dba", time=at(days=2))),
    ]
    code, out = run(tmp_path, str(write_lines(tmp_path / "e.jsonl", lines)))
    assert code == 0
    findings = read_jsonl(out / "findings.jsonl")
    assert {f["data"]["kind"] for f in findings} == {"ci_no_owner", "ci_stale", "ci_phantom"}
    assert all(
        f["specversion"] == "1.0" and f["type"] == f"cmdb.finding.{f['data']['kind']}"
        for f in findings
    )
    assert "lessons_register" in yaml.safe_load((out / "lessons.yaml").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["findings"] == {"ci_no_owner": 1, "ci_phantom": 1, "ci_stale": 1}
    assert summary["cis"] == 2 and summary["relations"] == 1


def test_graph_export_is_node_link_with_the_contract_fields(tmp_path):
    """cmdb.json is NetworkX node-link data; every node has the contract's fields."""
    lines = [
        json.dumps(
            observed(
                "api", owner="t", criticality=1, relations=[("depends_on", "database/pg@prod")]
            )
        )
    ]
    _, out = run(tmp_path, str(write_lines(tmp_path / "e.jsonl", lines)))
    graph = json.loads((out / "cmdb.json").read_text())
    api = next(node for node in graph["nodes"] if node["id"] == "service/api@prod")
    assert {
        "id",
        "type",
        "name",
        "environment",
        "owner",
        "criticality",
        "last_seen",
        "stale",
        "aliases",
    } <= api.keys()
    assert (api["owner"], api["criticality"], api["stale"]) == ("t", 1, False)
    assert graph["links"] == [
        {
            "type": "depends_on",
            "source": "service/api@prod",
            "target": "database/pg@prod",
            "key": "depends_on",
            "reported_by": {"/discovery/a": iso(at())},
        }
    ]


def test_as_of_judges_staleness_at_that_time(tmp_path):
    """--as-of later than the last event makes a CI stale in findings and in cmdb.json."""
    events = [observed("h", ci_type="host", environment=None), *heartbeats(at(days=2.9))]
    path = write_lines(tmp_path / "e.jsonl", [json.dumps(event) for event in events])
    _, out = run(tmp_path, str(path), "--as-of", iso(at(days=3.1)))
    node = json.loads((out / "cmdb.json").read_text())["nodes"][0]
    assert node["stale"] is True
    assert [f["data"]["kind"] for f in read_jsonl(out / "findings.jsonl")] == ["ci_stale"]


def test_wrapped_lines_carry_binary_mode_headers(tmp_path):
    """A {key, headers, value} line is decoded in binary mode from its ce_ headers."""
    headers = {
        "ce_specversion": "1.0",
        "ce_id": "w-1",
        "ce_source": "/disc",
        "ce_type": "cmdb.ci.observed",
        "ce_time": iso(at()),
    }
    value = {"ci": {"type": "host", "name": "h9"}}
    line = json.dumps({"key": "host/h9", "headers": headers, "value": value})
    _, out = run(tmp_path, str(write_lines(tmp_path / "e.jsonl", [line])))
    graph = json.loads((out / "cmdb.json").read_text())
    assert [node["id"] for node in graph["nodes"]] == ["host/h9"]


def test_several_files_replay_in_order(tmp_path):
    """Files are replayed one after another, so a retirement in the second file applies."""
    first = write_lines(
        tmp_path / "a.jsonl", [json.dumps(observed("h", ci_type="host", environment=None))]
    )
    second = write_lines(tmp_path / "b.jsonl", [json.dumps(retired("host", "h", time=at(hours=1)))])
    _, out = run(tmp_path, str(first), str(second))
    assert json.loads((out / "cmdb.json").read_text())["nodes"] == []


def test_bad_policy_is_refused_at_start_naming_the_key(tmp_path, capsys):
    """A policy with a bad key stops the replay before it starts, naming the key."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("staleness:\n  by_type:\n    host: soon\n")
    events = write_lines(tmp_path / "e.jsonl", [json.dumps(observed("x"))])
    code, out = run(tmp_path, str(events), "--policy", str(policy))
    assert code == 2
    assert "staleness.by_type.host" in capsys.readouterr().err
    assert not out.exists()


def test_missing_events_file_is_a_clear_error(tmp_path, capsys):
    """Naming a file that does not exist fails with exit code 2 and says which."""
    code, _ = run(tmp_path, str(tmp_path / "nope.jsonl"))
    assert code == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_summary_table_is_printed(tmp_path, capsys):
    """Without --quiet the replay prints a table of counts and where the outputs are."""
    events = write_lines(tmp_path / "e.jsonl", [json.dumps(observed("x", owner="t"))])
    main(["replay", str(events), "--out", str(tmp_path / "o")])
    printed = capsys.readouterr().out
    assert "events applied" in printed and "findings.jsonl" in printed


def test_progress_is_reported_on_long_replays(tmp_path, engine):
    """The progress callback is called with bytes read, total and lines while replaying."""
    from cmdb_worker.worker.replay import replay

    lines = [
        json.dumps(
            cloudevent("cmdb.ci.observed", {"ci": {"type": "host", "name": f"h{i}"}}, id=f"o{i}")
        )
        for i in range(300)
    ]
    calls: list[tuple[int, int, int]] = []
    path = write_lines(tmp_path / "e.jsonl", lines)
    replay(engine, [path], lambda *a: calls.append(a), every=0.0)
    assert calls[-1][2] == 300 and calls[-1][0] == calls[-1][1]


def test_the_sample_shows_a_silent_source_a_precedence_conflict_and_a_phantom(tmp_path):
    """The sample week's US collector falls silent and recovers without a stale storm, a
    spreadsheet import loses to the trusted source on owner and criticality, and a CI only named
    by relations is a phantom (under the sample's policy, which ranks its sources)."""
    _, out = run(tmp_path, str(SAMPLE), "--policy", str(SAMPLE_POLICY))
    findings = [f["data"] for f in read_jsonl(out / "findings.jsonl")]
    by_kind: dict[str, list[dict]] = {}
    for finding in findings:
        by_kind.setdefault(finding["kind"], []).append(finding)
    (silent,) = by_kind["source_silent"]
    assert (silent["subject"], silent["affected_cis"]) == ("/discovery/k8s-prod-us", 4)
    assert [f["subject"] for f in by_kind["source_recovered"]] == ["/discovery/k8s-prod-us"]
    us_stale = [f["subject"] for f in by_kind["ci_stale"] if f["subject"].endswith("-us@prod")]
    assert us_stale == ["service/reports-us@prod"]
    conflicts = {f["attribute"]: f for f in by_kind["ci_attribute_conflict"]}
    assert {f["winner"] for f in conflicts.values()} == {"/discovery/k8s-prod-eu"}
    assert conflicts["criticality"]["values"]["/import/cmdb-spreadsheet"] == 4
    assert [f["subject"] for f in by_kind["ci_phantom"]] == ["service/fraud-score@prod"]
    graph = json.loads((out / "cmdb.json").read_text())
    (payments,) = [n for n in graph["nodes"] if n["id"] == "service/payments-api@prod"]
    assert (payments["owner"], payments["criticality"]) == ("team-payments", 1)


def test_the_sample_shows_every_hygiene_finding(tmp_path):
    """examples/events.jsonl yields every finding kind of the foundation and a few dead letters."""
    code, out = run(tmp_path, str(SAMPLE))
    kinds = json.loads((out / "summary.json").read_text())["findings"]
    assert code == 0
    assert {
        "ci_stale",
        "ci_stale_resolved",
        "ci_missing_from_scan",
        "ci_no_owner",
        "ci_orphan",
        "ci_duplicate_merged",
        "relation_dangling",
    } <= kinds.keys()
    letters = read_jsonl(out / "dead_letters.jsonl")
    assert {d["reason"].split(":")[0] for d in letters} >= {
        "not_json",
        "not_an_object",
        "missing_field",
        "bad_time",
        "wrong_type",
        "unknown_type",
    }
    assert json.loads((out / "summary.json").read_text())["duplicates_ignored"] >= 1
