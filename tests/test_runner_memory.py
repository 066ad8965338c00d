"""The run loop on the in-memory broker: rebalances, fencing, dead letters and aborted commits.

Each test runs the real ``Runner`` (loop, engine, sinks) in threads against ``MemoryBroker``,
whose semantics tests/test_memory_kafka.py pins against the real broker; tests/test_run_*.py
prove the same loop end to end on a real one. Findings are compared as the exact documents
``replay`` writes for the same events, so "exactly once" is counted by document.
"""

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from kafka.errors import KafkaError, ProducerFencedError
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from cmdb_worker.rules.policy import Policy, load_policy
from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker import runner as runner_module
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.kafka_clients import TopicError, ownership, transactional_id
from cmdb_worker.worker.memory_kafka import MemoryBroker
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.replay import message_from_line, replay
from cmdb_worker.worker.runner import Runner
from cmdb_worker.worker.settings import Settings
from tests.events import T0, observed
from tests.replica_stream import ci_key
from tests.replica_stream import stream as replica_stream

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def settings_for(instance: str = "a", **overrides: Any) -> Settings:
    """Judged by event time as replay is; short polls, so stopping is quick."""
    defaults: dict[str, Any] = {"group_id": "g", "instance_id": instance, "clock": "event",
                                "poll_timeout_ms": 20, "topic_partitions": 1}  # fmt: skip
    return Settings(**(defaults | overrides))


class Running:
    """A ``Runner`` looping in a thread on the broker, and what it raised, if anything."""

    def __init__(self, broker: MemoryBroker, settings: Settings, policy: Policy) -> None:
        self.runner = Runner(settings, policy, Metrics(CollectorRegistry()), broker)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=settings.instance_id, daemon=True)

    def start(self) -> "Running":
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as error:  # the test asks what it was
            self.error = error

    def join(self) -> None:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the runner did not stop"

    def stop(self) -> None:
        self.runner.stop()
        self.join()


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def start(broker: MemoryBroker) -> Iterator[Callable[[Settings, Policy], Running]]:
    """Start runners on the broker; any still running at the end are stopped."""
    started: list[Running] = []

    def start_one(settings: Settings, policy: Policy) -> Running:
        started.append(Running(broker, settings, policy).start())
        return started[-1]

    yield start_one
    for running in started:
        running.stop()


def caught_up(broker: MemoryBroker, settings: Settings) -> Callable[[], bool]:
    """Whether the group has committed every input record."""

    def check() -> bool:
        committed = broker.committed(settings.group_id)
        ends = {p: end for t in settings.input_topics for p, end in broker.end_offsets(t).items()}
        return all(committed.get(partition, 0) == end for partition, end in ends.items())

    return check


def findings(broker: MemoryBroker, settings: Settings) -> list[str]:
    """The findings a read_committed consumer sees, as documents, sorted."""
    return sorted(record.value.decode() for record in broker.read_committed(settings.topic_findings)
                  if record.value is not None)  # fmt: skip


def ids(documents: list[str]) -> list[str]:
    """Each finding's id, sorted (repeats kept): what "each finding once" counts."""
    return sorted(json.loads(document)["id"] for document in documents)


def replayed(lines: list[str], policy: Policy, tmp_path: Path) -> list[str]:
    """The findings ``replay`` gives for the same lines, as documents, sorted."""
    path = tmp_path / "events.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return documents(replay(Engine(policy), [path]).findings)


def documents(found: list[Finding]) -> list[str]:
    return sorted(finding.model_dump_json() for finding in found)


def produce_line(broker: MemoryBroker, topic: str, line: str) -> None:
    """A replay line as the message it stands for (a bad wrapper goes as its raw bytes)."""
    try:
        message = message_from_line(line)
    except InvalidEvent:
        broker.produce(topic, line.encode())
        return
    broker.produce(topic, message.value, message.key, message.headers)


