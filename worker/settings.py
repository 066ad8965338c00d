"""Settings of ``cmdb-worker run``: environment variables ``CMDB_WORKER_*`` or a YAML file.

A bad setting is refused at start with a message naming the variable.
"""

import os
import textwrap
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

ENV_PREFIX = "CMDB_WORKER_"
CONFIG_FILE_VARIABLE = f"{ENV_PREFIX}CONFIG"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)


class Settings(BaseSettings):
    """Everything ``run`` can be told; every field has a default fit for a local broker."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, use_attribute_docstrings=True
    )

    bootstrap_servers: str = "localhost:9092"
    """Comma-separated host:port list of the Kafka cluster."""
    group_id: str = "cmdb-worker"
    """Consumer group of the input topics (every replica joins it); also the stem of the active
    replica's transactional id, ``<group_id>-active``."""
    instance_id: str = Field(default_factory=lambda: os.environ.get("HOSTNAME", "local"))
    """This replica's name (the pod name in Kubernetes): its static group membership
    (group.instance.id), so a restarted container resumes its place in the group."""
    policy: Path | None = None
    """Policy YAML; the packaged ``rules/policy.yaml`` when unset."""
    http_port: int = Field(default=9108, ge=0, le=65535)
    """Port of /metrics, /healthz, /readyz and /api/ (0 picks a free one)."""
    http_host: str = "0.0.0.0"
    """Address the HTTP server binds to."""

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients reach the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; needed with a SASL_* protocol."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (never logged)."""
    ssl_cafile: Path | None = None
    """CA bundle that signs the brokers' TLS certificates."""
    connect_timeout_seconds: float = Field(default=30.0, gt=0)
    """At start: how long to keep trying to reach and log in to the cluster before giving up."""
    session_timeout_seconds: float = Field(default=6.0, ge=6, le=1800)
    """How long the group waits for a silent replica (one killed with -9) before a standby takes
    its partitions over: most of a failover. 6 s is the least brokers accept by default
    (group.min.session.timeout.ms); raise it if replicas lose their sessions under CPU pressure.
    A graceful stop leaves the group at once."""

    topic_discovery: str = "cmdb.discovery"
    """Input: discovery events (cmdb.ci.observed, cmdb.ci.retired, cmdb.scan.completed)."""
    topic_cicd: str = "cicd.events"
    """Input: CDEvents from pipelines and incident tools."""
    topic_changes: str = "itsm.changes"
    """Input: itsm.change.requested and itsm.change.updated."""
    topic_lesson_updates: str = "cmdb.lesson-updates"
    """Input: cmdb.lesson.updated from people."""
    topic_findings: str = "cmdb.findings"
    """Output: findings as CloudEvents."""
    topic_lessons: str = "cmdb.lessons"
    """Output (compacted): each lesson's whole current record."""
    topic_dlq: str = "cmdb.dlq"
    """Output: messages that cannot be applied, untouched, with the reason in headers."""
    topic_state: str = "cmdb.state"
    """Internal (compacted): the changelog every replica rebuilds its state from."""
    tickets: bool = False
    """Also send each lesson change as a CDEvents ticket.created/updated/closed to
    topic_tickets, in the same transaction as the rest, for a tracker bridge to pick up."""
    topic_tickets: str = "cmdb.tickets"
    """Output (with tickets on): lessons as CDEvents ticket events, keyed by lesson id."""
    create_topics: bool = True
    """Create missing topics at start (lessons and state compacted)."""
    topic_partitions: int = Field(default=3, ge=1)
    """Partitions of topics the worker creates; inputs must be co-partitioned by CI id."""
    owner_partitions: int = Field(default=1, ge=1)
    """Number lessons per input partition (their subject's, as the contract key places it):
    set to the input topics' partition count (checked at start), lesson ids no longer depend
    on how partitions interleave and equal those of ``replay --owner-partitions``. 1: one
    sequence in filing order. Also the number of partials a source's reports and a team's
    aggregates are kept in (``engine.sources``, ``engine.teams``)."""
    replication_factor: int | None = Field(default=None, ge=1)
    """Replicas of topics the worker creates; unset: min(3, brokers in the cluster). Their
    min.insync.replicas is one less (at least 1). An existing state topic must be compacted."""

    clock: Literal["wall", "event"] = "wall"
    """``wall``: judge by the wall clock; ``event``: by the latest event time, as replay does."""
    tick_seconds: float = Field(default=5.0, gt=0)
    """How often deadlines (staleness, overdue lessons) are checked when no event arrives."""
    gauge_refresh_seconds: float = Field(default=15.0, gt=0)
    """How often the whole-graph gauges (CIs, stale CIs, lessons) are recounted: a full scan,
    kept off the per-tick path so a large CMDB is not walked every few seconds."""
    max_poll_records: int = Field(default=500, ge=1)
    """Most input records taken in one poll (one Kafka transaction)."""
    poll_timeout_ms: int = Field(default=500, ge=1)
    """How long one poll waits for input before the loop goes round (ticks, gauges)."""
    shutdown_grace_seconds: float = Field(default=20.0, gt=0)
    """On SIGTERM: finish the batch in hand, commit and close within this time."""
    liveness_timeout_seconds: float = Field(default=120.0, gt=0)
    """/healthz fails when the processing loop has made no progress for this long (each poll
    of the changelog during the start-up rebuild counts as progress)."""
    memory_limit_bytes: int | None = Field(default=None, ge=1)
    """The container's memory limit (Kubernetes: the downward API's limits.memory), exported as
    cmdb_worker_memory_limit_bytes so an alert can compare process_resident_memory_bytes."""
    log_level: LogLevel = "INFO"
    """DEBUG, INFO, WARNING or ERROR; logs are JSON lines on stderr (the --log-level flag wins)."""

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> "Settings":
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"{ENV_PREFIX}SECURITY_PROTOCOL={self.security_protocol} needs "
                f"{ENV_PREFIX}SASL_MECHANISM, {ENV_PREFIX}SASL_USERNAME and "
                f"{ENV_PREFIX}SASL_PASSWORD"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if config_file:
            sources += (YamlConfigSettingsSource(settings_cls, yaml_file=config_file),)
        return sources

    @property
    def input_topics(self) -> list[str]:
        return [
            self.topic_discovery,
            self.topic_cicd,
            self.topic_changes,
            self.topic_lesson_updates,
        ]


