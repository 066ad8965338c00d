"""The policy: every threshold and weight the rules use, validated once at load."""

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rules.durations import Duration

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
PositiveInt = Annotated[int, Field(gt=0, strict=True)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Staleness(Section):
    default: Duration = timedelta(days=7)
    by_type: dict[str, Duration] = Field(default_factory=dict)
    lesson_grace_factor: Annotated[float, Field(gt=0)] = 3.0

    @field_validator("by_type")
    @classmethod
    def _lower_types(cls, value: dict[str, timedelta]) -> dict[str, timedelta]:
        return {ci_type.lower(): age for ci_type, age in value.items()}

    def max_age(self, ci_type: str) -> timedelta:
        return self.by_type.get(ci_type, self.default)


class Identification(Section):
    strong_identifiers: list[str] = ["serial_number", "k8s_uid", "fqdn", "cloud_resource_id"]


class Governance(Section):
    governed_environments: list[str] = ["prod", "production"]

    def governs(self, environment: str | None) -> bool:
        return environment is not None and environment.lower() in self.governed_environments


class Hygiene(Section):
    relations_expected_for: list[str] = ["service", "database"]
    orphan_grace: Duration = timedelta(hours=1)


class Graph(Section):
    blast_radius_depth: PositiveInt = 10


class Idempotence(Section):
    remember_events_for: Duration = timedelta(days=7)


class Policy(Section):
    """The whole policy; each section has defaults, so a file need only say what it changes."""

    staleness: Staleness = Staleness()
    identification: Identification = Identification()
    governance: Governance = Governance()
    hygiene: Hygiene = Hygiene()
    graph: Graph = Graph()
    idempotence: Idempotence = Idempotence()


class PolicyError(ValueError):
    """A policy file that can't be used; the message names the file and the key."""


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file (the packaged default when ``path`` is None)."""
    source = path or DEFAULT_POLICY_PATH
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError(f"policy {source}: cannot be read: {error}") from None
    return parse_policy(document if document is not None else {}, str(source))


def parse_policy(document: Any, origin: str = "policy") -> Policy:
    try:
        return Policy.model_validate(document)
    except ValidationError as error:
        raise PolicyError(_describe(error, origin)) from None


def _describe(error: ValidationError, origin: str) -> str:
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
        for item in error.errors(include_url=False)
    ]
    return f"policy {origin}: " + "; ".join(problems)