def fleet(cis: int = 48, sightings: int = 2) -> list[tuple[bytes, str]]:
    """(key, value) observations of ``cis`` services, one after another, each seen
    ``sightings`` times in a row, 15 s apart; every third has no owner. Which findings a CI
    gets depends on its own events only, all within 30 min, before any deadline (an orphan's
    hour of grace) falls due: partitions consumed in any interleaving, by any runner, give
    replay's finding ids (their times follow the event clock, which an interleaving moves)."""
    events = []
    for step in range(cis * sightings):
        n = step // sightings
        owner = {} if n % 3 == 0 else {"owner": f"team-{n % 4}"}
        event = observed(f"svc{n:02d}", time=T0 + timedelta(seconds=15 * step), id=f"e-{step}",
                         **owner)  # fmt: skip
        events.append((f"service/svc{n:02d}@prod".encode(), json.dumps(event)))
    return events


def produce_fleet(
    broker: MemoryBroker, settings: Settings, events: list[tuple[bytes, str]]
) -> None:
    for key, value in events:
        broker.produce(settings.topic_discovery, value.encode(), key)


# ------------------------------------------------------------------------------ the whole loop
def test_the_loop_gives_replays_findings_and_dead_letters_on_the_sample_week(
    broker: MemoryBroker, start: Callable[[Settings, Policy], Running]
) -> None:
    """The sample week (every envelope, poison lines too) through the whole loop gives exactly
    the findings replay writes for it, each once, and replay's dead letters in the DLQ."""
    policy, settings = load_policy(EXAMPLES / "policy.yaml"), settings_for(max_poll_records=50)
    lines = [line for line in (EXAMPLES / "events.jsonl").read_text().splitlines() if line.strip()]
    broker.prepare_topics(settings)
    for line in lines:
        produce_line(broker, settings.topic_discovery, line)
    start(settings, policy)
    broker.wait_for(caught_up(broker, settings))
    expected = replay(Engine(policy), [EXAMPLES / "events.jsonl"])
    assert findings(broker, settings) == documents(expected.findings)
    assert len(broker.read_committed(settings.topic_dlq)) == len(expected.dead_letters) > 0


def test_lesson_ids_numbered_per_owner_partition_equal_a_replay_told_the_same_count(
    broker: MemoryBroker, start: Callable[[Settings, Policy], Running], policy: Policy,
    tmp_path: Path,
) -> None:  # fmt: skip
    """With ``owner_partitions`` = the inputs' 3 partitions, the loop (which reads them
    interleaved as they come) gives every lesson the id ``replay --owner-partitions 3`` gives
    it in file order."""
    settings = settings_for(owner_partitions=3, topic_partitions=3, max_poll_records=7)
    events = [json.dumps(event) for event in replica_stream(600, 40)]
    broker.prepare_topics(settings)
    for event in events:  # keyed by the contract key, as `cmdb-worker produce` keys them
        broker.produce(settings.topic_discovery, event.encode(), ci_key(json.loads(event)).encode())
    running = start(settings, policy)
    broker.wait_for(caught_up(broker, settings))
    expected, file = Engine(policy, ownership(3)), tmp_path / "events.jsonl"
    file.write_text("".join(f"{event}\n" for event in events))
    replay(expected, [file])
    with running.runner.lock:
        lessons = {id: lesson.subject for id, lesson in running.runner.engine.state.lessons.items()}
    assert lessons == {id: lesson.subject for id, lesson in expected.state.lessons.items()}
    assert len(lessons) > 10 and "LL-0001" in lessons and "LL-0002" in lessons


def test_input_topics_of_another_partition_count_are_refused_naming_the_setting(
    broker: MemoryBroker,
) -> None:
    settings = settings_for(owner_partitions=3, topic_partitions=2)
    with pytest.raises(TopicError) as refused:
        broker.prepare_topics(settings)
    assert "CMDB_WORKER_OWNER_PARTITIONS=3" in str(refused.value)
    assert f"{settings.topic_discovery} has 2" in str(refused.value)


POISON_REASONS = {b"poison-not-json": "not_json", b"poison-schema": "missing_field"}


