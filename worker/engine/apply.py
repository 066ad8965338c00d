"""Apply decoded events to the state, once each, and collect the findings they cause."""

import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.events import (
    ChangeMerged,
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
    SuppressionSet,
)
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import EventIdentity
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.engine import (
    discovery,
    dora,
    governance,
    history,
    lessons,
    owners,
    sources,
    suppressions,
)
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.edge_history import EDGES_EXPIRE
from cmdb_worker.worker.engine.identities import AppliedEvents
from cmdb_worker.worker.engine.operations import Found, Operation, OperationKind, Rehomed
from cmdb_worker.worker.engine.ownership import ONE_OWNER, Ownership
from cmdb_worker.worker.engine.state import TIMELINE, State

Handler = Callable[[State, InputEvent, Any, datetime], list[Finding]]
DeadlineHandler = Callable[[State, str, DeadlineKind, datetime], list[Finding]]


def _ignore(state: State, event: InputEvent, payload: Any, now: datetime) -> list[Finding]:
    return []


HANDLERS: dict[type, Handler] = {
    CIObserved: sources.on_observed,
    CIRetired: discovery.on_retired,
    ScanCompleted: sources.on_scan_completed,
    ChangeRequested: dora.counting_failures(governance.on_change_requested),
    ChangeUpdated: dora.counting_failures(governance.on_change_updated),
    Deploy: dora.on_deploy,
    Incident: dora.on_incident,
    ChangeMerged: dora.on_change_merged,
    LessonUpdated: lessons.on_lesson_updated,
    SuppressionSet: suppressions.on_suppression_set,
    Ignored: _ignore,
}

DEADLINE_HANDLERS: dict[DeadlineKind, DeadlineHandler] = {
    discovery.STALE: lessons.on_stale,
    discovery.ORPHAN: discovery.on_deadline,
    discovery.PHANTOM: discovery.on_deadline,
    lessons.STALE_TOO_LONG: lessons.on_stale_too_long,
    lessons.LESSON_DUE: lessons.on_due,
    sources.SOURCE_SILENT: sources.on_silence,
    suppressions.SUPPRESSION_ENDS: suppressions.on_end,
    history.TIMELINE_EXPIRES: history.on_timeline_expires,
    EDGES_EXPIRE: history.on_edges_expire,
}


def _judged_at(
    state: State, event: InputEvent, home: str, now: datetime, follow_identifiers: bool = True
) -> list[Finding]:
    """Apply ``event`` on the owner of ``home``, the entity it belongs to."""
    state.home, state.follow_identifiers = home, follow_identifiers
    return HANDLERS[type(event.payload)](state, event, event.payload, now)


MAX_HOPS = 3
"""How often an event is sent on before it is judged where it is (views lagging that far)."""


def _rehomed(state: State, rehomed: Rehomed, now: datetime) -> list[Finding]:
    """An event another owner's partition received about a CI this engine owns, judged here if
    it lands here as this engine sees it, else sent on (``Rehomed.hops``)."""
    event, follow = rehomed.event(), not rehomed.hops
    home = owners.judged_at(state, event, follow)
    if not state.ownership.owns(home) and rehomed.hops < MAX_HOPS:
        state.emit(rehomed.model_copy(update={"entity": home, "hops": rehomed.hops + 1}))
        return []
    findings = _judged_at(state, event, home, now, follow)
    return [finding.traced(event.extensions) for finding in findings]


OperationHandler = Callable[[State, Any, datetime], list[Finding]]
OPERATION_HANDLERS: dict[OperationKind, OperationHandler] = {
    "referenced": discovery.on_referenced,
    "target_retired": discovery.on_target_retired,
    "found": lambda _, found, now: [found.finding],
    "filed": lessons.on_filed,
    "change_on_ci": governance.on_change_on_ci,
    "deploy_linked": dora.on_deploy_linked,
    "lesson_edited": lessons.on_lesson_edited,
    "suppressed": suppressions.on_suppressed,
    "source_heard": sources.on_source_heard,
    "unverified": sources.on_unverified,
    "reverified": sources.on_reverified,
    "merged_away": discovery.on_merged_away,
    "target_merged": discovery.on_target_merged,
    "absorbed": discovery.on_absorbed,
    "rehomed": _rehomed,
}


