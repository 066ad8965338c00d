"""`cmdb-worker policy diff`: the sample week under a stricter policy, as a table and as JSON."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cmdb_worker.rules.policy import overlay
from cmdb_worker.schemas.findings import Finding, FindingData
from cmdb_worker.worker.cli import main
from cmdb_worker.worker.policy_diff import diff_findings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STRICTER = {
    "staleness": {"by_type": {"host": "1d"}},  # packaged: 3d
    "risk": {"weights": {"no_canary": 30}},  # packaged: 10
}
"""Hosts go stale three times sooner, and a change without a canary costs 20 points more."""


@pytest.fixture
def stricter_policy(tmp_path: Path) -> Path:
    """The sample's own policy with the stricter keys on top."""
    sample = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    path = tmp_path / "stricter.yaml"
    path.write_text(yaml.safe_dump(overlay(sample, STRICTER)))
    return path


def diff_json(stricter: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    args = ["--log-level", "WARNING", "policy", "diff", "--base", str(EXAMPLES / "policy.yaml"),
            "--policy", str(stricter), str(EXAMPLES / "events.jsonl"), "--json"]  # fmt: skip
    assert main(args) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_stricter_policy_on_the_sample_week_shows_new_findings_and_rescored_changes(
    stricter_policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A host stale only under the 1d max age appears; changes without a canary score 20 more."""
    document = diff_json(stricter_policy, capsys)
    assert {(d["kind"], d["subject"]) for d in document["appears"]} == {
        ("ci_stale", "host/batch07.example.net")
    }
    assert document["disappears"] == []
    rescored = {d["subject"]: (d["before"], d["after"]) for d in document["changes"]
                if d["kind"] == "change_assessed"}  # fmt: skip
    assert rescored["CHG0030412"] == (
        {"severity": "critical", "score": 75, "level": "critical", "route": "cab"},
        {"severity": "critical", "score": 95, "level": "critical", "route": "cab"},
    )
    assert rescored["CHG0030431"][0]["level"] == "medium"
    assert rescored["CHG0030431"][1]["level"] == "high"


def test_the_table_names_each_difference_and_counts_them(
    stricter_policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --json the same differences print as rows, with a count per status at the end."""
    args = ["--log-level", "WARNING", "policy", "diff", "--base", str(EXAMPLES / "policy.yaml"),
            "--policy", str(stricter_policy), str(EXAMPLES / "events.jsonl")]  # fmt: skip
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {tuple(line.split()[:3]) for line in lines}
    assert ("appears", "ci_stale", "host/batch07.example.net") in rows
    assert ("changes", "change_assessed", "CHG0030412") in rows
    assert lines[-1] == "1 appear, 0 disappear, 3 change"


def test_the_same_policy_twice_differs_in_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """Base and new both the sample policy: every list is empty."""
    policy = str(EXAMPLES / "policy.yaml")
    args = ["policy", "diff", "--base", policy, "--policy", policy,
            str(EXAMPLES / "events.jsonl"), "--json"]  # fmt: skip
    assert main(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["appears"], document["disappears"], document["changes"]) == ([], [], [])


def finding(kind: str, subject: str, **details: Any) -> Finding:
    data = FindingData.model_validate(
        {"kind": kind, "subject": subject, "severity": "warning",
         "detected_at": datetime(2026, 11, 20, tzinfo=UTC), **details}
    )  # fmt: skip
    return Finding(id=f"{kind}-{subject}", type=f"cmdb.finding.{kind}", time=data.detected_at,
                   subject=subject, data=data)  # fmt: skip


def test_a_verdict_is_the_last_finding_of_its_kind_and_gone_ones_disappear() -> None:
    """A change reassessed to the same score is unchanged; a finding only in the base disappears."""
    base = [finding("change_assessed", "C1", score=10), finding("change_assessed", "C1", score=40),
            finding("ci_orphan", "service/a")]  # fmt: skip
    new = [finding("change_assessed", "C1", score=40)]
    differences = diff_findings(base, new)
    assert [(d.status, d.kind, d.subject) for d in differences] == [
        ("disappears", "ci_orphan", "service/a")
    ]


def test_a_bad_new_policy_is_refused_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt key in --policy stops the diff with exit 2 and the dotted key on stderr."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("risk:\n  weigths: {no_canary: 30}\n")
    assert main(["policy", "diff", "--policy", str(bad), str(EXAMPLES / "events.jsonl")]) == 2
    assert "risk.weigths" in capsys.readouterr().err
