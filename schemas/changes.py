"""Change governance records: changes and their assessments, deploys, incidents, per-CI history.

Each record is a self-contained pydantic model keyed by its own id, so the state changelog can
write it with ``model_dump(mode="json")`` and rebuild it with ``model_validate``.
"""

import bisect
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, model_validator

from cmdb_worker.schemas.events import ChangeRequested, ChangeState, ChangeType
from cmdb_worker.schemas.findings import Reason

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
    blast_radius_bounded: bool = False
    """True when counting stopped at ``graph.blast_radius_limit``: the radius is at least
    ``blast_radius`` CIs (the nearest rings, whole)."""
    reasons: list[Reason]
    cis: list[str]
    unknown_cis: list[str] = Field(default_factory=list)
    top_dependents: list[Dependent] = Field(default_factory=list)
    missing_rollback: bool = False
    """High or critical with no rollback plan: what ``change_missing_rollback`` reports."""
    preapproved: bool = False
    """A low-risk standard change from a listed template: deploys need no approval event."""
    conflicts: list[str] = Field(default_factory=list)
    """Open changes requested earlier whose window overlaps this one's on related CIs."""


class ChangeVersion(BaseModel):
    """How a change stood from ``since`` (event time) on: what a deploy is judged against."""

    since: datetime
    state: ChangeState
    type: ChangeType
    cis: list[str]
    """The CI ids as the change names them (the worker resolves aliases when judging)."""
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    preapproved: bool = False

    @classmethod
    def of(cls, request: ChangeRequested, since: datetime, preapproved: bool) -> "ChangeVersion":
        return cls(
            since=since, state=request.state, type=request.type,
            cis=[ref.ci_id for ref in request.cis], planned_start=request.planned_start,
            planned_end=request.planned_end, preapproved=preapproved,
        )  # fmt: skip


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
    versions: list[ChangeVersion] = Field(default_factory=list)
    """The change as it stood over time, oldest first; a new one only when a field that
    authorises deploys changed."""

    @model_validator(mode="after")
    def _first_version(self) -> "ChangeRecord":
        if not self.versions:
            self.versions = [ChangeVersion.of(self.request, self.requested_at, self.preapproved)]
        return self

    @property
    def id(self) -> str:
        return self.request.change_id

    @property
    def revision(self) -> int:
        return self.assessment.revision if self.assessment else 0

    @property
    def preapproved(self) -> bool:
        return self.assessment is not None and self.assessment.preapproved

    def as_of(self, at: datetime) -> ChangeVersion:
        """The version in force at ``at``; the first one if the change is younger than that."""
        index = bisect.bisect_right([version.since for version in self.versions], at)
        return self.versions[max(index - 1, 0)]

    def record_version(self, since: datetime) -> None:
        """Keep the change's current terms as a version from ``since``, if they differ."""
        version = ChangeVersion.of(self.request, since, self.preapproved)
        if _same_terms(self.as_of(since), version):
            return
        index = bisect.bisect_right([known.since for known in self.versions], version.since)
        self.versions.insert(index, version)


def _same_terms(known: ChangeVersion, new: ChangeVersion) -> bool:
    return known.model_dump(exclude={"since"}) == new.model_dump(exclude={"since"})


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


class TeamPartial(BaseModel):
    """A team's figures among the events or changes of one owner partition: each owner writes
    only its own, and the team's figures are their sum (``worker.engine.teams``)."""

    team: str
    owner: int = 0
    """The owner partition (0 in a changelog written before owners)."""

    @property
    def key(self) -> str:
        """``<owner>/<team>``: the partition first, so any team name reads back unchanged."""
        return f"{self.owner}/{self.team}"


class TeamHistory(TeamPartial):
    """An owner team's finished changes within the policy's window, among the changes of one
    owner partition: change id -> (when, how). The team's history is the union (``plus``)."""

    finished: dict[str, tuple[datetime, Outcome]] = Field(default_factory=dict)

    def record(self, change_id: str, at: datetime, outcome: Outcome, window: timedelta) -> None:
        self.finished[change_id] = (at, outcome)
        horizon = max(moment for moment, _ in self.finished.values()) - window
        self.finished = {key: entry for key, entry in self.finished.items() if entry[0] >= horizon}

    def plus(self, other: "TeamHistory") -> "TeamHistory":
        """Both histories (of one team), as one owner's."""
        finished = self.finished | other.finished
        return TeamHistory(team=self.team, owner=self.owner, finished=finished)

    def failure_rate(self, since: datetime) -> tuple[int, int]:
        """(failed, finished) among the changes finished from ``since`` on."""
        outcomes = [outcome for at, outcome in self.finished.values() if at >= since]
        return outcomes.count("failure"), len(outcomes)


class ChangeOutcomes(TeamPartial):
    """How many of one owner team's finished changes succeeded or failed, among the changes of
    one owner partition; the team's counts are the sum (``plus``)."""

    team: str = Field(validation_alias=AliasChoices("team", "key"))
    """The owner team (``key`` in a changelog written before owners)."""
    succeeded: int = 0
    failed: int = 0

    def count(self, outcome: Outcome, delta: int) -> None:
        if outcome == "success":
            self.succeeded += delta
        else:
            self.failed += delta

    def plus(self, other: "ChangeOutcomes") -> "ChangeOutcomes":
        """Both counts (of one team), as one owner's."""
        succeeded, failed = self.succeeded + other.succeeded, self.failed + other.failed
        return ChangeOutcomes(team=self.team, owner=self.owner, succeeded=succeeded, failed=failed)
