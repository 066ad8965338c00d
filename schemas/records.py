"""The worker's record of one CI: what it knows of it, merged over every source."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.ids import CIId


@dataclass(slots=True)
class CIRecord:
    """A CI in the CMDB graph; ``seen_by`` holds each source's latest observation time."""

    id: CIId
    type: str
    name: str
    environment: str | None
    owner: str | None = None
    criticality: int | None = None
    business_service: str | None = None
    version: str | None = None
    identifiers: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    aliases: frozenset[CIId] = frozenset()
    """Ids merged into this CI (immutable: the empty one is shared by every record)."""
    reported: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Attribute -> source -> the value that source last gave (owner, criticality, ...)."""
    seen_by: dict[str, datetime] = field(default_factory=dict)
    first_seen: datetime | None = None
    """The earliest observation time any source reported (None for a placeholder)."""
    referenced_at: datetime | None = None
    """When a relation first named this CI before any source observed it (a placeholder)."""
    recounted_from: datetime | None = None
    """When a silent source that vouched for the CI recovered: staleness counts from then."""
    stale: bool = False
    flags: frozenset[str] = frozenset()
    """Findings currently raised on this CI (``no_owner``, ``orphan``), so each is raised once;
    immutable, so the many records without a flag share the empty one (``add_flag``)."""

    def add_flag(self, flag: str) -> None:
        if flag not in self.flags:
            self.flags = self.flags | {flag}

    def discard_flag(self, flag: str) -> None:
        if flag in self.flags:
            self.flags = self.flags - {flag}

    @property
    def last_seen(self) -> datetime | None:
        return max(self.seen_by.values()) if self.seen_by else None

    @property
    def staleness_counted_from(self) -> datetime | None:
        """The last sighting, or a later recovery of the source that vouched for the CI."""
        last_seen = self.last_seen
        if last_seen is None or self.recounted_from is None:
            return last_seen
        return max(last_seen, self.recounted_from)


class SourceHealth(BaseModel):
    """A discovery source: when it last reported, and whether it is silent now.

    Written when the source falls silent or recovers; its last report then is the latest of its
    ``SourceReport`` partials, which every report updates.
    """

    source: str
    last_report: datetime
    silent: bool = False


class SourceReport(BaseModel):
    """A discovery source's latest report among the events of one owner partition: each owner
    writes only its own, and the source's last report is the latest of them."""

    source: str
    owner: int
    last_report: datetime

    @property
    def key(self) -> str:
        """``<owner>/<source>``: the partition first, so any source name reads back unchanged."""
        return f"{self.owner}/{self.source}"


class Suppression(BaseModel):
    """The findings held back about one subject: kind -> until when, and the last one held."""

    subject: str
    until: dict[str, datetime] = {}
    held: dict[str, Finding] = {}
    """Per kind, the latest finding held back: reported at expiry if its condition still holds."""
    reason: str | None = None
    by: str | None = None
