"""Several ``cmdb-worker run`` replicas in one group give exactly the effects of one ``replay``.

Three replicas consume a stream keyed by CI id on 6 partitions (``tests.replica_stream``: every
event of a CI on one partition of one topic, all event times within 30 minutes, so no deadline
fires and judgement does not depend on how partitions interleave, which differs from the file's
order). Mid-stream the active replica is killed with -9 (a standby takes over) and restarted (it
stands by), a fourth replica joins and the active then stops gracefully (another takes over): three
takeovers and two rebalances. The findings a ``read_committed`` consumer sees, by id, and the
lessons, each id with its (rule, subject), equal those of one clean replay: none lost, none
doubled.
Every replica then answers ``/api/cis/{id}/impact`` from the whole graph, and two names of one CI
(one fqdn) produced to different partitions end as one CI in every replica's API.

The replicas number lesson ids per owner partition (``CMDB_WORKER_OWNER_PARTITIONS=6``), as
``replay --owner-partitions 6`` does: each partition's lessons in that partition's order, which
Kafka keeps, so the ids do not depend on how the active interleaved the partitions.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cmdb_worker.worker.kafka_clients import ownership
from tests.events import T0, observed
from tests.kafka_broker import create_topics
from tests.replica_stream import ci_key, host_name, stream
from tests.worker_process import (
    Message,
    WorkerProcess,
    WorkerTopics,
    committed_offsets,
    findings_of,
    produce,
    read_topic,
    replay_lines,
    wait_caught_up,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

EVENTS = 50_000
SERVICES = 2_000
PARTITIONS = 6
PHASES = (20_000, 15_000, 15_000)
ZOMBIE_EVENTS = 10_000
WAIT = 120.0
Start = Callable[[dict[str, str]], WorkerProcess]


# ------------------------------------------------------------------------------ helpers
def partition_of(key: str) -> int:
    """The partition kafka-python's default partitioner picks for ``key``."""
    return ownership(PARTITIONS).partition_of(key)


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.2)
    return found


def the_active(replicas: list[WorkerProcess]) -> WorkerProcess | None:
    active = [r for r in replicas if total(r, "cmdb_worker_active") == 1]
    assert len(active) <= 1, "two replicas hold the active role at once"
    return active[0] if active else None


def committed_total(bootstrap: str, group: str) -> int:
    return sum(committed_offsets(bootstrap, group).values())


def lessons_by_id(bootstrap: str, topic: str) -> dict[str, tuple[str, str]]:
    """The lessons topic's last value per key: lesson id -> (rule, subject)."""
    last = {r.key: r.value for r in read_topic(bootstrap, topic) if r.key}
    lessons = (json.loads(value) for value in last.values() if value)
    return {lesson["id"]: (lesson["rule"], lesson["subject"]) for lesson in lessons}


def replayed_lessons(out: Path) -> dict[str, tuple[str, str]]:
    register = yaml.safe_load((out / "out" / "lessons.yaml").read_text())["lessons_register"]
    return {lesson["id"]: (lesson["rule"], lesson["subject"]) for lesson in register}


# ------------------------------------------------------------------------------ the setting
class Replicas:
    """Replicas of one group on topics with ``PARTITIONS`` input partitions."""

    def __init__(self, bootstrap: str, topics: WorkerTopics, start: Start) -> None:
        self.bootstrap, self.topics, self.start_process = bootstrap, topics, start
        self.group = f"{topics.prefix}-group"
        self.running: list[WorkerProcess] = []

    def create_topics(self) -> None:
        create_topics(self.bootstrap, self.topics.inputs, partitions=PARTITIONS)
        create_topics(self.bootstrap, [self.topics.state], partitions=PARTITIONS,
                      compacted=[self.topics.state])  # fmt: skip
        create_topics(self.bootstrap, self.topics.outputs, compacted=[self.topics.lessons])

    def start(self, name: str) -> WorkerProcess:
        env = worker_env(self.bootstrap, self.topics, group=self.group, instance_id=name,
                         topic_partitions=PARTITIONS, owner_partitions=PARTITIONS,
                         max_poll_records=500)  # fmt: skip
        replica = self.start_process(env).wait_ready()
        self.running.append(replica)
        return replica

    def active(self) -> WorkerProcess:
        found: WorkerProcess = wait_for("active replica", lambda: the_active(self.running))
        return found

    def kill(self, replica: WorkerProcess) -> None:
        replica.kill()
        self.running.remove(replica)

    def stop(self, replica: WorkerProcess) -> None:
        assert replica.terminate(30)[0] == 0, replica.tail()
        self.running.remove(replica)

    def produce(self, events: list[dict[str, Any]]) -> None:
        produce(self.bootstrap, (
            Message(self.topics.discovery, json.dumps(e).encode(), key=ci_key(e).encode())
            for e in events
        ))  # fmt: skip

    def committed(self) -> int:
        return committed_total(self.bootstrap, self.group)


