"""The command line itself: --version, clear refusals with exit 2, --log-level, generated
settings help, replay from stdin and the exit status of a replay where nothing applied."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cmdb_worker.rules.policy import Policy
from cmdb_worker.worker import __version__, cli
from cmdb_worker.worker.kafka_clients import ownership
from cmdb_worker.worker.replay_command import EXIT_ALL_DEAD_LETTERED
from cmdb_worker.worker.settings import Settings
from tests.events import observed
from tests.governance_helpers import deploy

CMDB_WORKER = Path(sys.executable).with_name("cmdb-worker")


def cmdb_worker(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMDB_WORKER_")}
    return subprocess.run(
        [str(CMDB_WORKER), *args], input=stdin, capture_output=True, text=True,
        timeout=60, env=env,
    )  # fmt: skip


def test_version_prints_the_package_version() -> None:
    """`cmdb-worker --version` prints the one version the package declares."""
    result = cmdb_worker("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cmdb-worker {__version__}"


def test_a_bad_log_level_is_a_clear_usage_error(tmp_path: Path) -> None:
    """An unknown --log-level exits 2 with the levels it accepts, no traceback."""
    result = cmdb_worker("--log-level", "LOUD", "replay", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2
    assert "invalid choice: 'LOUD'" in result.stderr and "DEBUG" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_out_is_a_clear_error(tmp_path: Path) -> None:
    """`replay --out` naming a path under a regular file exits 2 saying it cannot write there."""
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(observed("api", owner="t")) + "\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cmdb_worker("replay", str(events), "--out", str(blocker / "out"))
    assert result.returncode == 2
    assert "cmdb-worker replay: cannot write" in result.stderr and str(blocker) in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_lessons_export_file_is_a_clear_error(tmp_path: Path) -> None:
    """`lessons export -o` into a missing directory exits 2 without a traceback."""
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(observed("api", owner="t")) + "\n")
    result = cmdb_worker("lessons", "export", str(events), "-o", str(tmp_path / "no" / "l.yaml"))
    assert result.returncode == 2
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr


def test_run_honours_the_log_level_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cmdb-worker --log-level DEBUG run` runs with DEBUG, over CMDB_WORKER_LOG_LEVEL."""
    seen: dict[str, Any] = {}

    def fake_serve(settings: Settings, policy: Policy) -> int:
        seen["settings"], seen["root_level"] = settings, logging.getLogger().level
        return 0

    monkeypatch.setattr(cli, "serve", fake_serve)
    monkeypatch.setenv("CMDB_WORKER_LOG_LEVEL", "WARNING")
    assert cli.main(["--log-level", "debug", "run"]) == 0
    assert seen["settings"].log_level == "DEBUG" and seen["root_level"] == logging.DEBUG
    assert cli.main(["run", "--log-level", "ERROR"]) == 0
    assert seen["root_level"] == logging.ERROR


def test_run_help_lists_every_setting_with_its_meaning() -> None:
    """`run --help` names every field of the settings model as its variable, with its meaning."""
    text = cmdb_worker("run", "--help").stdout
    for name, field in Settings.model_fields.items():
        assert f"CMDB_WORKER_{name.upper()} (default: " in text
        assert field.description, f"setting {name} has no docstring for --help"
        assert " ".join(field.description.replace("``", "").split()[:4]) in " ".join(text.split())


def test_replay_dash_reads_standard_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`replay -` reads the events from standard input."""
    lines = [json.dumps(observed("api", owner="t")), json.dumps(observed("db", owner="t"))]
    stdin = io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n").encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    out = tmp_path / "out"
    assert cli.main(["replay", "-", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["lines"], summary["events_applied"]) == (2, 2)


def test_a_replay_where_every_line_is_dead_lettered_fails(tmp_path: Path) -> None:
    """Every line dead-lettered: the replay still writes its outputs, but exits with the code
    its --help names; one good line among bad ones is a success."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n[1]\n")
    result = cmdb_worker("replay", str(bad), "--out", str(tmp_path / "o1"), "--quiet")
    assert result.returncode == EXIT_ALL_DEAD_LETTERED == 3
    assert len((tmp_path / "o1" / "dead_letters.jsonl").read_text().splitlines()) == 2
    help_text = cmdb_worker("replay", "--help").stdout
    assert f"{EXIT_ALL_DEAD_LETTERED} there were lines and" in help_text
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("{oops\n" + json.dumps(observed("api", owner="t")) + "\n")
    result = cmdb_worker("replay", str(mixed), "--out", str(tmp_path / "o2"), "--quiet")
    assert result.returncode == 0


def test_owner_partitions_must_be_a_partition_count(tmp_path: Path) -> None:
    result = cmdb_worker("replay", str(tmp_path / "x.jsonl"), "--owner-partitions", "0")
    assert result.returncode == 2
    assert "'0' is not a partition count (1 or more)" in result.stderr


def test_lessons_export_numbers_lesson_ids_per_owner_partition(tmp_path: Path) -> None:
    """Told 4 owner partitions, each lesson's number lies in its subject's class: the ids a
    worker with CMDB_WORKER_OWNER_PARTITIONS=4 gives, whatever order partitions arrive in."""
    events = tmp_path / "events.jsonl"
    lines = [deploy(f"svc-{n}", id=f"deploy-{n}") for n in range(12)]  # unauthorized deploys
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = cmdb_worker("lessons", "export", str(events), "--owner-partitions", "4")
    assert result.returncode == 0, result.stderr
    register = yaml.safe_load(result.stdout)["lessons_register"]
    assert len(register) == 12
    owners = ownership(4)
    for lesson in register:
        number = int(lesson["id"].removeprefix("LL-"))
        assert (number - 1) % 4 == owners.partition_of(lesson["subject"])
    assert len({lesson["id"] for lesson in register}) == 12
