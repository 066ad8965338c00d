"""A real Prometheus server for tests: Debian's binary, loopback only, storage in a tmp dir.

``prometheus_binaries()`` runs ``deploy/local/prometheus.sh`` (which unpacks Debian's
``prometheus`` package without installing it) and returns the paths of promtool and prometheus;
it raises when they cannot be had, so a test depending on them fails instead of skipping.

``PrometheusServer`` writes a config with one static scrape job per target, scrape and rule
evaluation every second, starts ``prometheus`` on ``127.0.0.1:<free port>`` and answers queries
through the HTTP API (``/api/v1/rules``, ``/api/v1/alerts``, ``/api/v1/query``). Use it as a context
manager: the process is stopped (SIGTERM, then SIGKILL) on exit, whatever happened.

``fast_for_copy()`` copies an alert rules file with every ``for:`` shortened, so an end-to-end
test sees pending -> firing in seconds; the expressions, labels and annotations stay as written.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_SH = ROOT / "deploy" / "local" / "prometheus.sh"
T = TypeVar("T")


class PrometheusError(RuntimeError):
    """The Prometheus binaries could not be had, or the server did not start."""


def prometheus_binaries() -> tuple[Path, Path]:
    """``(promtool, prometheus)`` unpacked by deploy/local/prometheus.sh; raises if unavailable."""
    try:
        result = subprocess.run(
            ["bash", str(PROMETHEUS_SH)], capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PrometheusError(f"deploy/local/prometheus.sh could not run: {error}") from error
    paths = [Path(line) for line in result.stdout.split()]
    if result.returncode != 0 or len(paths) != 2 or not all(p.is_file() for p in paths):
        raise PrometheusError(
            f"deploy/local/prometheus.sh failed (exit {result.returncode}); it needs apt-get and"
            f" dpkg to unpack Debian's prometheus package:\n{result.stderr[-3000:]}"
        )
    return paths[0], paths[1]


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25
) -> T:
    """Call ``probe`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fast_for_copy(rules_file: Path, destination: Path, for_: str = "2s") -> Path:
    """Copy ``rules_file`` to ``destination`` with every alert's ``for:`` set to ``for_``."""
    document = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and "for" in rule:
                rule["for"] = for_
    destination.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return destination


class PrometheusServer:
    """One ``prometheus`` process scraping ``targets`` (job name -> ``host:port`` list)."""

    def __init__(
        self,
        binary: Path,
        directory: Path,
        targets: Mapping[str, list[str]],
        rule_files: list[Path] | None = None,
        interval: str = "1s",
    ) -> None:
        self.binary, self.directory = binary, directory
        self.targets, self.rule_files, self.interval = dict(targets), rule_files or [], interval
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.directory / "prometheus.log"

    def write_config(self) -> Path:
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": job, "scrape_timeout": self.interval,
                 "static_configs": [{"targets": targets}]}
                for job, targets in self.targets.items()
            ],
        }  # fmt: skip
        path = self.directory / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def start(self, timeout: float = 60.0, attempts: int = 3) -> PrometheusServer:
        """Start on a free loopback port (another on a port race) and wait until it is ready."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.write_config()
        for _ in range(attempts):
            self._launch(config)
            if self._wait_ready(timeout):
                return self
            self.stop()
        raise PrometheusError(f"prometheus did not become ready:\n{self.log_tail()}")

    def _launch(self, config: Path) -> None:
        self.port = free_port()
        command = [
            str(self.binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.console.templates={self.directory}",
            f"--web.console.libraries={self.directory}",
        ]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if self._answers("/-/ready"):
                return True
            time.sleep(0.2)
        return False

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            document = json.loads(response.read())
        if document.get("status") != "success":
            raise PrometheusError(f"/api/v1/{path} answered {document}")
        return document["data"]

    def rule_state(self, alert: str) -> str | None:
        """``inactive``, ``pending`` or ``firing``, once the rule has been evaluated."""
        for group in self.api("rules", type="alert")["groups"]:
            for rule in group["rules"]:
                if rule["name"] == alert:
                    evaluated = not rule.get("lastEvaluation", "").startswith("0001-")
                    return str(rule["state"]) if evaluated else None
        raise PrometheusError(f"no alerting rule {alert} loaded")

    def alerts(self, alert: str) -> list[dict[str, Any]]:
        """The active (pending or firing) alerts named ``alert``."""
        active: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return [a for a in active if a["labels"].get("alertname") == alert]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector result."""
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
