"""Discovery source health: every observation or scan is a report from its source; a deadline
per source marks it silent when reports stop, and its next report recovers it.

A silent source files one ``source_silent`` finding and lesson; the CIs only silent sources
vouch for are flagged unverified and are not judged stale (see ``discovery.on_deadline``). A
report from a live discovery source clears the flag; on recovery the source's CIs are judged
again, their staleness counted from the recovery at the earliest.
"""

from datetime import datetime

from cmdb_worker.rules import sources as rules
from cmdb_worker.schemas.events import CIObserved, InputEvent, ScanCompleted
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.records import CIRecord, SourceHealth
from cmdb_worker.worker.engine import discovery, lessons
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.state import SOURCE, State

SOURCE_SILENT: DeadlineKind = "source_silent"


def on_observed(
    state: State, event: InputEvent, payload: CIObserved, now: datetime
) -> list[Finding]:
    findings = reported(state, event.source, event.time, now)
    findings += discovery.on_observed(state, event, payload, now)
    record = state.cmdb.get(payload.ci.ci_id)
    if record is not None and discovery.UNVERIFIED in record.flags:
        record.discard_flag(discovery.UNVERIFIED)  # a live discovery source vouches for it now
    return findings


def on_scan_completed(
    state: State, event: InputEvent, payload: ScanCompleted, now: datetime
) -> list[Finding]:
    findings = reported(state, event.source, event.time, now)
    return findings + discovery.on_scan_completed(state, event, payload, now)


def reported(state: State, source: str, at: datetime, now: datetime) -> list[Finding]:
    """A report from ``source`` at ``at``: first note a silence that fell due unticked."""
    health = state.sources.get(source)
    if health is not None and at <= health.last_report:
        return []
    findings = on_silence(state, source, SOURCE_SILENT, now) if health else []
    return findings + _report(state, health or SourceHealth(source=source, last_report=at), at, now)


def _report(state: State, health: SourceHealth, at: datetime, now: datetime) -> list[Finding]:
    silent_since = rules.silent_after(state.policy, health)
    health.last_report = at
    state.sources[health.source] = health
    state.touch(SOURCE, health.source)
    recovers = health.silent and not rules.is_silent(state.policy, health, now)
    findings = _recovered(state, health, silent_since, now) if recovers else []
    schedule_silence(state, health)
    return findings


def schedule_silence(state: State, health: SourceHealth) -> None:
    if not health.silent:
        deadline = rules.silent_after(state.policy, health)
        state.deadlines.schedule(health.source, SOURCE_SILENT, deadline)


def on_silence(state: State, source: str, kind: str, now: datetime) -> list[Finding]:
    """The source's silence deadline: one finding and one lesson, however many CIs it held."""
    health = state.sources.get(source)
    if health is None or health.silent or not rules.is_silent(state.policy, health, now):
        return []
    health.silent = True
    state.touch(SOURCE, source)
    affected = _unverified(state, source)
    for record in affected:
        if not record.stale:
            record.add_flag(discovery.UNVERIFIED)
            state.cmdb.dirty.add(record.id)
    filing = rules.silent_filing(state.policy, health, len(affected))
    finding = rules.source_silent(state.policy, health, len(affected), now)
    return [finding, *lessons.file(state, filing, now)]


def _recovered(
    state: State, health: SourceHealth, silent_since: datetime, now: datetime
) -> list[Finding]:
    """Judge the CIs only this source vouched for again, counting from its recovery."""
    vouched = _unverified(state, health.source)
    health.silent = False
    for record in vouched:
        if not record.stale:
            record.recounted_from = health.last_report
        record.discard_flag(discovery.UNVERIFIED)
        state.cmdb.dirty.add(record.id)
        discovery.reschedule(state, record)
    return [rules.source_recovered(health, silent_since, now)]


def _unverified(state: State, source: str) -> list[CIRecord]:
    """The CIs ``source`` reported that only silent sources vouch for."""
    found = (state.cmdb.get_unmerged(ci_id) for ci_id in sorted(state.cmdb.seen_by_source(source)))
    return [record for record in found if record is not None and state.unverified(record)]
