"""Operations: what an event does to an entity that another owner partition writes.

An event is judged by the owner of the entity it belongs to (``owners.judged_at``: its home
key, ``ownership.home_key``, or the CI another owner holds under that id, to which the home
forwards it whole: ``Rehomed``), but some of what it decides lands on other entities: a
relation names a CI some other partition owns. Handlers do not write
such an entity; they emit an operation on it (``State.emit``), which the engine applies at once
when it owns the entity (always, with one owner: ``replay``, the active/standby ``run``) and
otherwise hands over for the entity's owner (``Engine.take_outgoing``), which applies it to what
it holds (``Engine.receive``). The owner decides there, against its own record, so an operation
says what happened, not what to write; the owner applies each once, by its identity
(``cause`` and its fields), so a redelivery changes nothing.

docs/architecture.md ("Partitioned judgement") has the table of operations: who sends each,
whose owner applies it and what it does.
"""

from datetime import datetime
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from cmdb_worker.rules.lessons import Filing
from cmdb_worker.schemas.changes import DeployEntry
from cmdb_worker.schemas.ci import CIRef
from cmdb_worker.schemas.events import (
    EventPayload,
    InputEvent,
    LessonUpdated,
    Payload,
    SuppressionSet,
)
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord

OperationKind = Literal[
    "referenced", "target_retired", "found", "filed", "change_on_ci", "deploy_linked",
    "lesson_edited", "suppressed", "source_heard", "unverified", "reverified", "merged_away",
    "target_merged", "absorbed", "rehomed",
]  # fmt: skip


class _Operation(BaseModel):
    """Frozen: what the home decided does not change on its way to the owner."""

    model_config = ConfigDict(frozen=True)

    cause: str = ""
    """What decided it (an event's identity, a deadline's firing, an operation received), set
    when it is handed over: with its own fields, the identity under which the owner applies it
    once (``Engine.receive``), however often it is delivered."""


class Referenced(_Operation):
    """A relation named ``ci_id`` (as ``ref``) at ``at``: if the CI was never observed, it is a
    placeholder referenced since the earliest such naming (its phantom grace counts from then)."""

    kind: Literal["referenced"] = "referenced"
    ci_id: CIId
    ref: CIRef
    at: datetime

    @property
    def entity(self) -> str:
        """The entity the operation applies to: its owner applies it."""
        return self.ci_id


class TargetRetired(_Operation):
    """``ci_id``, which ``origin`` has an edge to, was retired (at ``at``; ``retired_at`` the
    latest retirement): the edge goes, and the origin is told its relation dangles."""

    kind: Literal["target_retired"] = "target_retired"
    origin: CIId
    ci_id: CIId
    at: datetime
    retired_at: datetime

    @property
    def entity(self) -> str:
        return self.origin


class Found(_Operation):
    """A finding about another owner's subject: its owner holds it back (a suppression) or
    records it in the subject's timeline and emits it. ``entity``: the subject's owning entity
    (``owners.owning_entity``: a lesson's subject for a lesson)."""

    kind: Literal["found"] = "found"
    entity: str
    finding: Finding


class Filed(_Operation):
    """A lesson applies to another owner's subject: its owner files it (numbering it in the
    subject's class of ids) or counts a recurrence."""

    kind: Literal["filed"] = "filed"
    filing: Filing

    @property
    def entity(self) -> str:
        return self.filing.subject


class ChangeOnCI(_Operation):
    """A change request names ``ci_id``: the change joins the CI's recent history (which an
    incident's correlation and later changes' risk read)."""

    kind: Literal["change_on_ci"] = "change_on_ci"
    ci_id: CIId
    change_id: str

    @property
    def entity(self) -> str:
        return self.ci_id


class DeployLinked(_Operation):
    """A deploy named its change (``entry.change_id``): the change's owner links them (the
    change is implementing, a rollback fails it, a first deploy uses up a merge's start)."""

    kind: Literal["deploy_linked"] = "deploy_linked"
    entry: DeployEntry

    @property
    def entity(self) -> str:
        return self.entry.change_id or ""


class LessonEdited(_Operation):
    """A person edited a lesson (``update``, at ``at``); ``subject``: the lesson's, whose owner
    numbered the lesson and keeps it (the edit arrives on the lesson id's partition)."""

    kind: Literal["lesson_edited"] = "lesson_edited"
    subject: str
    update: LessonUpdated
    at: datetime

    @property
    def entity(self) -> str:
        return self.subject


class Suppressed(_Operation):
    """A person held back findings about ``subject`` (the CI an alias named resolved to it)."""

    kind: Literal["suppressed"] = "suppressed"
    subject: str
    request: SuppressionSet

    @property
    def entity(self) -> str:
        return self.subject


