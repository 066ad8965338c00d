"""One message through the engine: decode, apply once, or say why it can't be applied."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cmdb_worker.schemas.decode import InvalidEvent, decode
from cmdb_worker.schemas.events import InputEvent
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker.clock import Clock
from cmdb_worker.worker.engine.apply import Engine


@dataclass
class Outcome:
    """What became of one message: its findings, or that it was a duplicate, or invalid."""

    event: InputEvent | None = None
    findings: list[Finding] = field(default_factory=list)
    duplicate: bool = False
    invalid: InvalidEvent | None = None


def process(
    engine: Engine,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
    clock: Clock,
    default_time: datetime | None = None,
) -> Outcome:
    """Decode and apply one message; ``default_time`` stands in for a missing event time."""
    try:
        event = decode(value, list(headers), default_time)
        findings = engine.apply(event, clock.at(event.time))
    except InvalidEvent as invalid:
        return Outcome(invalid=invalid)
    clock.now(event.time)
    if findings is None:
        return Outcome(event=event, duplicate=True)
    return Outcome(event=event, findings=findings)
