"""Apply decoded events to the state, once each, and collect the findings they cause."""

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from rules.policy import Policy
from schemas.events import (
    ChangeRequested,
    ChangeUpdated,
    CIObserved,
    CIRetired,
    Deploy,
    Ignored,
    Incident,
    InputEvent,
    LessonUpdated,
    ScanCompleted,
)
from schemas.findings import Finding
from schemas.ids import EventIdentity
from schemas.records import CIRecord
from worker import discovery, governance, incidents, lessons
from worker.state import State

Handler = Callable[[State, InputEvent, Any, datetime], list[Finding]]
DeadlineHandler = Callable[[State, str, str, datetime], list[Finding]]


def _ignore(state: State, event: InputEvent, payload: Any, now: datetime) -> list[Finding]:
    return []


HANDLERS: dict[type, Handler] = {
    CIObserved: discovery.on_observed,
    CIRetired: discovery.on_retired,
    ScanCompleted: discovery.on_scan_completed,
    ChangeRequested: governance.on_change_requested,
    ChangeUpdated: governance.on_change_updated,
    Deploy: governance.on_deploy,
    Incident: incidents.on_incident,
    LessonUpdated: lessons.on_lesson_updated,
    Ignored: _ignore,
}

DEADLINE_HANDLERS: dict[str, DeadlineHandler] = {
    discovery.STALE: lessons.on_stale,
    discovery.ORPHAN: discovery.on_deadline,
    lessons.STALE_TOO_LONG: lessons.on_stale_too_long,
    lessons.LESSON_DUE: lessons.on_due,
}


class Engine:
    """The event-applying core shared by ``replay`` and ``run``; time always comes from outside."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.state = State(policy)
        self._applied: set[str] = set()
        self._applied_order: deque[tuple[datetime, str]] = deque()
        self._remembered: list[tuple[str, datetime]] = []
        self._forgotten: list[str] = []

    def apply(self, event: InputEvent, now: datetime) -> list[Finding] | None:
        """Apply ``event`` as of ``now``; None if an event with its identity was already applied."""
        key = identity_key(event.identity)
        if key in self._applied:
            return None
        findings = HANDLERS[type(event.payload)](self.state, event, event.payload, now)
        self._remember(key, now)
        return findings + self.tick(now)

    def tick(self, now: datetime) -> list[Finding]:
        """Fire every deadline that has passed by ``now``, and any that firing arms in the past."""
        findings: list[Finding] = []
        while due := self.state.deadlines.pop_due(now):
            for key, kind in due:
                findings += DEADLINE_HANDLERS[kind](self.state, key, kind, now)
        return findings

    def _remember(self, key: str, now: datetime) -> None:
        self._applied.add(key)
        self._applied_order.append((now, key))
        self._remembered.append((key, now))
        horizon = now - self.policy.idempotence.remember_events_for
        while self._applied_order and self._applied_order[0][0] < horizon:
            forgotten = self._applied_order.popleft()[1]
            self._applied.discard(forgotten)
            self._forgotten.append(forgotten)

    def take_identity_changes(self) -> tuple[list[tuple[str, datetime]], list[str]]:
        """Identities remembered and forgotten since the last call (for the changelog)."""
        changes = (self._remembered, self._forgotten)
        self._remembered, self._forgotten = [], []
        return changes

    def last_applied_at(self) -> datetime | None:
        """The time the latest remembered event was judged at: where an event clock resumes."""
        return self._applied_order[-1][0] if self._applied_order else None

    def restore_identities(self, remembered: Iterable[tuple[str, datetime]]) -> None:
        for key, at in sorted(remembered, key=lambda pair: pair[1]):
            self._applied.add(key)
            self._applied_order.append((at, key))

    def reschedule(self, record: CIRecord) -> None:
        discovery.reschedule(self.state, record)


def identity_key(identity: EventIdentity) -> str:
    """A short, stable digest of an event identity: what the engine and changelog remember."""
    return hashlib.blake2b("\x1f".join(identity).encode(), digest_size=12).hexdigest()
