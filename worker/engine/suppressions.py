"""Suppressions: a person holds back findings of some kinds about one subject until a time.

Held-back findings are counted, not emitted; the latest of each kind is kept, and when the
suppression ends it is reported then if its condition still holds (a CI still stale, a source
still silent...). Findings that record an event rather than a condition are not re-reported.
"""

from collections.abc import Callable
from datetime import datetime

from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.schemas.events import InputEvent, SuppressionSet
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import Suppression
from cmdb_worker.worker.engine import discovery
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.operations import Suppressed
from cmdb_worker.worker.engine.state import SUPPRESSION, State

SUPPRESSION_ENDS: DeadlineKind = "suppression_ends"
KEY_SEPARATOR = "\x1f"
StillTrue = Callable[[State, Finding], bool]


def on_suppression_set(
    state: State, event: InputEvent, payload: SuppressionSet, now: datetime
) -> list[Finding]:
    if payload.until <= event.time:
        raise InvalidEvent(
            "invalid_value", f"until {payload.until.isoformat()} is not after the event's "
            f"time {event.time.isoformat()}: the suppression would never be in force",
        )  # fmt: skip
    state.emit(Suppressed(subject=_subject(state, payload.subject), request=payload))
    return []


def on_suppressed(state: State, suppressed: Suppressed, now: datetime) -> list[Finding]:
    """Hold back findings about a subject this engine owns."""
    subject, request = suppressed.subject, suppressed.request
    held = state.suppressions.get(subject) or Suppression(subject=subject)
    held.until |= dict.fromkeys(request.kinds, request.until)
    held.reason, held.by = request.reason, request.by
    state.suppressions[subject] = held
    state.touch(SUPPRESSION, subject)
    schedule_ends(state, held)
    return []


def _subject(state: State, subject: str) -> str:
    """A CI named by an alias is suppressed under the id its findings carry."""
    return state.cmdb.resolve(CIId(subject))


def schedule_ends(state: State, held: Suppression) -> None:
    for kind, until in held.until.items():
        state.deadlines.schedule(deadline_key(held.subject, kind), SUPPRESSION_ENDS, until)


def deadline_key(subject: str, kind: str) -> str:
    """The deadline key of the suppression of ``kind`` findings about ``subject``."""
    return f"{subject}{KEY_SEPARATOR}{kind}"


def hold(state: State, finding: Finding, now: datetime) -> bool:
    """True, and the finding kept on its suppression, if a suppression in force covers it."""
    held = state.suppressions.get(finding.subject)
    until = held.until.get(finding.kind) if held else None
    if held is None or until is None or now >= until:
        return False
    held.held[finding.kind] = finding
    state.touch(SUPPRESSION, held.subject)
    return True


def on_end(state: State, key: str, kind: str, now: datetime) -> list[Finding]:
    """A suppression ended: report its held finding if the condition still holds."""
    subject, _, finding_kind = key.partition(KEY_SEPARATOR)
    held = state.suppressions.get(subject)
    if held is None or finding_kind not in held.until or now < held.until[finding_kind]:
        return []
    del held.until[finding_kind]
    finding = held.held.pop(finding_kind, None)
    state.touch(SUPPRESSION, subject)
    if finding is None or not STILL_TRUE.get(finding_kind, _never)(state, finding):
        return []
    return [finding.model_copy(update={"time": now})]


def _never(state: State, finding: Finding) -> bool:
    return False


def _flagged(flag: str) -> StillTrue:
    def check(state: State, finding: Finding) -> bool:
        record = state.cmdb.get_unmerged(CIId(finding.subject))
        return record is not None and flag in record.flags

    return check


def _still_stale(state: State, finding: Finding) -> bool:
    record = state.cmdb.get_unmerged(CIId(finding.subject))
    return record is not None and record.stale


def _still_silent(state: State, finding: Finding) -> bool:
    health = state.sources.get(finding.subject)
    return health is not None and health.silent


def _still_conflicting(state: State, finding: Finding) -> bool:
    return _flagged(discovery.conflict_flag(finding.details()["attribute"]))(state, finding)


STILL_TRUE: dict[str, StillTrue] = {
    "ci_stale": _still_stale,
    "ci_no_owner": _flagged("no_owner"),
    "ci_orphan": _flagged(discovery.ORPHAN),
    "ci_phantom": _flagged(discovery.PHANTOM),
    "ci_attribute_conflict": _still_conflicting,
    "source_silent": _still_silent,
}
"""Finding kinds that state a condition, and how to tell it still holds at expiry."""
