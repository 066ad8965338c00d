"""Drive a real ``cmdb-worker run`` subprocess against a real broker, and read what it wrote.

``WorkerProcess`` starts the console script with an environment of ``CMDB_WORKER_*`` settings,
finds its HTTP port in the JSON ``started`` log line, waits for ``/readyz``, and stops it with
SIGTERM or SIGKILL. The module-level helpers produce input (kafka-python or ``kcat``), wait until
the worker's consumer group has committed every input offset, read an output topic completely as
a ``read_committed`` consumer would, and replay the same lines with ``cmdb-worker replay``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from tests.kafka_broker import create_topics

CMDB_WORKER = Path(sys.executable).with_name("cmdb-worker")
ENV_PREFIX = "CMDB_WORKER_"
Headers = list[tuple[str, bytes]]


# ------------------------------------------------------------------------------ topics, env
@dataclass(frozen=True)
class WorkerTopics:
    """Every topic the worker touches, named after a unique test prefix."""

    prefix: str

    def name(self, role: str) -> str:
        return f"{self.prefix}.{role}"

    @property
    def discovery(self) -> str:
        return self.name("discovery")

    @property
    def cicd(self) -> str:
        return self.name("cicd")

    @property
    def changes(self) -> str:
        return self.name("changes")

    @property
    def lesson_updates(self) -> str:
        return self.name("lesson-updates")

    @property
    def findings(self) -> str:
        return self.name("findings")

    @property
    def lessons(self) -> str:
        return self.name("lessons")

    @property
    def dlq(self) -> str:
        return self.name("dlq")

    @property
    def state(self) -> str:
        return self.name("state")

    @property
    def inputs(self) -> list[str]:
        return [self.discovery, self.cicd, self.changes, self.lesson_updates]

    @property
    def outputs(self) -> list[str]:
        return [self.findings, self.dlq]

    def env(self) -> dict[str, str]:
        """The ``CMDB_WORKER_TOPIC_*`` settings naming these topics."""
        roles = {
            "DISCOVERY": self.discovery, "CICD": self.cicd, "CHANGES": self.changes,
            "LESSON_UPDATES": self.lesson_updates, "FINDINGS": self.findings,
            "LESSONS": self.lessons, "DLQ": self.dlq, "STATE": self.state,
        }  # fmt: skip
        return {f"{ENV_PREFIX}TOPIC_{role}": name for role, name in roles.items()}

    def create(self, bootstrap: str, **client_config: Any) -> None:
        """Single-partition topics (so order matches a replay); lessons and state compacted."""
        create_topics(
            bootstrap, [*self.inputs, *self.outputs],
            compacted=[self.lessons, self.state], **client_config,
        )  # fmt: skip


def worker_env(
    bootstrap: str, topics: WorkerTopics, *, group: str | None = None, **settings: Any
) -> dict[str, str]:
    """A clean environment for ``cmdb-worker run``: unique topics, group and transactional id.

    ``settings`` are extra ``CMDB_WORKER_*`` values by lower-case name (``clock="event"``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env |= topics.env()
    env |= {
        f"{ENV_PREFIX}BOOTSTRAP_SERVERS": bootstrap,
        f"{ENV_PREFIX}GROUP_ID": group or f"{topics.prefix}-group",
        f"{ENV_PREFIX}INSTANCE_ID": "w1",
        f"{ENV_PREFIX}HTTP_PORT": "0",
        f"{ENV_PREFIX}HTTP_HOST": "127.0.0.1",
        f"{ENV_PREFIX}TOPIC_PARTITIONS": "1",
        f"{ENV_PREFIX}CLOCK": "event",
        f"{ENV_PREFIX}TICK_SECONDS": "0.5",
        f"{ENV_PREFIX}POLL_TIMEOUT_MS": "200",
        f"{ENV_PREFIX}SESSION_TIMEOUT_SECONDS": "10",
    }
    env |= {f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in settings.items()}
    return env


# ------------------------------------------------------------------------------ the process
class WorkerProcess:
    """One ``cmdb-worker run`` subprocess; its stdout and stderr go to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_port: int | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(CMDB_WORKER), "run"], env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    # -- what it says ------------------------------------------------------------------------
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        events = []
        for line in self.output().splitlines():
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    events.append(parsed)
        return events

    def _started_port(self) -> int | None:
        for event in self.log_events():
            if event.get("event") == "started" and "http_port" in event:
                return int(event["http_port"])
        return None

    # -- HTTP --------------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        assert self.http_port is not None, "the worker has not reported its HTTP port yet"
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get_json(self, path: str) -> tuple[int, Any]:
        status, body = self.get(path)
        return status, json.loads(body) if body else None

    # -- waiting -----------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 120.0) -> WorkerProcess:
        """Wait until ``/readyz`` answers 200; fail with the log tail if the worker exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._fail_if_exited("before it was ready")
            self.http_port = self.http_port or self._started_port()
            if self.http_port is not None:
                with contextlib.suppress(OSError):
                    if self.get("/readyz", timeout=2)[0] == 200:
                        return self
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout}s\n{self.tail()}")

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout}s\n{self.tail()}") from None

    def _fail_if_exited(self, when: str) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode} {when}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    # -- stopping ----------------------------------------------------------------------------
    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took to exit)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL, as a node crash or OOM kill would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def ensure_stopped(self) -> None:
        """Teardown: kill the worker if a failed test left it running."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


# ------------------------------------------------------------------------------ offsets
def end_offsets(bootstrap: str, topics: Iterable[str], **config: Any) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **config)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]  # fmt: skip
        ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        return ends
    finally:
        consumer.close()


class GroupOffsets:
    """Reads a consumer group's committed offsets through one long-lived admin client."""

    def __init__(self, bootstrap: str, group: str, **config: Any) -> None:
        self.group = group
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, **config)

    def committed(self) -> dict[TopicPartition, int]:
        offsets = self.admin.list_group_offsets(self.group).get(self.group, {})
        return {partition: meta.offset for partition, meta in offsets.items()}

    def close(self) -> None:
        self.admin.close()

    def __enter__(self) -> GroupOffsets:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def committed_offsets(bootstrap: str, group: str, **config: Any) -> dict[TopicPartition, int]:
    with GroupOffsets(bootstrap, group, **config) as offsets:
        return offsets.committed()


