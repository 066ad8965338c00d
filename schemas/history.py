"""What the worker said about a subject over time, and when dependency edges came and went.

``SubjectHistory`` is a subject's timeline of findings (a change's assessments are its
``change_assessed`` findings); ``ChangedEdges`` holds the validity intervals of one CI's
outgoing edges that changed. Both are bounded by the policy's ``history`` section and kept in
the state changelog. (Not ``CIHistory``: that is the correlation history of changes, deploys
and incidents on a CI.)
"""

from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel, Field

Interval = tuple[datetime | None, datetime | None]
"""When an edge appeared (None: with its origin's first sighting) and disappeared (None: not)."""


class TimelineEntry(NamedTuple):
    """One finding about the subject, kept compact (a few hundred bytes, not the ~3 KB of the
    model): its time, whether a suppression held it back, and the finding's CloudEvent JSON."""

    time: datetime
    suppressed: bool
    finding: str


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
