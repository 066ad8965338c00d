"""Shared fixtures: a fresh engine on the default policy, and a helper to feed it events."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from cmdb_worker.rules.policy import Policy, load_policy
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker.engine.apply import Engine
from tests.events import to_input

pytest_plugins = ["tests.kafka_broker", "tests.worker_process", "tests.restarts"]

Feed = Callable[..., list[Finding]]


@pytest.fixture
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def engine(policy: Policy) -> Engine:
    return Engine(policy)


@pytest.fixture
def feed(engine: Engine) -> Feed:
    """Apply events in order with the event-time clock, as replay does; returns all findings."""

    def apply(*messages: dict[str, Any], now: datetime | None = None) -> list[Finding]:
        findings: list[Finding] = []
        for message in messages:
            event = to_input(message)
            findings += engine.apply(event, now or event.time) or []
        return findings

    return apply