def uncommitted(
    ends: dict[TopicPartition, int], committed: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Messages per partition the group has not committed yet (only partitions with any)."""
    behind = {tp: end - max(committed.get(tp, 0), 0) for tp, end in ends.items()}
    return {tp: count for tp, count in behind.items() if count > 0}


def wait_caught_up(
    bootstrap: str, group: str, topics: Sequence[str], timeout: float = 120.0,
    worker: WorkerProcess | None = None, **config: Any,
) -> dict[TopicPartition, int]:  # fmt: skip
    """Wait until ``group`` has committed the end offset of every partition of ``topics``."""
    ends = end_offsets(bootstrap, topics, **config)
    deadline = time.monotonic() + timeout
    with GroupOffsets(bootstrap, group, **config) as offsets:
        while behind := uncommitted(ends, offsets.committed()):
            if worker is not None:
                worker._fail_if_exited("while consuming")
            if time.monotonic() > deadline:
                tail = worker.tail() if worker else ""
                raise AssertionError(f"{group} still behind after {timeout}s: {behind}\n{tail}")
            time.sleep(0.2)
    return ends


def wait_committed(
    bootstrap: str, group: str, partition: TopicPartition, at_least: int, timeout: float = 120.0
) -> int:
    """Wait until ``group`` has committed offset ``at_least`` or more on ``partition``."""
    deadline = time.monotonic() + timeout
    with GroupOffsets(bootstrap, group) as offsets:
        while (done := offsets.committed().get(partition, 0)) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"{group} committed {done} < {at_least} in {timeout}s")
            time.sleep(0.02)
    return done


# ------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)


def read_topic(
    bootstrap: str, topic: str, timeout: float = 60.0, isolation: str = "read_committed",
    **config: Any,
) -> list[Record]:  # fmt: skip
    """Every record of ``topic`` (all partitions) a consumer of that ``isolation`` level sees:
    ``read_committed`` (the default) skips aborted transactions, ``read_uncommitted`` doesn't."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        isolation_level=isolation, fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024, **config,
    )  # fmt: skip
    try:
        return _drain(consumer, topic, timeout)
    finally:
        consumer.close()


def _drain(consumer: KafkaConsumer, topic: str, timeout: float) -> list[Record]:
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while any(consumer.position(p) < end[p] for p in partitions):
        assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout}s"
        for batch in consumer.poll(timeout_ms=500).values():
            records += [Record(r.offset, r.key, r.value, list(r.headers or [])) for r in batch]
    return records


