"""Failover: seconds from kill -9 of the active replica to the first event judged by the next.

    python -m bench.failover --bootstrap HOST:PORT [--repetitions 7] [--rate 200] [--cis N]

Three ``cmdb-worker run`` replicas share one group on inputs of 6 partitions; a producer thread
sends a steady stream (``tests.replica_stream``, keyed by CI id) at ``--rate`` events/s. Each
repetition finds the active replica (``cmdb_worker_active`` 1), kills it with SIGKILL, and polls
the survivors' ``cmdb_worker_events_consumed_total`` (standbys consume nothing) until one of
them has judged an event: that is the failover time. The killed replica is then restarted under
its own name (it rejoins as a standby) and the group left to settle before the next repetition.

The failover is, in order: the broker noticing the silent member (the session timeout, 6 s by
default), the survivors hearing of the rebalance at their next heartbeat (a tenth of the session)
and rejoining, and the new active's takeover (fencing, reading the state topic to its end,
deriving the indexes; standbys keep the CIs' deadlines armed, so it hardly grows with the
state). ``--cis N`` starts the replicas on a
changelog of N CIs (built as ``bench.recovery`` builds it) to show how.
"""

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench import scale
from bench.recovery import produce_changelog
from cmdb_worker.worker.settings import Settings
from tests.kafka_broker import create_topics
from tests.replica_stream import ci_key, stream
from tests.worker_process import WorkerProcess, WorkerTopics, worker_env

PARTITIONS = 6
REPLICAS = ("r1", "r2", "r3")
SETTLE_SECONDS = 8.0
"""After a restart: its join's rebalance done and the group steady again."""
POLL_SECONDS = 0.05
SESSION_TIMEOUT_SECONDS = Settings.model_fields["session_timeout_seconds"].default
"""The default a deployment runs with."""


def metric(replica: WorkerProcess, name: str) -> float:
    """Sum of a metric's samples on ``replica``; 0 if it cannot answer."""
    try:
        status, body = replica.get("/metrics", timeout=2)
    except OSError:
        return 0.0
    families = text_string_to_metric_families(body.decode()) if status == 200 else []
    return sum(s.value for f in families for s in f.samples if s.name == name)


class SteadyStream(threading.Thread):
    """Sends the replica stream at ``rate`` events/s until stopped."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.halt = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5, acks=1)
        started = time.monotonic()
        for n, event in enumerate(_endless()):
            if self.halt.wait(max(0.0, started + n / self.rate - time.monotonic())):
                break
            producer.send(self.topic, key=ci_key(event).encode(), value=json.dumps(event).encode())
        producer.close()


def _endless() -> Iterator[dict[str, Any]]:
    """The stream over and over (a repeated event is a redelivery: judged once), timed just
    after a ``--cis`` state's sightings, so the state's deadlines are not all due at once."""
    while True:
        yield from stream(100_000, 2_000, start=scale.START + scale.SPREAD)


class Group:
    """The replicas, started from ``log_dir``, by name."""

    def __init__(self, bootstrap: str, topics: WorkerTopics, log_dir: Path, state: str) -> None:
        self.bootstrap, self.topics, self.log_dir, self.state = bootstrap, topics, log_dir, state
        self.replicas: dict[str, WorkerProcess] = {}

    def start(self, name: str) -> None:
        env = worker_env(self.bootstrap, self.topics, instance_id=name, topic_state=self.state,
                         topic_partitions=PARTITIONS,
                         session_timeout_seconds=SESSION_TIMEOUT_SECONDS)  # fmt: skip
        log = self.log_dir / f"{name}-{len(self.replicas)}-{uuid.uuid4().hex[:4]}.log"
        self.replicas[name] = WorkerProcess(env, log).start()  # known before it can fail
        self.replicas[name].wait_ready(timeout=1800)

    def active(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [n for n, r in self.replicas.items() if metric(r, "cmdb_worker_active") == 1]
            if len(found) == 1:
                return found[0]
            time.sleep(0.2)
        raise TimeoutError("no single active replica")

    def stop_all(self) -> None:
        for replica in self.replicas.values():
            replica.ensure_stopped()


def failover_once(group: Group) -> tuple[float, dict[str, float]]:
    """Kill the active; seconds until a survivor has judged an event, and that survivor's
    takeover (its ``took_over`` log line: the seconds of each phase); restart the killed one."""
    victim = group.active()
    survivors = [r for n, r in group.replicas.items() if n != victim]
    before = [metric(r, "cmdb_worker_events_consumed_total") for r in survivors]
    killed_at = time.monotonic()
    group.replicas[victim].kill()
    while all(metric(r, "cmdb_worker_events_consumed_total") <= b
              for r, b in zip(survivors, before, strict=True)):  # fmt: skip
        if time.monotonic() - killed_at > 180:
            tails = "\n".join(replica.tail() for replica in survivors)
            raise TimeoutError(f"no replica took over within 180 s; the survivors' logs:\n{tails}")
        time.sleep(POLL_SECONDS)
    seconds = time.monotonic() - killed_at
    takeover = max((_last_takeover(r) for r in survivors), key=lambda t: t.get("seconds", 0.0))
    group.start(victim)
    time.sleep(SETTLE_SECONDS)
    return seconds, takeover


def _last_takeover(replica: WorkerProcess) -> dict[str, float]:
    """The timings of the replica's last ``took_over`` log line (empty if it never took over)."""
    took_over = [e for e in replica.log_events() if e.get("event") == "took_over"]
    last = took_over[-1] if took_over else {}
    return {key: float(value) for key, value in last.items() if key.endswith("seconds")}


