"""What the worker said about a subject over time, and when dependency edges came and went.

``SubjectHistory`` is a subject's timeline of findings (a change's assessments are its
``change_assessed`` findings); ``ChangedEdges`` holds the validity intervals of one CI's
outgoing edges that changed. Both are bounded by the policy's ``history`` section and kept in
the state changelog. (Not ``CIHistory``: that is the correlation history of changes, deploys
and incidents on a CI.)
"""

from datetime import datetime

from pydantic import BaseModel, Field

from cmdb_worker.schemas.findings import Finding

Interval = tuple[datetime | None, datetime | None]
"""When an edge appeared (None: with its origin's first sighting) and disappeared (None: not)."""


class TimelineEntry(BaseModel):
    """One finding about the subject; ``suppressed`` when a suppression held it back."""

    finding: Finding
    suppressed: bool = False


class SubjectHistory(BaseModel):
    """Every finding about one subject (CI id, change id, source...), oldest first."""

    subject: str
    entries: list[TimelineEntry] = Field(default_factory=list)


class ChangedEdges(BaseModel):
    """The outgoing edges of ``origin`` that appeared or disappeared within the retention, each
    with its validity intervals by event time, oldest first. An edge listed nowhere has been
    there since its origin's first sighting."""

    origin: str
    targets: dict[str, list[Interval]] = Field(default_factory=dict)
