"""The envelopes every input message comes in: CloudEvents 1.0 and CDEvents (0.4 and 0.5+)."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from cmdb_worker.schemas.ci import NonBlank

CDEVENT_TYPE = re.compile(
    r"^dev\.cdevents\.(?P<subject>[A-Za-z]+)\.(?P<predicate>[A-Za-z]+)\.[0-9].*$"
)


def _require_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "time must be an RFC 3339 string")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_require_text)]
"""An RFC 3339 time with an offset; numbers are refused rather than read as epoch seconds."""


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event; in binary mode its attributes come from ``ce_`` headers.

    ``time`` is optional, as the spec says (the decoder falls back to a time it is given);
    attributes beyond the spec's own are extension attributes, kept in ``extensions``.
    """

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: NonBlank
    source: NonBlank
    type: NonBlank
    time: Timestamp | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    subject: str | None = None
    data: dict[str, Any]

    @property
    def extensions(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CDEventContext(BaseModel):
    """The ``context`` of a CDEvent: ``version`` up to 0.4, ``specversion`` from 0.5 on."""

    model_config = ConfigDict(extra="allow")

    id: NonBlank
    source: NonBlank
    type: Annotated[str, Field(pattern=CDEVENT_TYPE.pattern)]
    timestamp: Timestamp
    version: str | None = None
    specversion: str | None = None

    @model_validator(mode="after")
    def _has_spec_version(self) -> "CDEventContext":
        if self.version is None and self.specversion is None:
            raise ValueError("context needs 'specversion' (0.5+) or 'version' (0.4)")
        return self

    @property
    def subject_and_predicate(self) -> str:
        match = CDEVENT_TYPE.match(self.type)
        assert match is not None  # guaranteed by the field pattern
        return f"{match['subject'].lower()}.{match['predicate'].lower()}"


class CDEventSubject(BaseModel):
    """The ``subject`` of a CDEvent; ``content`` varies with the event type."""

    model_config = ConfigDict(extra="allow")

    id: NonBlank
    source: str | None = None
    type: str | None = None
    content: dict[str, Any] = Field(default_factory=dict)


class CDEvent(BaseModel):
    """A CDEvent, bare or as the data of a CloudEvent."""

    model_config = ConfigDict(extra="allow")

    context: CDEventContext
    subject: CDEventSubject
    customData: Any = None

    @property
    def time(self) -> datetime:
        return self.context.timestamp
