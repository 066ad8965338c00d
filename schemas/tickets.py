"""CDEvents ``ticket.created`` / ``ticket.updated`` / ``ticket.closed`` (spec 0.5, event version
0.2.0): what the worker sends a tracker bridge for each lesson.

The model is as strict as the spec's JSON schema: no keys beyond the spec's in ``context``,
``subject`` and ``content``, and each predicate's required content (created: summary, creator,
uri; updated: uri; closed: uri, resolution). The lesson itself travels whole in ``customData``.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TicketPredicate = Literal["created", "updated", "closed"]
TICKET_SPEC_VERSION = "0.5.0"
TICKET_EVENT_VERSION = "0.2.0"
TICKET_TYPE_PATTERN = r"^dev\.cdevents\.ticket\.(created|updated|closed)\.0\.\d+\.\d+$"
REQUIRED_CONTENT: dict[str, tuple[str, ...]] = {
    "created": ("summary", "creator", "uri"),
    "updated": ("uri",),
    "closed": ("uri", "resolution"),
}
"""What the spec's schema of each ticket event requires in ``subject.content``."""
Strict = ConfigDict(extra="forbid")
NonEmpty = Field(min_length=1)


class TicketContent(BaseModel):
    model_config = Strict

    summary: str | None = None
    ticketType: str | None = None
    group: str | None = None
    creator: str | None = Field(default=None, min_length=1)
    assignees: list[str] | None = None
    priority: str | None = None
    labels: list[str] | None = None
    milestone: str | None = None
    uri: str = NonEmpty
    resolution: str | None = Field(default=None, min_length=1)
    updatedBy: str | None = None


class TicketSubject(BaseModel):
    model_config = Strict

    id: str = NonEmpty
    source: str | None = Field(default=None, min_length=1)
    type: Literal["ticket"] | None = None
    content: TicketContent


class TicketContext(BaseModel):
    model_config = Strict

    specversion: str = NonEmpty
    id: str = NonEmpty
    source: str = NonEmpty
    type: str = Field(pattern=TICKET_TYPE_PATTERN)
    timestamp: datetime
    schemaUri: str | None = None
    chainId: str | None = None
    links: list[dict[str, Any]] | None = None


class TicketEvent(BaseModel):
    """One CDEvents ticket event, as the spec's schema allows it."""

    model_config = Strict

    context: TicketContext
    subject: TicketSubject
    customData: dict[str, Any] | str | None = None
    customDataContentType: str | None = None

    @property
    def predicate(self) -> str:
        return self.context.type.split(".")[3]

    @model_validator(mode="after")
    def _required_content(self) -> "TicketEvent":
        given = self.subject.content.model_dump(exclude_none=True)
        missing = [name for name in REQUIRED_CONTENT[self.predicate] if name not in given]
        if missing:
            raise ValueError(f"ticket.{self.predicate} needs subject.content {missing}")
        return self