class Engine:
    """The event-applying core shared by ``replay`` and ``run``; time always comes from outside."""

    def __init__(self, policy: Policy, ownership: Ownership = ONE_OWNER) -> None:
        self.policy = policy
        self.state = State(policy, ownership)
        self.applied = AppliedEvents(policy.idempotence.remember_events_for)
        self.suppressed: Counter[str] = Counter()
        self.outgoing: list[Operation] = []
        self._cause = ""
        """The identity of what is being applied: what the operations it hands over came from."""

    def apply(self, event: InputEvent, now: datetime) -> list[Finding] | None:
        """Apply ``event`` as of ``now``, then fire the deadlines due; None if an event with its
        identity was already applied."""
        findings = self.judge(event, now)
        return None if findings is None else findings + self.tick(now)

    def judge(self, event: InputEvent, now: datetime) -> list[Finding] | None:
        """Apply ``event`` as of ``now``, firing no deadline; None if an event with its identity
        was already applied."""
        key = identity_key(event.identity)
        if key in self.applied:
            return None
        self._cause = key
        home = owners.judged_at(self.state, event)
        if self.state.ownership.owns(home):
            handled = _judged_at(self.state, event, home, now)
        else:
            self.state.emit(Rehomed.of(event, home))
            handled = []
        handled += self._operate(now)
        findings = [finding.traced(event.extensions) for finding in handled]
        self.applied.remember(key, now)
        return self._unsuppressed(findings, now)

    def tick(self, now: datetime) -> list[Finding]:
        """Fire every deadline that has passed by ``now``, and any that firing arms in the past,
        earliest first: a restarted engine, which re-arms its deadlines in another order (some
        only as others fire), fires them in the same order as one that ran on."""
        findings: list[Finding] = []
        while (fired := self.fire_next(now)) is not None:
            findings += fired
        return findings

    def fire_next(self, now: datetime) -> list[Finding] | None:
        """Fire the earliest deadline due by ``now`` (None: no deadline is), if this engine owns
        its entity, with the operations it emits."""
        due = self.state.deadlines.pop_next(now)
        if due is None:
            return None
        key, kind = due
        if not owners.fires(self.state, key, kind):
            return []
        self._cause = _digest(kind, key, now.isoformat())
        findings = DEADLINE_HANDLERS[kind](self.state, key, kind, now) + self._operate(now)
        return self._unsuppressed(findings, now)

    def receive(self, operation: Operation, now: datetime) -> list[Finding]:
        """Apply an operation another owner sent about an entity this engine owns, once: one
        delivered again (same cause and fields) changes nothing."""
        key = _digest(operation.model_dump_json())
        if key in self.applied:
            return []
        self.applied.remember(key, now)
        self._cause = key
        self.state.emit(operation)
        return self._unsuppressed(self._operate(now), now)

    def take_outgoing(self) -> list[Operation]:
        """The operations on other owners' entities emitted since the last call."""
        taken, self.outgoing = self.outgoing, []
        return taken

    def _operate(self, now: datetime) -> list[Finding]:
        """Apply the emitted operations whose entity this engine owns; hand over the rest."""
        findings: list[Finding] = []
        while self.state.outbox:  # applying one may emit more
            operation = self.state.outbox.pop(0)
            if self.state.ownership.owns(operation.entity):
                findings += OPERATION_HANDLERS[operation.kind](self.state, operation, now)
            else:
                self.outgoing.append(operation.model_copy(update={"cause": self._cause}))
        return findings

    def _unsuppressed(self, findings: list[Finding], now: datetime) -> list[Finding]:
        """The findings no suppression holds back; each, held or not, joins its subject's
        history. A finding about another owner's subject goes to that owner, which does this."""
        kept = []
        for finding in findings:
            subject = owners.owning_entity(self.state, TIMELINE, finding.subject)
            if not self.state.ownership.owns(subject):
                self.outgoing.append(Found(entity=subject, finding=finding, cause=self._cause))
                continue
            held = suppressions.hold(self.state, finding, now)
            history.record(self.state, finding, held, now)
            if held:
                self.suppressed[finding.kind] += 1
            else:
                kept.append(finding)
        return kept

    def take_suppressed(self) -> Counter[str]:
        """Findings held back by kind since the last call (for the suppressed-findings counter)."""
        taken, self.suppressed = self.suppressed, Counter()
        return taken

    def reschedule(self, record: CIRecord) -> None:
        discovery.rearm(self.state, record)


def identity_key(identity: EventIdentity) -> str:
    """A short, stable digest of an event identity: what the engine and changelog remember."""
    return _digest(*identity)


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()
