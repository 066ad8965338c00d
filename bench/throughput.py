"""Throughput through a real broker: the worker end to end vs a bare kafka-python consumer.

    python -m bench.throughput --bootstrap HOST:PORT [--events 100000] [--repetitions 3]
                               [--profile FILE]

``--events`` synthetic events (``bench.synthetic``: ~90% discovery, ~9% deploys, ~1% bad
lines) are produced once to two fresh input topics (3 partitions, keyed by service). Then, each
repetition, on those same topics:

* a bare consumer (kafka-python, ``read_committed``, 500 records a poll, no group) reads every
  record and ``json.loads`` it; timed from its first poll to the last record;
* ``cmdb-worker run`` (a subprocess, fresh group, fresh output topics, event clock) consumes
  them; timed from /readyz answering (rebuild done, partitions assigned: start-up excluded)
  until the group's committed offsets reach the end of every input partition.

``--profile FILE`` runs the worker once more under pyinstrument and writes its text report.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bench import synthetic
from tests.kafka_broker import create_topics

PARTITIONS = 3
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Worker:
    """A ``cmdb-worker run`` subprocess and where to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> float:
        """Seconds from start until /readyz answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited {self.process.returncode}:\n{self.tail()}")
            if self.ready():
                return time.monotonic() - self.started
            time.sleep(0.02)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{self.tail()}")

    def peak_rss_mib(self) -> float:
        with contextlib.suppress(OSError), open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def log_events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == name:
                    found.append(record)
        return found

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_worker(
    bootstrap: str,
    prefix: str,
    log_dir: Path,
    *,
    inputs: tuple[str, str] | None,
    state_topic: str | None = None,
    profile: Path | None = None,
) -> Worker:
    """Start ``cmdb-worker run`` with topics and group named after ``prefix``."""
    port = free_port()
    inputs = inputs or (f"{prefix}.discovery", f"{prefix}.cicd")
    settings = {
        "BOOTSTRAP_SERVERS": bootstrap, "GROUP_ID": f"{prefix}-group", "INSTANCE_ID": "bench",
        "HTTP_PORT": str(port), "HTTP_HOST": "127.0.0.1", "CLOCK": "event",
        "TOPIC_DISCOVERY": inputs[0], "TOPIC_CICD": inputs[1],
        "TOPIC_CHANGES": f"{prefix}.changes", "TOPIC_LESSON_UPDATES": f"{prefix}.lesson-updates",
        "TOPIC_FINDINGS": f"{prefix}.findings", "TOPIC_LESSONS": f"{prefix}.lessons",
        "TOPIC_DLQ": f"{prefix}.dlq", "TOPIC_STATE": state_topic or f"{prefix}.state",
        "TOPIC_PARTITIONS": str(PARTITIONS), "LOG_LEVEL": "INFO",
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMDB_WORKER_")}
    env |= {f"CMDB_WORKER_{name}": value for name, value in settings.items()}
    command = [sys.executable, "-m", "cmdb_worker.worker.cli", "run"]
    if profile is not None:
        command = [sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all",
                   "-o", str(profile), "-m", "cmdb_worker.worker.cli", "run"]  # fmt: skip
    log = log_dir / f"{prefix}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=handle, stderr=handle)
    return Worker(process, port, log, time.monotonic())


def produce(bootstrap: str, inputs: tuple[str, str], events: int) -> dict[TopicPartition, int]:
    """Produce the synthetic mix; returns each input partition's end offset."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024,
                             acks=1)  # fmt: skip
    for line in synthetic.events(events):
        topic, key = inputs[0], None
        with contextlib.suppress(ValueError):
            body = json.loads(line)
            if "context" in body:
                topic, key = inputs[1], body["subject"]["id"]
            else:
                key = body["data"]["ci"]["name"]
        producer.send(topic, key=key.encode() if key else None, value=line.encode())
    producer.flush()
    producer.close()
    return end_offsets(bootstrap, inputs)


def end_offsets(bootstrap: str, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(t, p) for t in topics
                      for p in consumer.partitions_for_topic(t) or ()]  # fmt: skip
        ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        return ends
    finally:
        consumer.close()


def bare_consumer(bootstrap: str, ends: dict[TopicPartition, int]) -> float:
    """Seconds for a bare consumer to read and json-decode every record."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, isolation_level="read_committed",
                             max_poll_records=500)  # fmt: skip
    try:
        consumer.assign(list(ends))
        consumer.seek_to_beginning(*ends)
        wanted, seen = sum(ends.values()), 0
        started = time.perf_counter()
        while seen < wanted:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    with contextlib.suppress(ValueError):
                        json.loads(record.value)
                    seen += 1
        return time.perf_counter() - started
    finally:
        consumer.close()


def _committed(admin: KafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    try:
        offsets = admin.list_group_offsets(group)
    except Exception:  # the group may not exist yet
        return {}
    if group in offsets:  # kafka-python 3 nests the answer by group id
        offsets = offsets[group]
    return {tp: o.offset for tp, o in offsets.items()}


def worker_run(bootstrap: str, inputs: tuple[str, str], ends: dict[TopicPartition, int],
               log_dir: Path, profile: Path | None = None,
               timeout: float = 3600) -> tuple[float, float]:  # fmt: skip
    """(start-up seconds, seconds from ready until every input offset is committed)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    worker = start_worker(bootstrap, prefix, log_dir, inputs=inputs, profile=profile)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        startup = worker.wait_ready(timeout=180)
        ready_at = time.monotonic()
        while True:
            committed = _committed(admin, f"{prefix}-group")
            if all(committed.get(tp, -1) >= end for tp, end in ends.items() if end > 0):
                return startup, time.monotonic() - ready_at
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
            if time.monotonic() - ready_at > timeout:
                raise TimeoutError(f"worker did not finish:\n{worker.tail()}")
            time.sleep(0.1)
    finally:
        admin.close()
        worker.stop()


def topics_for(bootstrap: str, events: int) -> tuple[tuple[str, str], dict[TopicPartition, int]]:
    run = uuid.uuid4().hex[:8]
    inputs = (f"bench-{run}.discovery", f"bench-{run}.cicd")
    create_topics(bootstrap, inputs, partitions=PARTITIONS)
    return inputs, produce(bootstrap, inputs, events)


def measure(bootstrap: str, events: int, repetitions: int = 3,
            profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Per repetition: events/s of the worker and of the bare consumer, and their ratio."""
    inputs, ends = topics_for(bootstrap, events)
    total = sum(ends.values())
    result: dict[str, Any] = {"events": total, "worker_eps": [], "bare_eps": [], "ratio": [],
                              "worker_startup_s": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(repetitions):
            bare = total / bare_consumer(bootstrap, ends)
            startup, seconds = worker_run(bootstrap, inputs, ends, Path(scratch))
            result["bare_eps"].append(bare)
            result["worker_eps"].append(total / seconds)
            result["ratio"].append(total / seconds / bare)
            result["worker_startup_s"].append(startup)
        if profile is not None:
            worker_run(bootstrap, inputs, ends, Path(scratch), profile=profile)
    return result


def iter_summary(result: dict[str, Any]) -> Iterator[str]:
    for key, value in result.items():
        yield f"{key:18} {value}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = measure(args.bootstrap, args.events, args.repetitions, args.profile)
    print(json.dumps(result) if args.json else "\n".join(iter_summary(result)))


if __name__ == "__main__":
    main()