# ------------------------------------------------------------------------------ the test
def test_replicas_equal_one_replay_across_kill_join_and_leave(
    kafka_bootstrap: str, unique_name: str, worker: Start, tmp_path: Path
) -> None:
    """Through kill -9 of the active, its restart, a join and the active's graceful leave, the
    group's findings and lessons equal one replay's exactly, and every replica sees the whole
    graph."""
    events = stream(EVENTS, SERVICES)
    lines = [json.dumps(event) for event in events]
    clean = replay_lines(lines, tmp_path / "replay", None, "--owner-partitions", str(PARTITIONS))
    group = Replicas(kafka_bootstrap, WorkerTopics(unique_name), worker)
    group.create_topics()
    first = group.start("w1")
    group.start("w2"), group.start("w3")
    assert group.active() is first

    first_phase, second_phase = PHASES[0], PHASES[0] + PHASES[1]
    group.produce(events[:first_phase])
    wait_for("progress", lambda: group.committed() >= first_phase // 4)
    group.kill(first)
    assert group.committed() < first_phase, "the kill must land mid-stream"
    assert group.active() is not first
    group.start("w1")

    group.produce(events[first_phase:second_phase])
    group.start("w4")
    group.produce(events[second_phase:])
    leaving = group.active()
    group.stop(leaving)
    assert group.active() is not leaving
    wait_caught_up(kafka_bootstrap, group.group, [group.topics.discovery], timeout=300)

    findings = findings_of(read_topic(kafka_bootstrap, group.topics.findings))
    ids = [finding["id"] for finding in findings]
    assert len(ids) == len(set(ids)), "a finding was emitted twice"
    assert set(ids) == {finding["id"] for finding in clean.findings}
    assert len(ids) > 1000
    lessons = lessons_by_id(kafka_bootstrap, group.topics.lessons)
    expected = replayed_lessons(tmp_path / "replay")
    assert lessons == expected and len(lessons) > 100

    assert_every_replica_sees_the_whole_graph(group)
    assert_one_ci_for_two_names_of_one_fqdn(group)
    assert_the_state_gauges_come_from_the_active_only(group)


def test_a_paused_active_is_fenced_and_exits_when_it_resumes(
    kafka_bootstrap: str, unique_name: str, worker: Start, tmp_path: Path
) -> None:
    """An active paused past its session (SIGSTOP: a long GC pause, a frozen VM) is replaced by
    the standby, whose takeover fences it; resumed, it commits nothing more and exits 1, and the
    findings are still exactly one replay's."""
    events = stream(ZOMBIE_EVENTS, SERVICES // 10)
    lines = [json.dumps(event) for event in events]
    clean = replay_lines(lines, tmp_path / "replay", None, "--owner-partitions", str(PARTITIONS))
    group = Replicas(kafka_bootstrap, WorkerTopics(unique_name), worker)
    group.create_topics()
    zombie, standby = group.start("w1"), group.start("w2")
    assert group.active() is zombie
    group.produce(events)
    wait_for("progress", lambda: group.committed() >= ZOMBIE_EVENTS // 5)
    os.kill(zombie.pid, signal.SIGSTOP)
    group.running.remove(zombie)
    assert group.active() is standby
    os.kill(zombie.pid, signal.SIGCONT)
    assert zombie.wait_exit(WAIT) == 1, zombie.tail()
    wait_caught_up(kafka_bootstrap, group.group, [group.topics.discovery])
    findings = findings_of(read_topic(kafka_bootstrap, group.topics.findings))
    ids = [finding["id"] for finding in findings]
    assert len(ids) == len(set(ids)), "a finding was emitted twice"
    assert set(ids) == {finding["id"] for finding in clean.findings}


def assert_every_replica_sees_the_whole_graph(group: Replicas) -> None:
    """A host's blast radius (databases and services keyed to other partitions) is the same on
    every replica, active or standby, once the standbys have caught up."""
    path = f"/api/cis/host/{host_name(0)}/impact"

    def answers() -> list[Any]:
        return [replica.get_json(path) for replica in group.running]

    same = wait_for("equal impact answers", lambda: len({json.dumps(a) for a in answers()}) == 1)
    status, impact = answers()[0]
    assert same and status == 200
    assert impact["count"] >= 20
    partitions = {partition_of(dependent["id"]) for dependent in impact["dependents"]}
    assert len(partitions) > 1, "the radius must span partitions"


def assert_one_ci_for_two_names_of_one_fqdn(group: Replicas) -> None:
    """Two names sharing an fqdn, produced to different partitions, are one CI everywhere."""
    names = [f"web-{n}" for n in range(50)]
    first = names[0]
    second = next(n for n in names if partition_of(f"service/{n}@prod") != partition_of(
        f"service/{first}@prod"))  # fmt: skip
    fqdn = {"fqdn": "web.shop.example.net"}
    sightings = [observed(name, id=f"fqdn-{name}", identifiers=fqdn, owner="team-web",
                          time=T0) for name in (first, second)]  # fmt: skip
    group.produce(sightings)
    wait_caught_up(group.bootstrap, group.group, [group.topics.discovery])
    for replica in group.running:
        resolved = wait_for("both names resolved", lambda r=replica: _same_ci(r, first, second))
        assert resolved


def assert_the_state_gauges_come_from_the_active_only(group: Replicas) -> None:
    """Whole-graph gauges (CIs, stale CIs, lessons) are exported by the active alone, so a sum
    over the replicas counts each CI once."""
    active = group.active()
    cis = wait_for("the active's CI gauges", lambda: total(active, "cmdb_worker_cis"))
    assert cis >= SERVICES
    assert [total(r, "cmdb_worker_cis") for r in group.running if r is not active] == [0, 0]


def total(replica: WorkerProcess, name: str) -> float:
    """The sum of a metric's samples on ``replica``."""
    status, body = replica.get("/metrics")
    assert status == 200
    families = text_string_to_metric_families(body.decode())
    return sum(s.value for f in families for s in f.samples if s.name == name)


def _same_ci(replica: WorkerProcess, first: str, second: str) -> bool:
    answers = [replica.get_json(f"/api/cis/service/{name}@prod") for name in (first, second)]
    return (
        all(status == 200 for status, _ in answers) and answers[0][1]["id"] == answers[1][1]["id"]
    )
