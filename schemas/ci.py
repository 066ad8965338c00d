"""Configuration items as events describe them: references, observed CIs and relations."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from cmdb_worker.schemas.ids import CIId

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def make_ci_id(ci_type: str, name: str, environment: str | None) -> CIId:
    """The contract's CI id: ``<type>/<name>`` or ``<type>/<name>@<environment>``."""
    base = f"{ci_type}/{name}"
    return CIId(f"{base}@{environment}" if environment else base)


class CIRef(BaseModel):
    """A reference to a CI: type and name, optionally an environment."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: NonBlank
    name: NonBlank
    environment: NonBlank | None = None

    @field_validator("type", "environment")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @property
    def ci_id(self) -> CIId:
        return make_ci_id(self.type, self.name, self.environment)


class ObservedCI(CIRef):
    """A CI as a discovery source saw it, with whatever it knows of ownership and identity."""

    owner: NonBlank | None = None
    criticality: Annotated[int, Field(ge=1, le=4, strict=True)] | None = None
    business_service: str | None = None
    identifiers: dict[str, Annotated[str, Field(strict=True)]] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)


class Relation(BaseModel):
    """A typed, directed edge from the CI that reports it to a target CI."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: NonBlank
    target: CIRef
