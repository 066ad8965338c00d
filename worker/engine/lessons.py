"""The Lessons Register's bookkeeping: file or recur lessons, apply people's edits, due dates.

Deadlines: ``lesson_due`` fires ``lesson_overdue`` once a lesson's due date has passed (unless it
is Done or Won't Do by then); ``stale_too_long`` is armed when a CI goes stale and files
``cmdb_stale`` if the CI is still stale when the grace ends (seen again, it is no longer stale,
or its grace has moved on, and the deadline does nothing).
"""

from collections.abc import Iterable
from datetime import datetime

from cmdb_worker.rules import lessons as rules
from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.schemas.events import InputEvent, LessonUpdated, payload_fields
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.lessons import Lesson, OverdueReported
from cmdb_worker.worker.engine import discovery
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.operations import Filed, LessonEdited
from cmdb_worker.worker.engine.state import LESSON_OVERDUE, State

LESSON_DUE: DeadlineKind = "lesson_due"
STALE_TOO_LONG: DeadlineKind = "stale_too_long"


def file(state: State, filing: rules.Filing, now: datetime) -> list[Finding]:
    """File a lesson for the filing's (rule, subject), or count a recurrence of the one there is;
    a subject another owner owns is that owner's to file."""
    if not state.ownership.owns(filing.subject):
        state.emit(Filed(filing=filing))
        return []
    return on_filed(state, Filed(filing=filing), now)


def on_filed(state: State, filed: Filed, now: datetime) -> list[Finding]:
    """File the lesson, as the owner of its subject."""
    filing = filed.filing
    lesson_id = state.lesson_keys.get((filing.rule, filing.subject))
    previous = state.lessons.get(lesson_id) if lesson_id else None
    if previous is not None and set(filing.evidence) <= set(previous.evidence):
        return []  # this very occurrence is counted (a restarted replica re-arms deadlines)
    if previous is None:
        new_id = state.lesson_numbers.next_id(filing.subject)
        lesson = rules.new_lesson(state.policy, new_id, filing, now)
    else:
        lesson = rules.recurrence(state.policy, previous, filing, now)
    state.put_lesson(lesson)
    schedule_due(state, lesson)
    reopened = previous is not None and previous.status == "Done"
    return [rules.lesson_filed(lesson, now, reopened)] if previous is None or reopened else []


def file_all(state: State, filings: Iterable[rules.Filing | None], now: datetime) -> list[Finding]:
    return [finding for filing in filings if filing for finding in file(state, filing, now)]


def schedule_due(state: State, lesson: Lesson) -> None:
    """Arm the lesson's overdue check (open lessons only)."""
    if lesson.is_open:
        state.deadlines.schedule(lesson.id, LESSON_DUE, rules.overdue_at(lesson))
    else:
        state.deadlines.cancel(lesson.id, LESSON_DUE)


def _reported(state: State, lesson: Lesson) -> bool:
    """Whether lesson_overdue went out for the lesson's current due date (rebuilt replicas
    arm every open lesson's check again: this is what keeps it from going out twice)."""
    reported = state.overdue_reported.get(lesson.id)
    return reported is not None and reported.due == lesson.due


def on_lesson_updated(
    state: State, event: InputEvent, payload: LessonUpdated, now: datetime
) -> list[Finding]:
    """A person changed a lesson's status, owner or due date."""
    lesson = state.lessons.get(payload.lesson_id)
    if lesson is None:
        raise InvalidEvent("unknown_lesson", f"lesson {payload.lesson_id!r} is not in the register")
    state.emit(LessonEdited(subject=lesson.subject, update=payload, at=event.time))
    return []


def on_lesson_edited(state: State, edited: LessonEdited, now: datetime) -> list[Finding]:
    """Apply a person's edit to a lesson this engine keeps."""
    update = edited.update
    lesson = state.lessons.get(update.lesson_id)
    if lesson is None:
        return []
    edits = {name: value for name, value in payload_fields(update).items() if name != "lesson_id"}
    updated = lesson.model_copy(update={**edits, "updated_at": max(lesson.updated_at, edited.at)})
    state.put_lesson(updated)
    schedule_due(state, updated)
    return []


def on_due(state: State, lesson_id: str, kind: str, now: datetime) -> list[Finding]:
    lesson = state.lessons.get(lesson_id)
    if lesson is None or not lesson.is_open or _reported(state, lesson):
        return []
    state.overdue_reported[lesson.id] = OverdueReported(lesson_id=lesson.id, due=lesson.due)
    state.touch(LESSON_OVERDUE, lesson.id)
    return [rules.lesson_overdue(lesson, now)]


def on_stale(state: State, ci_id: str, kind: str, now: datetime) -> list[Finding]:
    """A CI's staleness deadline: discovery judges it; if it went stale, the grace starts."""
    findings = discovery.on_deadline(state, ci_id, kind, now)
    record = state.cmdb.get_unmerged(CIId(ci_id))
    if record is not None and record.stale:
        grace_ends = rules.stale_grace_ends(state.policy, record)
        state.deadlines.schedule(record.id, STALE_TOO_LONG, grace_ends)
    return findings


def on_stale_too_long(state: State, ci_id: str, kind: str, now: datetime) -> list[Finding]:
    """File ``cmdb_stale`` if the CI is stale and its grace, from its current last seen, is over.

    No lesson while only silent sources vouch for the CI (the source's own lesson covers it).
    The grace is re-checked because a deadline armed by an earlier staleness can fall due in
    the same tick as the CI going stale again after being seen.
    """
    record = state.cmdb.get_unmerged(CIId(ci_id))
    if record is None or not record.stale or state.unverified(record):
        return []
    if now <= rules.stale_grace_ends(state.policy, record):
        return []
    return file(state, rules.cmdb_stale(state.policy, record), now)
