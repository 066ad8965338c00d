"""`cmdb-worker produce` routes and keys events as the contract says, and `make demo` brings up a
broker fed the sample week with a ready worker, which `make demo-down` takes away."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cmdb_worker.schemas.ci import make_ci_id
from cmdb_worker.worker.cli import main
from tests.worker_process import WorkerTopics, read_topic, worker_env

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "events.jsonl"
DEMO = ROOT / "deploy" / "local" / "demo.sh"
SAMPLE_LINES = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _json(raw: bytes | None) -> dict | None:
    try:
        document = json.loads(raw or b"")
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def test_produce_routes_and_keys_the_sample_week_by_the_contract(
    kafka_bootstrap: str, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line of the sample lands once: observations on discovery keyed by CI id (scans by
    their source), changes on the changes topic keyed by change id, CDEvents on cicd keyed by a
    service CI id, lesson updates keyed by lesson id; lines that do not decode (the sample's few
    bad ones) go to discovery unkeyed, for the worker to dead-letter."""
    topics = WorkerTopics(unique_name)
    for name in [n for n in os.environ if n.startswith("CMDB_WORKER_")]:
        monkeypatch.delenv(name)
    for name, value in worker_env(kafka_bootstrap, topics).items():
        monkeypatch.setenv(name, value)
    assert main(["produce", str(SAMPLE)]) == 0
    read = {role: read_topic(kafka_bootstrap, topics.name(role)) for role in
            ("discovery", "cicd", "changes", "lesson-updates")}  # fmt: skip
    assert sum(map(len, read.values())) == len(SAMPLE_LINES)
    keyed = 0
    for record in read["discovery"]:
        event = _json(record.value)
        if event is None:
            assert record.key is None
        elif event.get("type") == "cmdb.ci.observed" and "ci" in event.get("data", {}):
            ci = event["data"]["ci"]
            ci_id = make_ci_id(ci["type"], ci["name"], ci.get("environment"))
            assert record.key in (ci_id.encode(), None)
            keyed += record.key is not None
        elif event.get("type") == "cmdb.scan.completed":
            assert record.key == event["source"].encode()
    assert keyed > 0.9 * len(read["discovery"])
    assert all(r.key == _json(r.value)["data"]["change_id"].encode() for r in read["changes"])
    assert read["cicd"] and all((r.key or b"").startswith(b"service/") for r in read["cicd"])
    lessons = read["lesson-updates"]
    assert all(r.key == _json(r.value)["data"]["lesson_id"].encode() for r in lessons)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _consumed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
        return sum(
            sample.value for family in families if family.name == "cmdb_worker_events_consumed"
            for sample in family.samples if sample.name.endswith("_total")
        )  # fmt: skip


def test_make_demo_runs_the_worker_on_the_sample_week_and_demo_down_cleans_up(
    tmp_path: Path,
) -> None:
    """demo.sh up: a ready worker that consumes every line of the sample week and says where to
    look (/api, /metrics); demo.sh down: the worker and the broker stopped, their data gone."""
    port, directory = _free_port(), tmp_path / "demo"
    env = {**os.environ, "CMDB_DEMO_DIR": str(directory), "CMDB_DEMO_HTTP_PORT": str(port)}
    env = {k: v for k, v in env.items() if not k.startswith("CMDB_WORKER_")}
    try:
        up = subprocess.run(["bash", str(DEMO), "up"], env=env, capture_output=True, text=True,
                            timeout=240)  # fmt: skip
        assert up.returncode == 0, up.stderr[-3000:]
        assert f"http://127.0.0.1:{port}/api/stale" in up.stdout and "/metrics" in up.stdout
        worker_pid = int((directory / "worker.pid").read_text())
        deadline = time.monotonic() + 120
        while _consumed(port) < len(SAMPLE_LINES):
            assert time.monotonic() < deadline, f"consumed {_consumed(port)}"
            time.sleep(0.5)
    finally:
        down = subprocess.run(["bash", str(DEMO), "down"], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert not directory.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
    with pytest.raises(OSError):  # nothing answers on the demo's port: no worker left behind
        _consumed(port)