def test_poison_messages_are_dead_lettered_with_their_origin_and_the_partition_moves_on(
    broker: MemoryBroker, start: Callable[[Settings, Policy], Running], policy: Policy
) -> None:
    """Non-JSON and wrongly shaped messages land in the DLQ with their key, value and headers
    plus headers naming the reason, topic, partition and offset; the good events after them on
    the same partition are applied and the group's offset passes them all."""
    settings = settings_for()
    broker.prepare_topics(settings)
    no_ci = observed("broken", id="bad-1")
    del no_ci["data"]["ci"]
    topic = settings.topic_discovery
    broker.produce(topic, json.dumps(observed("alpha", id="g-1")).encode(), b"service/alpha@prod")
    broker.produce(topic, b"{oops, not json", b"poison-not-json", [("trace-id", b"t-1")])
    broker.produce(topic, json.dumps(no_ci).encode(), b"poison-schema")
    broker.produce(topic, json.dumps(observed("beta", id="g-2")).encode(), b"service/beta@prod")
    start(settings, policy)
    broker.wait_for(caught_up(broker, settings))

    letters = broker.read_committed(settings.topic_dlq)
    assert [letter.key for letter in letters] == [b"poison-not-json", b"poison-schema"]
    assert letters[0].value == b"{oops, not json" and letters[0].headers[0] == ("trace-id", b"t-1")
    for letter, offset in zip(letters, (1, 2), strict=True):
        headers = {name: value.decode() for name, value in letter.headers}
        assert headers["cmdb_dlq_reason"].startswith(POISON_REASONS[letter.key or b""] + ":")
        assert (headers["cmdb_dlq_topic"], headers["cmdb_dlq_partition"]) == (topic, "0")
        assert headers["cmdb_dlq_offset"] == str(offset)
    no_owner = {json.loads(f)["subject"] for f in findings(broker, settings)
                if json.loads(f)["data"]["kind"] == "ci_no_owner"}  # fmt: skip
    assert no_owner == {"service/alpha@prod", "service/beta@prod"}


