"""Pytest plugin: a real local Apache Kafka broker for tests and benchmarks.

Register it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.kafka_broker"]``
(or ad hoc with ``pytest -p tests.kafka_broker``).

Brokers are started by ``deploy/local/kafka.sh`` (single-node KRaft, jars fetched from Maven
Central by ``kafka.sh fetch``), each in its own temporary directory, and stopped at teardown.

Fixtures
--------
``kafka_bootstrap`` (session) -> ``"127.0.0.1:PORT"``
    A PLAINTEXT broker shared by the whole session. If ``CMDB_TEST_BOOTSTRAP`` is set, that
    address is used instead and nothing is started.
``kafka_scram`` (session) -> :class:`ScramBroker`
    A second broker whose ``SASL_PLAINTEXT`` listener takes SCRAM-SHA-512 (and -256) with user
    ``cmdb`` / ``cmdb-secret``. ``.client_config()`` gives kafka-python keyword arguments.
    ``CMDB_TEST_SCRAM_BOOTSTRAP`` (with optional ``CMDB_TEST_SCRAM_USERNAME`` /
    ``CMDB_TEST_SCRAM_PASSWORD``) points it at an existing listener instead.
``unique_name`` (function) -> ``"t-<testname>-<uuid8>"``, a prefix for topic and group names.
``own_kafka_broker`` (function) -> factory ``own_kafka_broker(scram=False) -> LocalKafkaBroker``
    A started broker private to the test (``.bootstrap``, ``.stop()``, ``.start()`` on the same
    directory so data persists, ``.kill()`` for SIGKILL); all are stopped after the test.

Helper
------
``create_topics(bootstrap, names, partitions=1, compacted=(), **client_config)`` creates topics
with kafka-python's ``KafkaAdminClient`` and waits until every partition has a leader.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO_ROOT / "deploy" / "local" / "kafka.sh"

SCRAM_USERNAME = "cmdb"
SCRAM_PASSWORD = "cmdb-secret"
SCRAM_MECHANISM = "SCRAM-SHA-512"

_UP_TIMEOUT_S = 300  # includes a first-time `fetch` from Maven Central
_DOWN_TIMEOUT_S = 90


class KafkaBrokerError(RuntimeError):
    """The local broker could not be started or stopped."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class LocalKafkaBroker:
    """One broker managed by ``deploy/local/kafka.sh`` in its own directory.

    ``start()`` after ``stop()`` or ``kill()`` restarts on the same directory: same ports,
    same cluster, same data.
    """

    def __init__(self, directory: Path | str, *, scram: bool = False) -> None:
        self.directory = Path(directory).resolve()
        self.scram = scram
        self._bootstrap: str | None = None
        self._sasl_bootstrap: str | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """PLAINTEXT bootstrap address ``127.0.0.1:PORT`` (stable across restarts)."""
        if self._bootstrap is None:
            raise KafkaBrokerError(f"broker in {self.directory} was never started")
        return self._bootstrap

    @property
    def sasl_bootstrap(self) -> str:
        """SASL_PLAINTEXT (SCRAM) bootstrap address; only for ``scram=True`` brokers."""
        if self._sasl_bootstrap is None:
            raise KafkaBrokerError(f"broker in {self.directory} has no SCRAM listener")
        return self._sasl_bootstrap

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    @property
    def pid(self) -> int | None:
        try:
            return int((self.directory / "kafka.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def scram_credentials(self) -> ScramBroker:
        return ScramBroker(
            self.sasl_bootstrap, SCRAM_USERNAME, SCRAM_PASSWORD, SCRAM_MECHANISM,
            log_file=self.log_file,
        )  # fmt: skip

    # -- lifecycle ---------------------------------------------------------------------------
    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        cmd = ["bash", str(KAFKA_SH), *args, "--dir", str(self.directory)]
        return subprocess.run(
            cmd,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> str:
        """Start (or restart) the broker; returns the bootstrap address once it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ["up", "--scram"] if self.scram else ["up"]
        try:
            proc = self._run(*args, timeout=_UP_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise KafkaBrokerError(f"kafka.sh up timed out after {exc.timeout}s") from exc
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"kafka.sh up failed (exit {proc.returncode}) in {self.directory}\n"
                f"--- stderr ---\n{proc.stderr[-4000:]}\n"
                f"--- server.log ---\n{_tail(self.log_file)}"
            )
        self._bootstrap = proc.stdout.strip().splitlines()[-1].strip()
        sasl_file = self.directory / "sasl_bootstrap"
        self._sasl_bootstrap = sasl_file.read_text().strip() if sasl_file.exists() else None
        self._start_watchdog()
        return self._bootstrap

    def stop(self) -> None:
        """Graceful stop (SIGTERM, SIGKILL after a timeout); a no-op if not running."""
        self._stop_watchdog()
        proc = self._run("down", timeout=_DOWN_TIMEOUT_S)
        if proc.returncode != 0:
            raise KafkaBrokerError(f"kafka.sh down failed: {proc.stderr[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the broker at once (simulates a crash); data stays for ``start()``."""
        self._stop_watchdog()
        self._run("kill", timeout=_DOWN_TIMEOUT_S)

    def is_running(self) -> bool:
        return self._run("status", timeout=30).returncode == 0

    # A broker must never outlive the test session, even if pytest itself is SIGKILLed
    # (e.g. a CI timeout): a detached watchdog stops it when this process disappears.
    def _start_watchdog(self) -> None:
        self._stop_watchdog()
        script = (
            'while kill -0 "$1" 2>/dev/null; do sleep 2; done; '
            'exec bash "$2" down --dir "$3" >/dev/null 2>&1'
        )
        self._watchdog = subprocess.Popen(
            [
                "bash",
                "-c",
                script,
                "kafka-watchdog",
                str(os.getpid()),
                str(KAFKA_SH),
                str(self.directory),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            if self._watchdog.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._watchdog.pid, signal.SIGTERM)
                self._watchdog.wait(timeout=10)
            self._watchdog = None

    def __repr__(self) -> str:
        return f"LocalKafkaBroker(directory={str(self.directory)!r}, bootstrap={self._bootstrap!r})"


@dataclass(frozen=True)
class ScramBroker:
    """Where and how to reach a SCRAM-authenticated SASL_PLAINTEXT listener."""

    bootstrap: str
    username: str
    password: str
    mechanism: str = SCRAM_MECHANISM
    security_protocol: str = "SASL_PLAINTEXT"
    log_file: Path | None = None
    """The broker's own log, when the broker is ours (None for an external listener)."""

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for KafkaProducer / KafkaConsumer / KafkaAdminClient."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }
        config.update(overrides)
        return config

    def __getitem__(self, key: str) -> Any:  # dict-style access: scram["bootstrap"]
        return getattr(self, key)


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    compacted: Iterable[str] = (),
    **client_config: Any,
) -> None:
    """Create topics (names in ``compacted`` get ``cleanup.policy=compact``) and wait for leaders.

    Names listed only in ``compacted`` are created too. Extra keyword arguments go to
    ``KafkaAdminClient`` (e.g. ``**kafka_scram.client_config()`` minus ``bootstrap_servers``).
    """
    from kafka import KafkaAdminClient  # imported lazily: the plugin must load without kafka

    compacted_set = set(compacted)
    ordered = list(dict.fromkeys([*names, *compacted]))
    if not ordered:
        return
    spec = {
        name: {
            "num_partitions": partitions,
            "replication_factor": 1,
            "configs": {"cleanup.policy": "compact"} if name in compacted_set else {},
        }
        for name in ordered
    }
    client_config.setdefault("bootstrap_servers", bootstrap)
    admin = KafkaAdminClient(**client_config)
    try:
        admin.create_topics(spec, timeout_ms=30000, wait_for_metadata=True)
    finally:
        admin.close()


# ------------------------------------------------------------------------------- fixtures
def _start_session_broker(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, scram: bool
) -> LocalKafkaBroker:
    broker = LocalKafkaBroker(tmp_path_factory.mktemp(name), scram=scram)
    broker.start()
    return broker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a PLAINTEXT broker shared by the session."""
    external = os.environ.get("CMDB_TEST_BOOTSTRAP", "").strip()
    if external:
        yield external
        return
    broker = _start_session_broker(tmp_path_factory, "kafka-plain", scram=False)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_scram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScramBroker]:
    """A broker of its own with a SCRAM-SHA-512/256 SASL_PLAINTEXT listener and user cmdb."""
    external = os.environ.get("CMDB_TEST_SCRAM_BOOTSTRAP", "").strip()
    if external:
        yield ScramBroker(
            external,
            os.environ.get("CMDB_TEST_SCRAM_USERNAME", SCRAM_USERNAME),
            os.environ.get("CMDB_TEST_SCRAM_PASSWORD", SCRAM_PASSWORD),
        )
        return
    broker = _start_session_broker(tmp_path_factory, "kafka-scram", scram=True)
    try:
        yield broker.scram_credentials()
    finally:
        broker.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """``t-<testname>-<uuid8>``: safe as a topic or group name, unique per test run."""
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-.")[:60] or "test"
    return f"t-{test}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def own_kafka_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LocalKafkaBroker]]:
    """Factory: ``own_kafka_broker(scram=False)`` starts a broker private to this test."""
    brokers: list[LocalKafkaBroker] = []

    def make(*, scram: bool = False) -> LocalKafkaBroker:
        broker = LocalKafkaBroker(tmp_path_factory.mktemp("kafka-own"), scram=scram)
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    errors = []
    for broker in brokers:
        try:
            broker.stop()
        except Exception as exc:  # pragma: no cover - best effort cleanup
            errors.append(exc)
    if errors:
        print(f"kafka_broker: errors stopping own brokers: {errors}", file=sys.stderr)