def measure(
    bootstrap: str, repetitions: int = 7, rate: float = 200.0, cis: int = 0
) -> dict[str, Any]:
    topics = WorkerTopics(f"bench-failover-{uuid.uuid4().hex[:8]}")
    create_topics(bootstrap, topics.inputs, partitions=PARTITIONS)
    create_topics(bootstrap, topics.outputs, compacted=[topics.lessons])
    state = _state_topic(bootstrap, topics, cis)
    with tempfile.TemporaryDirectory(prefix="cmdb-failover-") as scratch:
        group = Group(bootstrap, topics, Path(scratch), state)
        feed = SteadyStream(bootstrap, topics.discovery, rate)
        try:
            for name in REPLICAS:
                group.start(name)
            feed.start()
            time.sleep(SETTLE_SECONDS)
            runs = [failover_once(group) for _ in range(repetitions)]
        finally:
            feed.halt.set()
            group.stop_all()
    seconds = [run[0] for run in runs]
    phases = sorted({phase for _, takeover in runs for phase in takeover})
    takeovers = {f"takeover_{phase}": [t.get(phase, 0.0) for _, t in runs] for phase in phases}
    return {"seconds": seconds, **takeovers,
            "replicas": len(REPLICAS), "rate": rate, "cis": cis,
            "session_timeout_seconds": SESSION_TIMEOUT_SECONDS, **summary(seconds)}  # fmt: skip


def _state_topic(bootstrap: str, topics: WorkerTopics, cis: int) -> str:
    """A fresh state topic, or one holding the changelog of ``cis`` CIs."""
    if cis:
        topic: str = produce_changelog(bootstrap, cis)["topic"]
        return topic
    create_topics(bootstrap, [topics.state], partitions=PARTITIONS, compacted=[topics.state])
    return topics.state


def summary(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 (nearest rank: with few runs the p99 is the slowest), min and max."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"p50": statistics.median(ordered), "p99": p99, "min": ordered[0], "max": ordered[-1]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--rate", type=float, default=200.0, help="input events per second")
    parser.add_argument("--cis", type=int, default=0, help="CIs in the state at start")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = measure(args.bootstrap, args.repetitions, args.rate, args.cis)
    scale.print_result(result, args.json)


if __name__ == "__main__":
    main()
