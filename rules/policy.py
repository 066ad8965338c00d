"""The policy: every threshold and weight the rules use, validated once at load.

A policy file overlays the packaged ``policy.yaml``: it states only what it changes.
"""

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cmdb_worker.rules.durations import Duration, Slack
from cmdb_worker.schemas.changes import Level
from cmdb_worker.schemas.ci import NonBlank
from cmdb_worker.schemas.events import ChangeType
from cmdb_worker.schemas.lessons import Impact

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
PositiveInt = Annotated[int, Field(gt=0, strict=True)]
Points = Annotated[int, Field(ge=0, le=100, strict=True)]
Criticality = Annotated[int, Field(ge=1, le=4, strict=True)]


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


PRECEDENCE_ATTRIBUTES = ("owner", "criticality", "business_service", "version", "*")


class Identification(Section):
    strong_identifiers: list[str] = ["serial_number", "k8s_uid", "fqdn", "cloud_resource_id"]
    precedence: dict[str, list[NonBlank]] = Field(default_factory=dict)
    """Attribute (or ``*`` for any other) -> sources, most trusted first."""

    @field_validator("precedence")
    @classmethod
    def _known_attributes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(PRECEDENCE_ATTRIBUTES))
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; use {list(PRECEDENCE_ATTRIBUTES)}")
        return value

    def ranking(self, attribute: str) -> list[str] | None:
        """The sources of ``attribute`` most trusted first; None when the latest report wins."""
        return self.precedence.get(attribute, self.precedence.get("*"))


class FreezeWindow(Section):
    """A period in which changes stop: deploys need an emergency change, changes go to CAB."""

    name: NonBlank
    start: AwareDatetime
    end: AwareDatetime
    environments: list[str] | None = None
    """The environments it freezes; None means every governed environment."""

    @field_validator("environments")
    @classmethod
    def _lower_environments(cls, value: list[str] | None) -> list[str] | None:
        return [environment.lower() for environment in value] if value is not None else None

    @model_validator(mode="after")
    def _ends_after_start(self) -> "FreezeWindow":
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start")
        return self


def _template_entry(value: Any) -> Any:
    """A template is listed by its name, or as ``{name, description}``."""
    return {"name": value} if isinstance(value, str) else value


class StandardTemplate(Section):
    """An approved standard-change template: low-risk changes from it need no CAB."""

    name: NonBlank
    description: str | None = None


class Governance(Section):
    governed_environments: list[str] = ["prod", "production"]
    window_slack: Slack = timedelta(hours=1)
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    standard_templates: list[Annotated[StandardTemplate, BeforeValidator(_template_entry)]] = Field(
        default_factory=list
    )

    def governs(self, environment: str | None) -> bool:
        return environment is not None and environment.lower() in self.governed_environments

    def lists_template(self, name: str | None) -> bool:
        return any(template.name == name for template in self.standard_templates)

    def freezes_of(self, environment: str | None) -> list[FreezeWindow]:
        """The freeze windows that apply to ``environment`` (governed ones by default)."""
        return [
            freeze for freeze in self.freeze_windows
            if environment is not None and environment.lower() in (
                freeze.environments if freeze.environments is not None
                else self.governed_environments
            )
        ]  # fmt: skip


class Hygiene(Section):
    relations_expected_for: list[str] = ["service", "database"]
    orphan_grace: Duration = timedelta(hours=1)
    phantom_grace: Duration = timedelta(days=1)


class Sources(Section):
    """Discovery source health: a source that sends nothing for this long is silent."""

    silence_after: Duration = timedelta(hours=6)
    by_source: dict[str, Duration] = Field(default_factory=dict)
    owners: dict[str, NonBlank] = Field(default_factory=dict)
    """Who owns each source (its ``source_silent`` lessons); else the rule's fallback owner."""

    def silence_for(self, source: str) -> timedelta:
        return self.by_source.get(source, self.silence_after)


class Graph(Section):
    blast_radius_depth: PositiveInt = 10
    blast_radius_limit: PositiveInt = 10_000


class History(Section):
    """What ``/api/.../history`` and ``/impact?at=`` can answer, and so what the state keeps."""

    retention: Duration = timedelta(days=30)
    """Findings about a subject are kept this long (by event time) ..."""
    max_entries_per_subject: PositiveInt = 200
    """... and at most this many per subject, the oldest dropped first."""
    edge_retention: Duration = timedelta(days=30)
    """Dependency edges that appeared or disappeared are remembered this long (event time)."""


class Idempotence(Section):
    remember_events_for: Duration = timedelta(days=7)


class RiskWeights(Section):
    """Points each reason code adds to a change's risk score (the sum is capped at 100)."""

    no_rollback_plan: Points = 30
    rollback_manual: Points = 10
    db_migration: Points = 20
    no_canary: Points = 10
    emergency: Points = 15
    critical_ci: Points = 15
    large_blast_radius: Points = 15
    stale_ci_in_scope: Points = 10
    recent_failures: Points = 15
    unknown_ci: Points = 10
    in_freeze_window: Points = 30
    conflicting_change: Points = 15
    stale_dependents: Points = 10
    team_failure_rate: Points = 15


class RiskLevels(Section):
    """The lowest score of each level above ``low``."""

    medium: Points = 25
    high: Points = 50
    critical: Points = 75

    @model_validator(mode="after")
    def _rising(self) -> "RiskLevels":
        if not 0 < self.medium < self.high < self.critical:
            raise ValueError("levels must rise: 0 < medium < high < critical")
        return self


