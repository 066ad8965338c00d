"""Every finding about a subject, oldest first: what ``/api/cis/{id}/history`` and
``/api/changes/{id}/history`` answer (a change's assessments are its ``change_assessed``).

Findings are recorded where they leave the engine, after suppression: a finding a suppression
held back is recorded too, marked ``suppressed`` (the history is the record of what the worker
concluded; suppression only silences the topic), and if it is reported when the suppression
ends, that report is a second entry. A subject's timeline keeps what is younger than
``history.retention`` (by the engine's time) and at most ``history.max_entries_per_subject``
entries; a deadline per subject drops entries as they age out, so quiet subjects shrink too.
"""

import bisect
import heapq
from collections.abc import Iterable
from datetime import datetime

from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.history import SubjectHistory, TimelineEntry
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.state import TIMELINE, State

TIMELINE_EXPIRES: DeadlineKind = "timeline_expires"


def record(state: State, finding: Finding, suppressed: bool, now: datetime) -> None:
    """Add ``finding`` to its subject's timeline, in time order (after any of the same time)."""
    subject = finding.subject
    timeline = state.timelines.setdefault(subject, SubjectHistory(subject=subject))
    entry = TimelineEntry(finding.time, suppressed, finding.model_dump_json())
    bisect.insort_right(timeline.entries, entry, key=_time)
    _bound(state, timeline, now)


def on_timeline_expires(state: State, subject: str, kind: str, now: datetime) -> list[Finding]:
    """A subject's oldest entry aged out: drop what the retention no longer keeps."""
    timeline = state.timelines.get(subject)
    if timeline is not None:
        _bound(state, timeline, now)
    return []


def on_edges_expire(state: State, origin: str, kind: str, now: datetime) -> list[Finding]:
    """An origin's oldest edge interval aged out (see ``engine.edge_history``)."""
    state.cmdb.edge_history.expire(origin, now)
    return []


def schedule_expiry(state: State, timeline: SubjectHistory) -> None:
    if timeline.entries:
        oldest = timeline.entries[0].time
        retention = state.policy.history.retention
        state.deadlines.schedule(timeline.subject, TIMELINE_EXPIRES, oldest + retention)


def entries_about(state: State, subjects: Iterable[str]) -> list[TimelineEntry]:
    """The entries about any of ``subjects`` (a CI under its id and the ids merged into it),
    merged oldest first."""
    timelines = [state.timelines[subject] for subject in subjects if subject in state.timelines]
    return list(heapq.merge(*(timeline.entries for timeline in timelines), key=_time))


def _bound(state: State, timeline: SubjectHistory, now: datetime) -> None:
    bounds = state.policy.history
    newest = timeline.entries[-bounds.max_entries_per_subject :]
    start = bisect.bisect_left(newest, now - bounds.retention, key=_time)
    timeline.entries = newest[start:]
    state.touch(TIMELINE, timeline.subject)
    if timeline.entries:
        schedule_expiry(state, timeline)
    else:
        del state.timelines[timeline.subject]
        state.deadlines.cancel(timeline.subject, TIMELINE_EXPIRES)


def _time(entry: TimelineEntry) -> datetime:
    return entry.time