def findings_of(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [json.loads(record.value or b"") for record in records]


def id_kinds(findings: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """(finding id, kind) pairs: what "the same findings" means."""
    return {(finding["id"], finding["data"]["kind"]) for finding in findings}


# ------------------------------------------------------------------------------ producing
@dataclass(frozen=True)
class Message:
    """One input message: where it goes, its key, headers and exact value bytes."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = field(default_factory=list)

    def replay_line(self) -> str:
        """The same message as a ``cmdb-worker replay`` line (wrapped, so headers survive)."""
        wrapper: dict[str, Any] = {"value": self.value.decode("utf-8", "surrogateescape")}
        if self.key is not None:
            wrapper["key"] = self.key.decode()
        if self.headers:
            wrapper["headers"] = {name: raw.decode() for name, raw in self.headers}
        return json.dumps(wrapper)


def produce(bootstrap: str, messages: Iterable[Message], **config: Any) -> int:
    """Send in order with kafka-python (acks=all, idempotent, one in flight); returns the count."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
        max_in_flight_requests_per_connection=1, linger_ms=5,
        max_request_size=4 * 1024 * 1024, **config,
    )  # fmt: skip
    count = 0
    try:
        for message in messages:
            producer.send(
                message.topic, key=message.key, value=message.value, headers=message.headers
            )
            count += 1
        producer.flush(timeout=60)
    finally:
        producer.close()
    return count


def kcat_produce(bootstrap: str, messages: Sequence[Message]) -> None:
    """Send with ``kcat -P`` in order: one kcat per run of messages sharing topic and headers.

    Keys travel as ``key<TAB>value`` lines (``-K``); headers as ``-H name=value``.
    """
    run: list[Message] = []
    for message in messages:
        if run and (run[0].topic, run[0].headers) != (message.topic, message.headers):
            _kcat(bootstrap, run)
            run = []
        run.append(message)
    if run:
        _kcat(bootstrap, run)


def _kcat(bootstrap: str, run: Sequence[Message]) -> None:
    headers = [arg for name, raw in run[0].headers for arg in ("-H", f"{name}={raw.decode()}")]
    lines = b"".join((m.key or b"") + b"\t" + m.value + b"\n" for m in run)
    assert all(b"\n" not in m.value and b"\t" not in (m.key or b"") for m in run)
    subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", run[0].topic, "-K", "\t", "-X", "acks=all", *headers],
        input=lines, check=True, timeout=60, capture_output=True,
    )  # fmt: skip


# ------------------------------------------------------------------------------ replay
@dataclass
class ReplayOutput:
    findings: list[dict[str, Any]]
    graph: dict[str, Any]
    summary: dict[str, Any]
    dead_letters: list[dict[str, Any]]


def replay_lines(
    lines: Sequence[str], directory: Path, policy: Path | None = None, *options: str
) -> ReplayOutput:
    """``cmdb-worker replay`` of these lines, in order, into ``directory``, with ``options``."""
    from cmdb_worker.worker.cli import (
        main,  # the CLI configures logging: import it only when replaying
    )

    directory.mkdir(parents=True, exist_ok=True)
    events = directory / "events.jsonl"
    events.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out = directory / "out"
    chosen = ["--policy", str(policy)] if policy else []
    assert main(["replay", str(events), "--out", str(out), "--quiet", *chosen, *options]) == 0
    return ReplayOutput(
        findings=_jsonl(out / "findings.jsonl"),
        graph=json.loads((out / "cmdb.json").read_text()),
        summary=json.loads((out / "summary.json").read_text()),
        dead_letters=_jsonl(out / "dead_letters.jsonl"),
    )


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparable_graph(document: dict[str, Any]) -> dict[str, Any]:
    """A node-link document with JSON-plain values and nodes and links in a canonical order."""
    plain: dict[str, Any] = json.loads(json.dumps(document, default=str))
    plain["nodes"] = sorted(plain["nodes"], key=lambda node: node["id"])
    plain["links"] = sorted(
        plain["links"], key=lambda link: (link["source"], link["target"], link.get("key", ""))
    )
    return plain


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], WorkerProcess]]:
    """Factory of started ``cmdb-worker run`` processes; any still running are killed after."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        process = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.ensure_stopped()
