"""History across a real restart: ``cmdb-worker run`` on a real broker answers
``/history`` and ``/impact?at=`` the same after a SIGKILL and a restart that rebuilds its state
from the changelog topic as it did before."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.events import at, observed, scan_completed
from tests.governance_helpers import SAFE, change_requested, change_updated, payments_estate
from tests.worker_process import (
    Message,
    WorkerProcess,
    WorkerTopics,
    produce,
    wait_caught_up,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

PG, ORDERS = "database/payments-pg@prod", "service/orders-api@prod"
PATHS = [
    f"/api/cis/{PG}/impact?at=2026-11-20T22:00:00Z",
    f"/api/cis/{PG}/impact?at=2026-11-21T22:00:00Z",
    f"/api/cis/{PG}/impact?at=2026-11-22T22:00:00Z",
    f"/api/cis/{ORDERS}/history",
    "/api/cis/service/payments-api@prod/history",
    "/api/changes/CHG1/history",
]


def messages(topics: WorkerTopics) -> list[Message]:
    """The payments estate; orders-api depending on payments-pg from day 1 to day 2; a change
    assessed twice; a last scan three hours later (orders-api is then an orphan)."""
    discovery = [
        *payments_estate(), observed("orders-api", owner="team-orders"),
        observed("orders-api", owner="team-orders", time=at(days=1),
                 relations=[("depends_on", PG)]),
        observed("orders-api", owner="team-orders", time=at(days=2), complete=True),
        scan_completed(started=at(days=2, hours=3), time=at(days=2, hours=3), types=["x"]),
    ]  # fmt: skip
    changes = [
        change_requested("CHG1", PG, time=at(hours=1), **SAFE),
        change_updated("CHG1", time=at(hours=2), canary=False),
    ]
    return [
        *(Message(topics.discovery, json.dumps(event).encode()) for event in discovery),
        *(Message(topics.changes, json.dumps(event).encode()) for event in changes),
    ]


def answers(running: WorkerProcess) -> list[Any]:
    replies = [running.get_json(path) for path in PATHS]
    assert all(status == 200 for status, _ in replies), replies
    return [document for _, document in replies]


def test_history_and_impact_at_answer_the_same_after_kill_9_and_restart(
    kafka_bootstrap: str, unique_name: str, worker: Callable[..., WorkerProcess]
) -> None:
    """Before a SIGKILL the worker answers the three impacts (2, 3, 2 dependents), orders-api's
    history and both assessments of CHG1; restarted on the same topics it rebuilds its state
    from the changelog and answers every one of them identically."""
    topics = WorkerTopics(unique_name)
    topics.create(kafka_bootstrap)
    produce(kafka_bootstrap, messages(topics))
    env = worker_env(kafka_bootstrap, topics)
    inputs = [topics.discovery, topics.changes]

    first = worker(env).wait_ready()
    wait_caught_up(kafka_bootstrap, env["CMDB_WORKER_GROUP_ID"], inputs, worker=first)
    before = answers(first)
    first.kill()

    assert [document["count"] for document in before[:3]] == [2, 3, 2]
    assert "ci_orphan" in [entry["kind"] for entry in before[3]["entries"]]
    assessed = [e["revision"] for e in before[5]["entries"] if e["kind"] == "change_assessed"]
    assert assessed == [1, 2]

    restarted = worker(env).wait_ready()
    assert any(e.get("event") == "state_rebuilt" for e in restarted.log_events())
    assert answers(restarted) == before
    assert restarted.terminate(30)[0] == 0
