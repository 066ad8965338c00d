"""Apply decoded events to the state, once each, and collect the findings they cause."""

from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rules.policy import Policy
from schemas.events import CIObserved, CIRetired, Ignored, InputEvent, ScanCompleted
from schemas.findings import Finding
from schemas.ids import EventIdentity
from worker import discovery
from worker.state import State

Handler = Callable[[State, InputEvent, Any, datetime], list[Finding]]


def _ignore(state: State, event: InputEvent, payload: Any, now: datetime) -> list[Finding]:
    return []


HANDLERS: dict[type, Handler] = {
    CIObserved: discovery.on_observed,
    CIRetired: discovery.on_retired,
    ScanCompleted: discovery.on_scan_completed,
    Ignored: _ignore,
}


class Engine:
    """The event-applying core shared by ``replay`` and ``run``; time always comes from outside."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.state = State(policy)
        self._applied: set[EventIdentity] = set()
        self._applied_order: deque[tuple[datetime, EventIdentity]] = deque()

    def apply(self, event: InputEvent, now: datetime) -> list[Finding] | None:
        """Apply ``event`` as of ``now``; None if an event with its identity was already applied."""
        if event.identity in self._applied:
            return None
        findings = HANDLERS[type(event.payload)](self.state, event, event.payload, now)
        self._remember(event.identity, now)
        return findings + self.tick(now)

    def tick(self, now: datetime) -> list[Finding]:
        """Fire every deadline that has passed by ``now``."""
        findings: list[Finding] = []
        for key, kind in self.state.deadlines.pop_due(now):
            findings += discovery.on_deadline(self.state, key, kind, now)
        return findings

    def _remember(self, identity: EventIdentity, now: datetime) -> None:
        self._applied.add(identity)
        self._applied_order.append((now, identity))
        horizon = now - self.policy.idempotence.remember_events_for
        while self._applied_order and self._applied_order[0][0] < horizon:
            self._applied.discard(self._applied_order.popleft()[1])