class SettingsError(ValueError):
    """Settings that can't be used; the message names each offending variable."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and ``CMDB_WORKER_CONFIG``), refusing unknown variables."""
    unknown = sorted(
        name for name in os.environ
        if name.startswith(ENV_PREFIX) and name != CONFIG_FILE_VARIABLE
        and name.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields
    )  # fmt: skip
    if unknown:
        raise SettingsError(f"bad setting: unknown variable(s) {', '.join(unknown)}")
    _require_config_file()
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


def _require_config_file() -> None:
    """A settings file that is named must exist: silently running on defaults would hide it."""
    config_file = os.environ.get(CONFIG_FILE_VARIABLE)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"bad setting: {CONFIG_FILE_VARIABLE}: no such file: {config_file}")


def settings_help() -> str:
    """One entry per setting, generated from the model: variable, default and meaning."""
    return "\n".join(_setting_help(name, field) for name, field in Settings.model_fields.items())


def _setting_help(name: str, field: FieldInfo) -> str:
    default = "from $HOSTNAME" if field.default_factory else _shown(field.default)
    meaning = textwrap.fill(
        (field.description or "").replace("``", ""), width=96,
        initial_indent=" " * 6, subsequent_indent=" " * 6,
    )  # fmt: skip
    return f"  {ENV_PREFIX}{name.upper()} (default: {default})\n{meaning}"


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"])
        variable = f"{ENV_PREFIX}{name.upper()}" if name else "settings"
        problems.append(f"{variable}: {item['msg']}")
    return "bad setting: " + "; ".join(problems)