# ------------------------------------------------------------------------------ rebalances
def test_a_standby_takes_over_mid_stream_and_each_finding_appears_once(
    broker: MemoryBroker, start: Callable[[Settings, Policy], Running], policy: Policy,
    tmp_path: Path,
) -> None:  # fmt: skip
    """A second runner joining mid-stream stands by (no partitions; it tails the state topic),
    and when the active stops it takes every partition over, reads on from the committed offsets,
    and every finding id of the stream appears exactly once, as replay has it."""
    settings = settings_for(topic_partitions=3, max_poll_records=7)
    events = fleet()
    broker.prepare_topics(settings)
    produce_fleet(broker, settings, events[: len(events) // 2])
    first = start(settings, policy)
    broker.wait_for(caught_up(broker, settings))
    second = start(settings.model_copy(update={"instance_id": "b"}), policy)
    broker.wait_for(lambda: second.runner.ready)
    assert second.runner.assigned == set(), "a joining replica stands by"
    first.stop()
    inputs = {p for topic in settings.input_topics for p in broker.topic_partitions(topic)}
    broker.wait_for(lambda: second.runner.assigned == inputs)
    produce_fleet(broker, settings, events[len(events) // 2 :])
    broker.wait_for(caught_up(broker, settings))

    got = ids(findings(broker, settings))
    assert got == ids(replayed([value for _, value in events], policy, tmp_path))
    assert len(got) == len(set(got)) > 10


# ------------------------------------------------------------------------------ fencing
def test_a_runner_fenced_by_its_successor_stops_and_nothing_is_doubled(
    broker: MemoryBroker, start: Callable[[Settings, Policy], Running], policy: Policy,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Another replica taking the active role over (a producer of the role's transactional id
    initialised) while the active is committing fences it: its open transaction is aborted, it
    logs producer_fenced naming the id and stops with ProducerFencedError; the replica started
    after it carries on and every finding is there once."""
    settings, events = settings_for(max_poll_records=5), fleet()
    broker.prepare_topics(settings)
    produce_fleet(broker, settings, events)
    commits: list[str] = []

    def fence_at_the_third_commit(producer_id: str) -> None:
        if carries_offsets(broker, producer_id):
            commits.append(producer_id)
        if len(commits) == 3 and broker.epochs[producer_id] == 0:
            broker.transactional_producer(settings).init_transactions()

    broker.before_commit = fence_at_the_third_commit
    with capture_logs() as logs:
        # a logger proxy made now: one another test used first stays bound to its processors
        monkeypatch.setattr(runner_module, "log", structlog.get_logger("cmdb_worker.run"))
        zombie = start(settings, policy)
        zombie.join()
    start(settings.model_copy(update={"instance_id": "b"}), policy)
    broker.wait_for(caught_up(broker, settings))

    assert isinstance(zombie.error, ProducerFencedError)
    fenced = [entry for entry in logs if entry["event"] == "producer_fenced"]
    assert fenced == [{"event": "producer_fenced", "log_level": "error",
                       "transactional_id": transactional_id(settings)}]  # fmt: skip
    assert broker.aborted(settings.topic_state), "the zombie's batch was aborted, not committed"
    assert findings(broker, settings) == replayed([value for _, value in events], policy, tmp_path)


# ------------------------------------------------------------------------------ failed commits
def carries_offsets(broker: MemoryBroker, producer_id: str) -> bool:
    """Whether the producer's open transaction commits input offsets (a batch, not a tick)."""
    transaction = broker.open.get(producer_id)
    return transaction is not None and bool(transaction.offsets)


def fail_commits(broker: MemoryBroker, numbers: set[int]) -> None:
    """The batch commits with these numbers (counted from 1, any producer) raise a KafkaError."""
    counted = iter(range(1, 10**9))

    def maybe_fail(producer_id: str) -> None:
        if carries_offsets(broker, producer_id) and next(counted) in numbers:
            raise KafkaError("injected: the transaction could not commit")

    broker.before_commit = maybe_fail


def test_a_commit_that_fails_once_is_aborted_and_its_batch_committed_again(
    broker: MemoryBroker, start: Callable[[Settings, Policy], Running], policy: Policy,
    tmp_path: Path,
) -> None:  # fmt: skip
    """When a commit fails, its records are aborted (a read_committed reader never sees them)
    and the same batch commits in a new transaction: every finding appears exactly once."""
    settings, events = settings_for(max_poll_records=5), fleet()
    broker.prepare_topics(settings)
    produce_fleet(broker, settings, events)
    fail_commits(broker, {2})
    running = start(settings, policy)
    broker.wait_for(caught_up(broker, settings))

    assert broker.aborted(settings.topic_state) and broker.aborted(settings.topic_findings)
    assert findings(broker, settings) == replayed([value for _, value in events], policy, tmp_path)
    assert running.thread.is_alive() and running.error is None


def test_a_commit_that_fails_twice_stops_the_runner_and_a_restart_drops_nothing(
    broker: MemoryBroker, start: Callable[[Settings, Policy], Running], policy: Policy,
    tmp_path: Path,
) -> None:  # fmt: skip
    """When the batch's second commit fails too, the runner stops with the error; a restart
    rebuilds from the changelog without the batch, reads it again from the committed offsets,
    and every finding appears exactly once."""
    settings, events = settings_for(max_poll_records=5), fleet()
    broker.prepare_topics(settings)
    produce_fleet(broker, settings, events)
    fail_commits(broker, {3, 4})
    failed = start(settings, policy)
    failed.join()
    assert isinstance(failed.error, KafkaError) and "injected" in str(failed.error)
    assert not caught_up(broker, settings)()

    start(settings, policy)
    broker.wait_for(caught_up(broker, settings))
    assert findings(broker, settings) == replayed([value for _, value in events], policy, tmp_path)


# ------------------------------------------------------------------------------ stopping
def test_stopping_mid_batch_finishes_and_commits_the_batch_in_hand(
    broker: MemoryBroker, policy: Policy
) -> None:
    """``stop()`` (what SIGTERM calls) while a batch is in hand lets the batch finish: its
    offsets and findings commit, then the runner leaves the group and returns."""
    settings, events = settings_for(max_poll_records=5), fleet()
    broker.prepare_topics(settings)
    produce_fleet(broker, settings, events)
    running = Running(broker, settings, policy)

    def stop_with_records_in_hand(producer_id: str) -> None:
        if carries_offsets(broker, producer_id):
            running.runner.stop()

    broker.before_commit = stop_with_records_in_hand
    running.start().join()

    assert running.error is None
    partition = broker.topic_partitions(settings.topic_discovery)[0]
    assert broker.committed(settings.group_id) == {partition: 5}
    assert findings(broker, settings), "the batch's findings were committed"
    assert broker.group(settings.group_id).members == []