class SourceHeard(_Operation):
    """A source that was silent, or whose silence fell due unticked, reported at ``at`` (its
    last report before: ``previous``): the owner of its name decides the silence, if it had
    not yet, and the recovery."""

    kind: Literal["source_heard"] = "source_heard"
    source: str
    at: datetime
    previous: datetime

    @property
    def entity(self) -> str:
        return self.source


class Unverified(_Operation):
    """Every source vouching for ``ci_id`` is silent: it is not judged stale meanwhile."""

    kind: Literal["unverified"] = "unverified"
    ci_id: CIId

    @property
    def entity(self) -> str:
        return self.ci_id


class Reverified(_Operation):
    """A source vouching for ``ci_id`` recovered (its report at ``since``): the CI is judged
    again, its staleness counted from then."""

    kind: Literal["reverified"] = "reverified"
    ci_id: CIId
    since: datetime

    @property
    def entity(self) -> str:
        return self.ci_id


class MergedAway(_Operation):
    """``ci_id`` was merged into ``into`` (at ``at``) by ``into``'s owner: ``ci_id``'s owner
    withdraws its record and outgoing edges (``into`` has them now)."""

    kind: Literal["merged_away"] = "merged_away"
    ci_id: CIId
    into: CIId
    at: datetime
    blind: bool = False
    """``into``'s owner did not hold ``ci_id``'s record when it merged (its view lagged): the
    owner sends it (``Absorbed``)."""

    @property
    def entity(self) -> str:
        return self.ci_id


class Absorbed(_Operation):
    """``ci_id``'s owner withdrew it, merged into ``into`` by an owner whose view did not hold
    it yet (``MergedAway.blind``): its record and outgoing edges, for ``into`` to take in."""

    kind: Literal["absorbed"] = "absorbed"
    ci_id: CIId
    into: CIId
    at: datetime
    record: CIRecord
    edges: dict[CIId, dict[str, dict[str, datetime]]]

    @property
    def entity(self) -> str:
        return self.into


class TargetMerged(_Operation):
    """``ci_id``, which ``origin`` has an edge to, was merged into ``into``: the edge moves."""

    kind: Literal["target_merged"] = "target_merged"
    origin: CIId
    ci_id: CIId
    into: CIId
    at: datetime

    @property
    def entity(self) -> str:
        return self.origin


PAYLOADS: dict[str, type[Payload]] = {kind.__name__: kind for kind in get_args(EventPayload)}
"""Each kind of event payload by its class's name (what ``Rehomed`` keeps it as)."""


class Rehomed(_Operation):
    """An event whose CI is held by ``entity``, another owner's (its id an alias, or a strong
    identifier it carries held by another CI): that owner judges it whole, as its home, as a
    repartition topic keyed by the owning CI would deliver it. Its payload is kept as the
    fields it carried, so a partial update reads back as partial."""

    kind: Literal["rehomed"] = "rehomed"
    entity: str
    source: str
    id: str
    type: str
    time: datetime
    extensions: dict[str, Any]
    time_inferred: bool
    payload_type: str
    payload: dict[str, Any]
    hops: int = 0
    """Owners it was sent on by before: one whose view did not see the event land on a CI it
    owns (the sender's view was older) sends it on to where it lands, strong identifiers no
    longer followed (a later sighting merges, once the views agree)."""

    @classmethod
    def of(cls, event: InputEvent, entity: str) -> "Rehomed":
        return cls(
            entity=entity, source=event.source, id=event.id, type=event.type, time=event.time,
            extensions=event.extensions, time_inferred=event.time_inferred,
            payload_type=type(event.payload).__name__,
            payload=event.payload.model_dump(mode="json", exclude_unset=True),
        )  # fmt: skip

    def event(self) -> InputEvent:
        payload = cast(EventPayload, PAYLOADS[self.payload_type].model_validate(self.payload))
        return InputEvent(
            source=self.source, id=self.id, type=self.type, time=self.time, payload=payload,
            extensions=self.extensions, time_inferred=self.time_inferred,
        )  # fmt: skip


Operation = Annotated[
    Referenced | TargetRetired | Found | Filed | ChangeOnCI | DeployLinked | LessonEdited
    | Suppressed | SourceHeard | Unverified | Reverified | MergedAway | TargetMerged | Absorbed
    | Rehomed,
    Field(discriminator="kind"),
]  # fmt: skip
OPERATION: TypeAdapter[Operation] = TypeAdapter(Operation)
"""Reads an operation back from its JSON, whatever its kind."""
