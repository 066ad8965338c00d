"""``cmdb-worker run`` fenced on the real broker: a replica whose transactional id a newer one
took stops, exits 1 and says why, and the newer one carries on."""

import json
import time
from collections.abc import Callable

import pytest

from tests.events import observed
from tests.worker_process import Message, WorkerProcess, WorkerTopics, produce, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_a_worker_whose_transactional_id_is_taken_exits_1_naming_it(
    kafka_bootstrap: str, unique_name: str, worker: Callable[[dict[str, str]], WorkerProcess]
) -> None:
    """A second worker with the same group and instance id replaces the first as the group's
    static member, takes the active role over and so fences the first's producer (the role's
    one transactional id); the first learns it at its next write (its idle ticks write
    nothing), logs producer_fenced with the id and exits 1, and the second applies the event
    the first could not commit."""
    topics = WorkerTopics(unique_name)
    topics.create(kafka_bootstrap)
    env = worker_env(kafka_bootstrap, topics)
    first = worker(env).wait_ready()
    second = worker(env)
    wait_logged(second, "state_rebuilt")  # after its init_transactions: the first is fenced
    event = observed("alpha", id="after-the-fencing")
    produce(kafka_bootstrap, [Message(topics.discovery, json.dumps(event).encode(), b"alpha")])

    assert first.wait_exit(timeout=90) == 1
    fenced = [event for event in first.log_events() if event.get("event") == "producer_fenced"]
    assert [(event["level"], event["transactional_id"]) for event in fenced] == [
        ("error", f"{unique_name}-group-active")
    ]
    second.wait_ready()
    deadline = time.monotonic() + 60
    while second.get("/api/cis/service/alpha@prod")[0] != 200:
        assert time.monotonic() < deadline, f"the event was not applied\n{second.tail()}"
        time.sleep(0.2)


def wait_logged(process: WorkerProcess, event: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(logged.get("event") == event for logged in process.log_events()):
        assert time.monotonic() < deadline, f"no {event} logged\n{process.tail()}"
        time.sleep(0.1)
