"""The embedded mode: replay JSON-lines files through the engine, no broker needed."""

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.processing import Outcome, process

WRAPPER_KEYS = frozenset({"key", "headers", "value"})
STDIN = Path("-")
"""The events path that means standard input."""
Progress = Callable[[int, int, int], None]
"""Called with (bytes read, total bytes, lines read) every few seconds."""


@dataclass(frozen=True)
class Message:
    """One replayed message, as a broker would hand it over."""

    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    key: bytes | None = None


@dataclass
class DeadLetter:
    line: int
    reason: str
    raw: str
    file: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "raw": self.raw, "file": self.file}


@dataclass
class ReplayResult:
    findings: list[Finding] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    latest_event_time: datetime | None = None
    previous_event_time: datetime | None = None
    """The time of the last line that decoded: what a line without ``time`` is given."""
    times_inferred: int = 0


def message_from_line(line: str) -> Message:
    """A line is a message value, or ``{"key", "headers", "value"}`` to carry headers too."""
    parsed = _parsed(line) if _may_be_wrapped(line) else None
    if isinstance(parsed, dict) and "value" in parsed and parsed.keys() <= WRAPPER_KEYS:
        return _unwrap(parsed)
    return Message(line.encode("utf-8", "surrogateescape"))


def _parsed(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _may_be_wrapped(line: str) -> bool:
    """Only a line that names a ``value`` key can be a wrapper: as ``"value"``, or spelt with
    escapes (which need a backslash). Most lines are bare values and are not parsed twice."""
    return '"value"' in line or "\\" in line


def _unwrap(wrapper: dict[str, Any]) -> Message:
    value = wrapper["value"]
    raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
    headers = wrapper.get("headers") or {}
    if not isinstance(headers, dict):
        raise InvalidEvent("bad_header", "'headers' of a wrapped line must be an object")
    key = wrapper.get("key")
    return Message(
        raw,
        [(str(k), str(v).encode()) for k, v in headers.items()],
        str(key).encode() if key is not None else None,
    )


def replay(
    engine: Engine, paths: list[Path], progress: Progress | None = None, every: float = 2.0
) -> ReplayResult:
    """Apply every line of ``paths`` in order; the clock is the latest event time seen so far.

    ``progress`` is called at most every ``every`` seconds.
    """
    result, clock = ReplayResult(), EventClock()
    total = sum(path.stat().st_size for path in paths if path != STDIN)
    reporter = _ProgressTicker(total, progress, every)
    for path in paths:
        for number, line in _lines(path, reporter):
            result.lines += 1
            _replay_line(engine, clock, result, path, number, line)
            reporter.line_done(result.lines)
    result.latest_event_time = clock.latest
    return result


def _replay_line(
    engine: Engine, clock: EventClock, result: ReplayResult, path: Path, number: int, line: str
) -> None:
    try:
        message = message_from_line(line)
    except InvalidEvent as invalid:
        outcome = Outcome(invalid=invalid)
    else:
        outcome = process(engine, message.value, message.headers, clock, result.previous_event_time)
    if outcome.event is not None:
        result.previous_event_time = outcome.event.time
        result.times_inferred += outcome.event.time_inferred
    if outcome.invalid is not None:
        result.dead_letters.append(DeadLetter(number, outcome.invalid.reason, line, str(path)))
    elif outcome.duplicate:
        result.duplicates += 1
    else:
        result.applied += 1
        result.findings += outcome.findings


def _lines(path: Path, reporter: "_ProgressTicker") -> Iterator[tuple[int, str]]:
    with sys.stdin.buffer if path == STDIN else path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            reporter.bytes_read(len(raw))
            text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
            if text.strip():
                yield number, text


class _ProgressTicker:
    """Reports progress now and then, so long replays show they are alive."""

    def __init__(self, total: int, progress: Progress | None, every: float) -> None:
        self.total, self.progress, self.every = total, progress, every
        self.read = 0
        self.next_report = time.monotonic() + every

    def bytes_read(self, count: int) -> None:
        self.read += count

    def line_done(self, lines: int) -> None:
        if self.progress and time.monotonic() >= self.next_report:
            self.next_report = time.monotonic() + self.every
            self.progress(self.read, self.total, lines)