class Risk(Section):
    weights: RiskWeights = RiskWeights()
    levels: RiskLevels = RiskLevels()
    fast_track_max_level: Level = "low"
    cab_types: list[ChangeType] = ["emergency"]
    critical_criticality: Criticality = 1
    large_blast_radius: PositiveInt = 10
    recent_failures_window: Duration = timedelta(days=30)
    top_dependents: PositiveInt = 10
    team_history_window: Duration = timedelta(days=90)
    team_history_min_changes: PositiveInt = 5
    team_failure_rate_threshold: Annotated[float, Field(ge=0, le=1)] = 0.2


class CorrelationWeights(Section):
    """How a suspect's likelihood is built; the suspects are ranked by the sum."""

    same_ci: Points = 40
    hop_penalty: Points = 10
    recency: Points = 30
    failed: Points = 25
    no_rollback_plan: Points = 15
    unauthorized: Points = 15


class Correlation(Section):
    lookback: Duration = timedelta(hours=24)
    max_hops: PositiveInt = 3
    max_suspects: PositiveInt = 10
    history_per_ci: PositiveInt = 50
    weights: CorrelationWeights = CorrelationWeights()


def _check_template(text: str) -> str:
    try:
        text.format(subject="", detail="")
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"only {{subject}} and {{detail}} may be filled in ({error!r})") from None
    return text


class LessonText(Section):
    """What a rule's lessons say; ``{subject}`` and ``{detail}`` are filled in when filed."""

    impact: Impact
    fallback_owner: NonBlank
    title: NonBlank
    description: NonBlank
    action: NonBlank

    @field_validator("title", "description", "action")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return _check_template(value)


class LessonRules(Section):
    rollback_missing: LessonText = LessonText(
        impact="High", fallback_owner="Release Manager",
        title="Automated change rollback missing",
        description="{detail}", action="Add automated rollback step + pre-prod canary",
    )  # fmt: skip
    change_caused_incident: LessonText = LessonText(
        impact="High", fallback_owner="Release Manager",
        title="Change caused an incident on {subject}",
        description="{detail}", action="Post-incident review; gate similar changes through CAB",
    )  # fmt: skip
    cmdb_stale: LessonText = LessonText(
        impact="Medium", fallback_owner="CMDB Manager",
        title="CMDB record {subject} left stale",
        description="{detail}", action="Restore discovery for the CI or retire it",
    )  # fmt: skip
    unauthorized_deploys: LessonText = LessonText(
        impact="High", fallback_owner="Release Manager",
        title="Deploys without an approved change on {subject}",
        description="{detail}",
        action="Link pipeline deploys to approved changes (customData.change_id)",
    )  # fmt: skip
    repeat_incidents: LessonText = LessonText(
        impact="Medium", fallback_owner="Problem Manager",
        title="Repeated incidents on {subject}",
        description="{detail}", action="Open a problem record and find the root cause",
    )  # fmt: skip
    source_silent: LessonText = LessonText(
        impact="High", fallback_owner="CMDB Manager",
        title="Discovery source {subject} went silent",
        description="{detail}", action="Restore the collector; until then its CIs are unverified",
    )  # fmt: skip


class DueDays(Section):
    """Days from filing to due date, by impact (named as the register writes impacts)."""

    High: PositiveInt = 14
    Medium: PositiveInt = 30
    Low: PositiveInt = 60


class RepeatIncidents(Section):
    count: Annotated[int, Field(ge=2, strict=True)] = 3
    window: Duration = timedelta(days=30)


class Lessons(Section):
    due_days: DueDays = DueDays()
    repeat_incidents: RepeatIncidents = RepeatIncidents()
    max_evidence: PositiveInt = 50
    rules: LessonRules = LessonRules()


class Policy(Section):
    """The whole policy; each section has defaults, so a file need only say what it changes."""

    staleness: Staleness = Staleness()
    identification: Identification = Identification()
    governance: Governance = Governance()
    hygiene: Hygiene = Hygiene()
    sources: Sources = Sources()
    graph: Graph = Graph()
    history: History = History()
    idempotence: Idempotence = Idempotence()
    risk: Risk = Risk()
    correlation: Correlation = Correlation()
    lessons: Lessons = Lessons()

    @model_validator(mode="after")
    def _history_holds_repeats(self) -> "Policy":
        if self.lessons.repeat_incidents.count > self.correlation.history_per_ci:
            raise ValueError(
                "lessons.repeat_incidents.count must not exceed correlation.history_per_ci"
            )
        return self


class PolicyError(ValueError):
    """A policy file that can't be used; the message names the file and the key."""


def load_policy(path: Path | None = None) -> Policy:
    """The packaged policy, overlaid key by key with the file at ``path`` if one is named."""
    packaged = _read(DEFAULT_POLICY_PATH)
    if path is None:
        return parse_policy(packaged, str(DEFAULT_POLICY_PATH))
    return parse_policy(overlay(packaged, _read(path)), str(path))


def _read(path: Path) -> Any:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError(f"policy {path}: cannot be read: {error}") from None
    return document if document is not None else {}


def overlay(base: Any, override: Any) -> Any:
    """Maps merge key by key, recursively; anything else given (a list, a scalar) replaces."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    return {**base, **{key: overlay(base.get(key), value) for key, value in override.items()}}


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
