"""Events per second of ``cmdb-worker run`` on generated discovery events through a real broker.

    python -m bench.run_throughput [--bootstrap HOST:PORT] [--events 100000] [--partitions 3]

``--events`` ``cmdb.ci.observed`` CloudEvents (5,000 services, databases and hosts; services
report their relations) are produced first to a fresh discovery topic keyed by CI id. Then the
worker starts (fresh group, fresh output topics, event clock) and is timed from ``/readyz``
answering (state rebuilt, partitions assigned: start-up excluded) until its group has committed
the end offset of every input partition. Without ``--bootstrap`` a private local broker is
started (``deploy/local/kafka.sh``) and stopped afterwards.
"""

import argparse
import json
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.kafka_broker import LocalKafkaBroker, create_topics
from tests.worker_process import (
    Message,
    WorkerProcess,
    WorkerTopics,
    produce,
    wait_caught_up,
    worker_env,
)

START = datetime(2026, 11, 20, tzinfo=UTC)
SERVICES, DATABASES, HOSTS = 3000, 1000, 1000


def observation(i: int, rng: random.Random) -> dict[str, Any]:
    """The i-th event: a service (with its relations), a database or a host, seen at START + i s."""
    kind = rng.choices(("service", "database", "host"), weights=(6, 2, 2))[0]
    n = rng.randrange({"service": SERVICES, "database": DATABASES, "host": HOSTS}[kind])
    ci: dict[str, Any] = {"type": kind, "name": f"{kind}-{n}", "owner": f"team-{n % 40}"}
    host = {"type": "host", "name": f"host-{n % HOSTS}"}
    database = {"type": "database", "name": f"database-{n % DATABASES}", "environment": "prod"}
    relations = []
    if kind != "host":
        ci["environment"] = "prod"
        relations.append({"type": "runs_on", "target": host})
    if kind == "service":
        relations.append({"type": "depends_on", "target": database})
    return {
        "specversion": "1.0", "id": f"obs-{i}", "source": "/discovery/bench",
        "type": "cmdb.ci.observed", "time": (START + timedelta(seconds=i)).isoformat(),
        "data": {"ci": ci, "relations": relations, "relations_complete": True},
    }  # fmt: skip


def messages(topic: str, count: int, seed: int = 11) -> Iterator[Message]:
    rng = random.Random(seed)
    for i in range(count):
        event = observation(i, rng)
        ci = event["data"]["ci"]
        environment = f"@{ci['environment']}" if "environment" in ci else ""
        key = f"{ci['type']}/{ci['name']}{environment}"
        yield Message(topic, json.dumps(event, separators=(",", ":")).encode(), key.encode())


def measure(bootstrap: str, events: int, partitions: int, logs: Path) -> dict[str, float]:
    topics = WorkerTopics(f"bench-run-{uuid.uuid4().hex[:8]}")
    create_topics(bootstrap, [*topics.inputs, *topics.outputs], partitions=partitions,
                  compacted=[topics.lessons, topics.state])  # fmt: skip
    produce(bootstrap, messages(topics.discovery, events), batch_size=1024 * 1024)
    env = worker_env(bootstrap, topics, topic_partitions=partitions, tick_seconds=5)
    started = time.monotonic()
    worker = WorkerProcess(env, logs / f"{topics.prefix}.log").start()
    try:
        worker.wait_ready(timeout=120)
        ready = time.monotonic()
        wait_caught_up(bootstrap, f"{topics.prefix}-group", topics.inputs, timeout=1800,
                       worker=worker)  # fmt: skip
        done = time.monotonic()
    finally:
        worker.terminate(30)
    consume = done - ready
    return {"events": events, "startup_seconds": ready - started, "consume_seconds": consume,
            "events_per_second": events / consume}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start a private one)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        broker = None if args.bootstrap else LocalKafkaBroker(Path(scratch) / "kafka")
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        try:
            result = measure(bootstrap, args.events, args.partitions, Path(scratch))
        finally:
            if broker is not None:
                broker.stop()
    print(json.dumps(result | {"partitions": args.partitions}))
    print(f"cmdb-worker run: {result['events_per_second']:,.0f} events/s "
          f"({args.events:,} discovery events in {result['consume_seconds']:.1f} s after a "
          f"{result['startup_seconds']:.1f} s start-up, {args.partitions} partitions)")  # fmt: skip


if __name__ == "__main__":
    main()
