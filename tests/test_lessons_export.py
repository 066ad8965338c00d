"""The register as YAML: round trip, key order, plain dates; the CLI export and replay outputs."""

import json
import re
from datetime import UTC, date
from pathlib import Path
from typing import get_args

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdb_worker.rules.authorization import DeployCheck
from cmdb_worker.rules.policy import load_policy
from cmdb_worker.schemas.lessons import REGISTER_FIELDS, Lesson
from cmdb_worker.worker.cli import main
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.export import lessons_yaml, reference_lessons_yaml, register_order
from cmdb_worker.worker.replay import replay
from tests.events import T0, at, to_input
from tests.governance_helpers import change_requested, change_updated, deploy, lesson_updated

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

OWN_FIELDS = ("rule", "subject", "evidence", "occurrences", "created_at", "updated_at")


def scenario() -> list[dict]:
    """Two lessons, one edited by a person: an unauthorized deploy and a rollback_missing."""
    return [
        deploy("payments-api", id="d1", time=at(hours=1)),
        deploy("payments-api", id="d2", time=at(hours=2)),
        change_requested("CHG1", "database/payments-pg@prod", rollback_plan=None, time=at(3)),
        change_updated("CHG1", time=at(hours=4), state="implementing"),
        lesson_updated("LL-0001", id="edit-1", time=at(hours=5), status="In Progress",
                       owner="Release Manager", due="2026-12-01"),
    ]  # fmt: skip


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(event) for event in scenario()) + "\n")
    return path


def register_of(engine: Engine) -> list[Lesson]:
    for message in scenario():
        event = to_input(message)
        engine.apply(event, event.time)
    return register_order(engine.state.lessons.values())


def test_register_round_trips_through_yaml(engine):
    """yaml.safe_load of the export gives back lessons equal to the register's."""
    lessons = register_of(engine)
    loaded = yaml.safe_load(lessons_yaml(lessons))["lessons_register"]
    assert [Lesson.model_validate(item) for item in loaded] == lessons
    assert len(lessons) == 2


def test_register_keys_come_in_the_register_order(engine):
    """Each lesson lists the register's eight fields first, in order, then the worker's own."""
    loaded = yaml.safe_load(lessons_yaml(register_of(engine)))["lessons_register"]
    for item in loaded:
        assert tuple(item) == (*REGISTER_FIELDS, *OWN_FIELDS)


def test_due_is_a_plain_yaml_date(engine):
    """``due`` is written as an unquoted date, so YAML reads it back as a date."""
    text = lessons_yaml(register_of(engine))
    assert re.search(r"^    due: 2026-12-01$", text, re.MULTILINE)
    assert yaml.safe_load(text)["lessons_register"][0]["due"] == date(2026, 12, 1)


def test_register_is_in_filing_order_by_id_number():
    """LL-0010 comes after LL-0009, not before LL-0002."""
    base = {"title": "t", "description": "d", "impact": "Low", "owner": "o", "action": "a",
            "due": date(2026, 12, 1), "rule": "cmdb_stale", "subject": "s", "created_at": T0,
            "updated_at": T0}  # fmt: skip
    lessons = [Lesson(id=f"LL-{n:04d}", **base) for n in (10, 2, 9)]
    lessons.append(Lesson(id="LL-10000", **base))
    assert [lesson.id for lesson in register_order(lessons)] == [
        "LL-0002", "LL-0009", "LL-0010", "LL-10000",
    ]  # fmt: skip


