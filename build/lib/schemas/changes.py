"""Change governance records: changes and their assessments, deploys, incidents, per-CI history.

Each record is a self-contained pydantic model keyed by its own id, so the state changelog can
write it with ``model_dump(mode="json")`` and rebuild it with ``model_validate``.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from schemas.events import ChangeRequested
from schemas.findings import Reason

Level = Literal["low", "medium", "high", "critical"]
LEVELS: tuple[Level, ...] = ("low", "medium", "high", "critical")
Route = Literal["fast_track", "cab"]
Outcome = Literal["success", "failure"]
DeployPredicate = Literal["deployed", "upgraded", "rolledback", "removed"]


class Dependent(BaseModel):
    """A CI in a change's blast radius, ``hops`` dependency edges away from the change's CIs."""

    id: str
    hops: int
    criticality: int | None = None


class Assessment(BaseModel):
    """One risk assessment of a change; ``revision`` counts the assessments of that change."""

    revision: int
    assessed_at: datetime
    score: int
    level: Level
    route: Route
    blast_radius: int
    reasons: list[Reason]
    cis: list[str]
    unknown_cis: list[str] = Field(default_factory=list)
    top_dependents: list[Dependent] = Field(default_factory=list)
    missing_rollback: bool = False
    """High or critical with no rollback plan: what ``change_missing_rollback`` reports."""


class ChangeRecord(BaseModel):
    """A change as the worker knows it: the request's current fields and what happened since."""

    request: ChangeRequested
    requested_at: datetime
    updated_at: datetime
    implemented_at: datetime | None = None
    """When it was first implemented: an implementing/done state, or a linked deploy."""
    deploys: list[str] = Field(default_factory=list)
    """Ids of the deploy events linked to the change."""
    deployed_services: list[str] = Field(default_factory=list)
    outcome: Outcome | None = None
    assessment: Assessment | None = None

    @property
    def id(self) -> str:
        return self.request.change_id

    @property
    def revision(self) -> int:
        return self.assessment.revision if self.assessment else 0


class DeployEntry(BaseModel):
    """One pipeline event on a service, as the service's history keeps it."""

    event_id: str
    at: datetime
    predicate: DeployPredicate
    service: str
    artifact_id: str | None = None
    change_id: str | None = None
    authorized: bool = True


class IncidentEntry(BaseModel):
    incident_id: str
    at: datetime


class CIHistory(BaseModel):
    """What recently happened on one CI, oldest first; each list is bounded by the policy."""

    ci_id: str
    changes: list[str] = Field(default_factory=list)
    deploys: list[DeployEntry] = Field(default_factory=list)
    incidents: list[IncidentEntry] = Field(default_factory=list)

    def keep_last(self, limit: int) -> None:
        """Drop the oldest entries beyond ``limit`` from each list."""
        for entries in (self.changes, self.deploys, self.incidents):
            del entries[:-limit]


class Suspect(BaseModel):
    """A change or deploy that may have caused an incident, with the reasons it is suspected."""

    kind: Literal["change", "deploy"]
    id: str
    ci: str
    hops: int
    """0 on the incident's own CI, N when N dependency edges upstream of it."""
    at: datetime
    change_id: str | None = None
    failed: bool = False
    no_rollback_plan: bool = False
    unauthorized: bool = False
    score: int = 0
    minutes_before: int = 0
    why: list[str] = Field(default_factory=list)


class IncidentRecord(BaseModel):
    incident_id: str
    ci: str | None
    detected_at: datetime
    event_id: str
    description: str | None = None
    suspects: list[Suspect] = Field(default_factory=list)
    resolved_at: datetime | None = None


class ChangeOutcomes(BaseModel):
    """How many finished changes succeeded or failed, for one service or one owner team."""

    key: str
    succeeded: int = 0
    failed: int = 0

    def count(self, outcome: Outcome, delta: int) -> None:
        if outcome == "success":
            self.succeeded += delta
        else:
            self.failed += delta
