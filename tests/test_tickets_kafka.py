"""``cmdb-worker run`` with tickets on, against the real broker: ticket events go out in each
batch's transaction with the lessons, so a kill -9 mid-stream and a restart send every ticket
exactly once, and the tickets agree with the lessons topic."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.structs import TopicPartition

from cmdb_worker.schemas.tickets import TicketEvent
from tests.events import T0
from tests.governance_helpers import deploy
from tests.worker_process import (
    Message,
    Record,
    WorkerProcess,
    WorkerTopics,
    committed_offsets,
    produce,
    read_topic,
    wait_caught_up,
    wait_committed,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

SERVICES, DEPLOYS_EACH = 250, 4
EVENTS = SERVICES * DEPLOYS_EACH
STOP_AFTER = EVENTS // 2


def stream(topic: str) -> list[Message]:
    """Rounds of deploys with no change to every service in prod: each service's first files an
    unauthorized_deploys lesson (ticket.created), each later one recurs (ticket.updated)."""
    return [
        Message(topic, json.dumps(deploy(f"svc-{n:03d}", id=f"d{r}-{n}", time=T0 + timedelta(
            minutes=r * SERVICES + n))).encode(), f"service/svc-{n:03d}@prod".encode())
        for r in range(DEPLOYS_EACH) for n in range(SERVICES)
    ]  # fmt: skip


def tickets_of(records: list[Record]) -> list[TicketEvent]:
    return [TicketEvent.model_validate_json(record.value or b"") for record in records]


def last_lessons(records: list[Record]) -> dict[str, dict[str, Any]]:
    """The lessons topic read as a table: each lesson's latest record."""
    return {record.key.decode(): json.loads(record.value) for record in records if record.key}


def test_kill_9_mid_stream_then_restart_sends_each_ticket_once_in_step_with_the_lessons(
    kafka_bootstrap: str, unique_name: str, worker: Callable[..., WorkerProcess]
) -> None:
    """A worker killed mid-stream leaves its open batch's tickets uncommitted; restarted, it
    sends them again in a new transaction: read_committed sees no ticket twice (ids are
    digests), one ticket.created per lesson, and each lesson's last ticket carries exactly the
    lesson the lessons topic holds."""
    topics = WorkerTopics(unique_name)
    topics.create(kafka_bootstrap)
    produce(kafka_bootstrap, stream(topics.cicd))
    env = worker_env(kafka_bootstrap, topics, max_poll_records=10, tickets="true",
                     topic_tickets=topics.name("tickets"))  # fmt: skip
    group, partition = f"{unique_name}-group", TopicPartition(topics.cicd, 0)
    first = worker(env).wait_ready()
    wait_committed(kafka_bootstrap, group, partition, STOP_AFTER)
    first.kill()
    stopped_at = committed_offsets(kafka_bootstrap, group)[partition]
    assert STOP_AFTER <= stopped_at < EVENTS, "the kill must land mid-stream"

    restarted = worker(env).wait_ready()
    wait_caught_up(kafka_bootstrap, group, [topics.cicd], worker=restarted)
    assert restarted.terminate(30)[0] == 0

    tickets = tickets_of(read_topic(kafka_bootstrap, topics.name("tickets")))
    ids = Counter(ticket.context.id for ticket in tickets)
    assert len(tickets) >= SERVICES and ids.most_common(1)[0][1] == 1, "a ticket was sent twice"
    created = Counter(t.subject.id for t in tickets if t.predicate == "created")
    lessons = last_lessons(read_topic(kafka_bootstrap, topics.lessons))
    assert len(lessons) == SERVICES and created == Counter(list(lessons))
    last_ticket = {ticket.subject.id: ticket.customData for ticket in tickets}
    assert {k: v["lesson"] for k, v in last_ticket.items()} == lessons  # type: ignore[index]
    assert all(lesson["occurrences"] == DEPLOYS_EACH for lesson in lessons.values())


def test_tickets_are_off_unless_configured(
    kafka_bootstrap: str, unique_name: str, worker: Callable[..., WorkerProcess]
) -> None:
    """By default lessons are filed but no ticket topic is created (so none is written)."""
    topics = WorkerTopics(unique_name)
    topics.create(kafka_bootstrap)
    produce(kafka_bootstrap, stream(topics.cicd)[:3])
    env = worker_env(kafka_bootstrap, topics, topic_tickets=topics.name("tickets"))
    running = worker(env).wait_ready()
    wait_caught_up(kafka_bootstrap, f"{unique_name}-group", [topics.cicd], worker=running)
    assert len(last_lessons(read_topic(kafka_bootstrap, topics.lessons))) == 3
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert topics.name("tickets") not in admin.list_topics()
    finally:
        admin.close()
