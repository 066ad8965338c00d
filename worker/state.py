"""Everything the worker knows, in one place the event handlers share."""

from dataclasses import dataclass, field

from rules.policy import Policy
from worker.cmdb import Cmdb
from worker.deadlines import DeadlineIndex


@dataclass
class State:
    policy: Policy
    cmdb: Cmdb = field(init=False)
    deadlines: DeadlineIndex = field(default_factory=DeadlineIndex)

    dirty: set[tuple[str, str]] = field(default_factory=set)
    """(entity kind, id) of non-CI entities changed since the last ``take_dirty``."""

    def __post_init__(self) -> None:
        self.cmdb = Cmdb(self.policy.identification.strong_identifiers)

    def touch(self, kind: str, entity_id: str) -> None:
        """Mark an entity (a change, lesson, incident...) as changed, for the changelog."""
        self.dirty.add((kind, entity_id))

    def take_dirty(self) -> set[tuple[str, str]]:
        changed = {("ci", ci_id) for ci_id in self.cmdb.take_dirty()} | self.dirty
        self.dirty = set()
        return changed
