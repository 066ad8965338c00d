"""Builders of the contract's input events, for tests (dicts, as producers put them on the wire)."""

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cmdb_worker.schemas.decode import decode
from cmdb_worker.schemas.events import InputEvent
from cmdb_worker.schemas.findings import Finding

if TYPE_CHECKING:
    from cmdb_worker.worker.engine.apply import Engine

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def at(hours: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, days=days)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def cloudevent(
    event_type: str,
    data: dict[str, Any],
    *,
    id: str,
    source: str = "/discovery/a",
    time: datetime = T0,
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": event_type,
        "time": iso(time),
        "data": data,
    }


def observed(
    name: str,
    *,
    ci_type: str = "service",
    environment: str | None = "prod",
    id: str | None = None,
    source: str = "/discovery/a",
    time: datetime = T0,
    relations: list[tuple[str, str]] | None = None,
    complete: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """A ``cmdb.ci.observed``; ``relations`` are (type, target CI id like ``database/pg@prod``)."""
    ci = {"type": ci_type, "name": name, **fields}
    if environment:
        ci["environment"] = environment
    data = {
        "ci": ci,
        "relations": [_relation(r) for r in relations or []],
        "relations_complete": complete,
    }
    event_id = id or f"obs-{name}-{iso(time)}-{source}"
    return cloudevent("cmdb.ci.observed", data, id=event_id, source=source, time=time)


def _relation(pair: tuple[str, str]) -> dict[str, Any]:
    relation_type, target = pair
    ci_type, rest = target.split("/", 1)
    name, _, environment = rest.partition("@")
    ref = {"type": ci_type, "name": name} | ({"environment": environment} if environment else {})
    return {"type": relation_type, "target": ref}


def retired(
    ci_type: str,
    name: str,
    *,
    environment: str | None = None,
    time: datetime = T0,
    id: str = "retire-1",
) -> dict[str, Any]:
    ref = {"type": ci_type, "name": name} | ({"environment": environment} if environment else {})
    return cloudevent(
        "cmdb.ci.retired",
        {"ci": ref, "reason": "decommissioned"},
        id=id,
        source="/itsm/servicenow",
        time=time,
    )


def scan_completed(
    *,
    started: datetime,
    time: datetime,
    source: str = "/discovery/a",
    types: list[str] | None = None,
    environment: str | None = None,
    id: str = "scan-1",
) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    if types is not None:
        scope["types"] = types
    if environment is not None:
        scope["environment"] = environment
    data = {"scope": scope, "started_at": iso(started)}
    return cloudevent("cmdb.scan.completed", data, id=id, source=source, time=time)


def heartbeats(
    until: datetime, *, since: datetime = T0, source: str = "/discovery/a"
) -> list[dict[str, Any]]:
    """Empty scans from ``source`` every 4 hours after ``since`` up to ``until``: a live source
    (one that sends nothing for 6 hours is silent, and its CIs unverified instead of stale)."""
    moments = []
    moment = since + timedelta(hours=4)
    while moment <= until:
        moments.append(moment)
        moment += timedelta(hours=4)
    if not moments or moments[-1] != until:
        moments.append(until)
    return [
        scan_completed(started=moment, time=moment, source=source, types=["heartbeat"],
                       id=f"alive-{iso(moment)}")
        for moment in moments
    ]  # fmt: skip


def keep_alive(
    engine: "Engine", until: datetime, *, since: datetime = T0, source: str = "/discovery/a"
) -> list[Finding]:
    """Apply ``heartbeats`` to ``engine``, each as of its own time; returns the findings."""
    events = [to_input(beat) for beat in heartbeats(until, since=since, source=source)]
    return [finding for event in events for finding in engine.apply(event, event.time) or []]


def to_input(message: dict[str, Any]) -> InputEvent:
    return decode(json.dumps(message).encode())


def kinds(findings: list[Finding]) -> list[str]:
    return [finding.kind for finding in findings]
