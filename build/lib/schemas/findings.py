"""Findings: what the worker concludes, emitted as CloudEvents of type ``cmdb.finding.<kind>``."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["info", "warning", "critical"]
FINDING_SOURCE = "/cmdb-worker"
TRACE_CONTEXT = ("traceparent", "tracestate")
"""The CloudEvents distributed-tracing extension attributes a finding inherits from its cause."""


class Reason(BaseModel):
    """One visible step of a rule's reasoning; ``points`` only where a score is being built."""

    model_config = ConfigDict(frozen=True)

    code: str
    detail: str
    points: int | None = None


class FindingData(BaseModel):
    """The finding itself; kinds add their own details beside these fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str
    subject: str
    severity: Severity
    detected_at: datetime
    reasons: list[Reason] = Field(default_factory=list)


class Finding(BaseModel):
    """A structured-mode CloudEvent carrying one finding, with a deterministic ``id``."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = FINDING_SOURCE
    type: str
    time: datetime
    subject: str
    datacontenttype: Literal["application/json"] = "application/json"
    data: FindingData
    traceparent: str | None = Field(default=None, exclude_if=lambda value: value is None)
    """W3C trace context of the input event that caused the finding (CloudEvents extension)."""
    tracestate: str | None = Field(default=None, exclude_if=lambda value: value is None)

    @property
    def kind(self) -> str:
        return self.data.kind

    def details(self) -> dict[str, Any]:
        return self.data.model_extra or {}

    def traced(self, extensions: dict[str, Any]) -> "Finding":
        """This finding carrying the cause's ``traceparent``/``tracestate``, when it had them."""
        trace = {name: str(extensions[name]) for name in TRACE_CONTEXT if name in extensions}
        return self.model_copy(update=trace) if trace else self
