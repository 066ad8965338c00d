"""Discovery source health: every observation or scan is a report from its source; a deadline
per source marks it silent when reports stop, and its next report recovers it.

A silent source files one ``source_silent`` finding and lesson; the CIs only silent sources
vouch for are flagged unverified and are not judged stale (see ``discovery.on_deadline``). A
report from a live discovery source clears the flag; on recovery the source's CIs are judged
again, their staleness counted from the recovery at the earliest.

Every report raises the source's ``SourceReport`` partial of the owner partition the event
belongs to (``ownership.home_key``: a CI's, or for a scan the source's own), so each owner
writes only its own keys; the source's record (``SourceHealth``) is written only when it falls
silent or recovers. The source's last report is the latest of its partials: read back in any
order, they give the same (``restore_health``, ``restore_report``). The silence and the
recovery are judged by the owner of the source's name (a report from a silent or overdue source
goes to it: ``on_source_heard``), their flags put on each CI by its owner (``on_unverified``,
``on_reverified``).
"""

from datetime import datetime

from cmdb_worker.rules import sources as rules
from cmdb_worker.schemas.events import CIObserved, InputEvent, ScanCompleted
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.records import CIRecord, SourceHealth, SourceReport
from cmdb_worker.worker.engine import discovery, lessons
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.operations import Reverified, SourceHeard, Unverified
from cmdb_worker.worker.engine.state import SOURCE, SOURCE_REPORT, State

SOURCE_SILENT: DeadlineKind = "source_silent"


def on_observed(
    state: State, event: InputEvent, payload: CIObserved, now: datetime
) -> list[Finding]:
    findings = discovery.on_observed(state, event, payload, now)
    findings += reported(state, event, now)  # a recovery's operation sees the CI as it is now
    record = state.cmdb.get(payload.ci.ci_id)
    if record is not None and discovery.UNVERIFIED in record.flags:
        record.discard_flag(discovery.UNVERIFIED)  # a live discovery source vouches for it now
    return findings


def on_scan_completed(
    state: State, event: InputEvent, payload: ScanCompleted, now: datetime
) -> list[Finding]:
    findings = reported(state, event, now)
    return findings + discovery.on_scan_completed(state, event, payload, now)


def reported(state: State, event: InputEvent, now: datetime) -> list[Finding]:
    """A report from ``event.source``: its owner partition's partial rises to it; a source that
    was silent, or whose silence fell due unticked, is the source name's owner's to judge."""
    source, at = event.source, event.time
    health = state.sources.get(source)
    if health is not None and at <= health.last_report:
        return []
    if health is not None and (health.silent or rules.is_silent(state.policy, health, now)):
        state.emit(SourceHeard(source=source, at=at, previous=health.last_report))
    owner = state.ownership.partition_of(state.home)
    report = SourceReport(source=source, owner=owner, last_report=at)
    health = health or SourceHealth(source=source, last_report=at)
    health.last_report = at
    state.sources[source] = health
    state.source_reports[report.key] = report
    state.touch(SOURCE_REPORT, report.key)
    schedule_silence(state, health)
    return []


def schedule_silence(state: State, health: SourceHealth) -> None:
    if not health.silent:
        deadline = rules.silent_after(state.policy, health)
        state.deadlines.schedule(health.source, SOURCE_SILENT, deadline)


def on_silence(state: State, source: str, kind: str, now: datetime) -> list[Finding]:
    """The source's silence deadline: one finding and one lesson, however many CIs it held."""
    health = state.sources.get(source)
    if health is None or health.silent or not rules.is_silent(state.policy, health, now):
        return []
    return _fall_silent(state, health, health, now)


def on_source_heard(state: State, heard: SourceHeard, now: datetime) -> list[Finding]:
    """A report from a source this engine judges, silent or due to be: it falls silent first if
    it was by its previous report, and recovers if this report makes it live."""
    health = state.sources.get(heard.source)
    if health is None:
        return []
    before = health.model_copy(update={"last_report": heard.previous})
    findings = []
    if not health.silent and rules.is_silent(state.policy, before, now):
        findings = _fall_silent(state, health, before, now)
    health.last_report = max(health.last_report, heard.at)  # its partial may come later
    if health.silent and not rules.is_silent(state.policy, health, now):
        findings += _recovered(state, health, rules.silent_after(state.policy, before), now)
    return findings


def _fall_silent(
    state: State, health: SourceHealth, as_of: SourceHealth, now: datetime
) -> list[Finding]:
    """Mark the source silent (``as_of``: as its silence found it) and the CIs only silent
    sources vouch for unverified."""
    health.silent = True
    state.touch(SOURCE, health.source)
    affected = _unverified(state, health.source)
    for record in affected:
        if not record.stale:
            state.emit(Unverified(ci_id=record.id))
    filing = rules.silent_filing(state.policy, as_of, len(affected))
    finding = rules.source_silent(state.policy, as_of, len(affected), now)
    return [finding, *lessons.file(state, filing, now)]


def on_unverified(state: State, unverified: Unverified, now: datetime) -> list[Finding]:
    """Flag a CI this engine owns: only silent sources vouch for it."""
    record = state.cmdb.get_unmerged(unverified.ci_id)
    if record is not None and not record.stale:
        record.add_flag(discovery.UNVERIFIED)
        state.cmdb.dirty.add(record.id)
    return []


def _recovered(
    state: State, health: SourceHealth, silent_since: datetime, now: datetime
) -> list[Finding]:
    """Judge the CIs only this source vouched for again, counting from its recovery."""
    vouched = _unverified(state, health.source)
    health.silent = False
    state.touch(SOURCE, health.source)
    schedule_silence(state, health)
    for record in vouched:
        state.emit(Reverified(ci_id=record.id, since=health.last_report))
    return [rules.source_recovered(health, silent_since, now)]


def on_reverified(state: State, reverified: Reverified, now: datetime) -> list[Finding]:
    """A CI this engine owns is judged again, its staleness counted from the recovery."""
    record = state.cmdb.get_unmerged(reverified.ci_id)
    if record is None:
        return []
    if not record.stale:
        record.recounted_from = reverified.since
    record.discard_flag(discovery.UNVERIFIED)
    state.cmdb.dirty.add(record.id)
    discovery.reschedule(state, record)
    return []


def _unverified(state: State, source: str) -> list[CIRecord]:
    """The CIs ``source`` reported that only silent sources vouch for."""
    found = (state.cmdb.get_unmerged(ci_id) for ci_id in sorted(state.cmdb.seen_by_source(source)))
    return [record for record in found if record is not None and state.unverified(record)]


def restore_health(state: State, key: str, health: SourceHealth) -> None:
    """A source's record read back: its silence as written, its last report the latest of the
    record's and the partials' read so far."""
    earlier = state.sources.get(key)
    if earlier is not None:
        health.last_report = max(health.last_report, earlier.last_report)
    state.sources[key] = health


def restore_report(state: State, key: str, report: SourceReport) -> None:
    """A partial read back: the source's last report rises to it (a source known only from its
    partials has not been silent), and so does its silence deadline (the source name's owner
    fires it, whichever owner's events the report came in)."""
    state.source_reports[key] = report
    health = state.sources.setdefault(
        report.source, SourceHealth(source=report.source, last_report=report.last_report)
    )
    health.last_report = max(health.last_report, report.last_report)
    schedule_silence(state, health)