def test_lessons_export_writes_only_the_register(events_file, tmp_path, capsys):
    """``lessons export`` prints the register to stdout, or writes it to -o FILE."""
    assert main(["lessons", "export", str(events_file)]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "register.yaml"
    assert main(["lessons", "export", str(events_file), "-o", str(out)]) == 0
    assert out.read_text() == printed
    register = yaml.safe_load(printed)["lessons_register"]
    assert [(item["id"], item["owner"], item["status"]) for item in register] == [
        ("LL-0001", "Release Manager", "In Progress"), ("LL-0002", "team-a", "Open"),
    ]  # fmt: skip


def test_lessons_export_of_a_missing_file_fails_cleanly(tmp_path, capsys):
    """A missing events file: exit status 2 and a message naming it, nothing on stdout."""
    assert main(["lessons", "export", str(tmp_path / "nope.jsonl")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "nope.jsonl" in captured.err


def test_replay_writes_the_register_and_summarises_governance(events_file, tmp_path, capsys):
    """replay's lessons.yaml is the register; its summary shows lessons, routes and deploys."""
    out = tmp_path / "out"
    assert main(["replay", str(events_file), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    register = yaml.safe_load((out / "lessons.yaml").read_text())["lessons_register"]
    summary = json.loads((out / "summary.json").read_text())
    assert [item["rule"] for item in register] == ["unauthorized_deploys", "rollback_missing"]
    assert summary["changes_assessed"] == {"cab": 1}
    assert (summary["unauthorized_deploys"], summary["incidents_correlated"]) == (2, 0)
    assert re.search(r"LL-0001 +In Progress +due 2026-12-01 +owner Release Manager", table)


def test_example_week_tells_the_governance_story(tmp_path):
    """Under its policy, the example week shows every governance finding and reason, a
    pre-approved standard change, and files all five lesson rules."""
    from examples.generate import lines

    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines()) + "\n")
    out = tmp_path / "out"
    policy = EXAMPLES / "policy.yaml"
    assert main(["replay", str(events), "--policy", str(policy), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    dead = [json.loads(line)["reason"] for line in (out / "dead_letters.jsonl").open()]
    assert summary["changes_preapproved"] == 1
    assert {"in_freeze_window", "conflicting_change", "stale_dependents", "team_failure_rate",
            "no_rollback_plan", "recent_failures"} <= summary["change_reasons"].keys()  # fmt: skip
    assert summary["unauthorized_reasons"].keys() == set(get_args(DeployCheck))
    for kind in ("change_missing_rollback", "change_conflict", "deploy_rolled_back"):
        assert summary["findings"][kind] >= 1, kind
    assert {lesson["rule"] for lesson in summary["lessons"]} == {
        "rollback_missing", "change_caused_incident", "cmdb_stale", "unauthorized_deploys",
        "repeat_incidents", "source_silent",
    }  # fmt: skip
    assert {"unknown_change", "unknown_lesson"} <= {reason.split(":")[0] for reason in dead}


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
LESSONS = st.builds(
    Lesson,
    id=st.from_regex(r"LL-[0-9]{4}", fullmatch=True), title=TEXT, description=TEXT,
    impact=st.sampled_from(["High", "Medium", "Low"]), owner=TEXT, action=TEXT,
    due=st.dates(), status=st.sampled_from(["Open", "In Progress", "Done", "Won't Do"]),
    rule=TEXT, subject=TEXT, evidence=st.lists(TEXT, max_size=3),
    occurrences=st.integers(1, 10**6), created_at=st.datetimes(timezones=st.just(UTC)),
    updated_at=st.datetimes(timezones=st.just(UTC)),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(LESSONS, max_size=4))
def test_fast_register_writer_matches_the_reference_byte_for_byte(lessons):
    """Any texts (quotes, colons, dashes, line breaks, unicode): libyaml's shifted output is
    exactly the reference dumper's."""
    assert lessons_yaml(lessons) == reference_lessons_yaml(lessons)


def test_the_sample_register_is_written_as_the_reference_writes_it(tmp_path):
    """The example week's register, fast path against the reference, byte for byte."""
    engine = Engine(load_policy(EXAMPLES / "policy.yaml"))
    replay(engine, [EXAMPLES / "events.jsonl"])
    lessons = list(engine.state.lessons.values())
    assert len(lessons) >= 5 and lessons_yaml(lessons) == reference_lessons_yaml(lessons)
