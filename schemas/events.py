"""The input events of the contract, each as the payload model of one event kind."""

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cmdb_worker.schemas.ci import CIRef, NonBlank, ObservedCI, Relation
from cmdb_worker.schemas.envelope import Timestamp
from cmdb_worker.schemas.findings import FindingKind
from cmdb_worker.schemas.ids import EventIdentity

ChangeType = Literal["standard", "normal", "emergency"]
ChangeState = Literal[
    "requested",
    "approved",
    "rejected",
    "implementing",
    "completed",
    "failed",
    "rolled_back",
    "cancelled",
]
LessonStatus = Literal["Open", "In Progress", "Done", "Won't Do"]
StrictBool = Annotated[bool, Field(strict=True)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CIObserved(Payload):
    """``cmdb.ci.observed``: a discovery source saw a CI (and, maybe, all its relations)."""

    ci: ObservedCI
    relations: list[Relation] = Field(default_factory=list)
    relations_complete: StrictBool = False


class CIRetired(Payload):
    """``cmdb.ci.retired``: the CI is gone for good."""

    ci: CIRef
    reason: str | None = None


class ScanScope(Payload):
    types: list[NonBlank] | None = None
    environment: NonBlank | None = None

    @field_validator("types")
    @classmethod
    def _lower_types(cls, value: list[str] | None) -> list[str] | None:
        return [t.lower() for t in value] if value is not None else None

    @field_validator("environment")
    @classmethod
    def _lower_environment(cls, value: str | None) -> str | None:
        return value.lower() if value else value


class ScanCompleted(Payload):
    """``cmdb.scan.completed``: a source finished a scan of ``scope`` begun at ``started_at``."""

    scope: ScanScope = Field(default_factory=ScanScope)
    started_at: Timestamp


class ChangeFields(Payload):
    """The fields of a change request that can be set or updated."""

    type: ChangeType | None = None
    template: NonBlank | None = None
    """The standard-change template a ``standard`` change was raised from."""
    title: str | None = None
    cis: list[CIRef] | None = None
    owner: str | None = None
    requested_by: str | None = None
    planned_start: Timestamp | None = None
    planned_end: Timestamp | None = None
    rollback_plan: str | None = None
    rollback_automated: StrictBool | None = None
    canary: StrictBool | None = None
    db_migration: StrictBool | None = None
    state: ChangeState | None = None


class ChangeRequested(ChangeFields):
    """``itsm.change.requested``: a new change request."""

    change_id: NonBlank
    type: ChangeType = "normal"
    cis: list[CIRef] = Field(default_factory=list)
    state: ChangeState = "requested"


class ChangeUpdated(ChangeFields):
    """``itsm.change.updated``: only the fields that changed, beside the change id."""

    change_id: NonBlank


class LessonUpdated(Payload):
    """``cmdb.lesson.updated``: a person changed a lesson's status, owner or due date."""

    lesson_id: NonBlank
    status: LessonStatus | None = None
    owner: NonBlank | None = None
    due: date | None = None


class SuppressionSet(Payload):
    """``cmdb.suppression.set``: hold back findings of ``kinds`` about ``subject`` until then."""

    subject: NonBlank
    """A CI id, change id or discovery source, as findings name their subject."""
    kinds: Annotated[list[FindingKind], Field(min_length=1)]
    until: Timestamp
    reason: str | None = None
    by: str | None = None


class Deploy(Payload):
    """A CDEvent ``service.deployed/upgraded/rolledback/removed``, reduced to what governs it."""

    predicate: Literal["deployed", "upgraded", "rolledback", "removed"]
    service: CIRef
    artifact_id: str | None = None
    change_id: str | None = None
    depends_on: list[CIRef] = Field(default_factory=list)
    owner: str | None = None
    criticality: Annotated[int, Field(ge=1, le=4, strict=True)] | None = None


class Incident(Payload):
    """A CDEvent ``incident.detected/reported/resolved``."""

    predicate: Literal["detected", "reported", "resolved"]
    incident_id: NonBlank
    service: CIRef | None = None
    description: str | None = None


class Ignored(Payload):
    """A well-formed CDEvent of a type the worker has no use for (accepted, no effect)."""

    cdevent_type: str


EventPayload = (
    CIObserved
    | CIRetired
    | ScanCompleted
    | ChangeRequested
    | ChangeUpdated
    | LessonUpdated
    | SuppressionSet
    | Deploy
    | Incident
    | Ignored
)


@dataclass(frozen=True, slots=True)
class InputEvent:
    """A decoded, validated input event: who sent it, when, and its typed payload."""

    source: str
    id: str
    type: str
    time: datetime
    payload: EventPayload
    extensions: dict[str, Any] = field(default_factory=dict)
    """CloudEvents extension attributes as sent (``traceparent``, ``tracestate``, ...)."""
    time_inferred: bool = False
    """The event carried no ``time``: ``time`` is the fallback the decoder was given."""

    @property
    def identity(self) -> EventIdentity:
        return (self.source, self.id, self.type)


def payload_fields(model: BaseModel) -> dict[str, Any]:
    """The fields an event actually carried (for partial updates)."""
    return {name: getattr(model, name) for name in model.model_fields_set}
