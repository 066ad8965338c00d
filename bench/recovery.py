"""Recovery: time from start to ready when the changelog holds N CIs, and the changelog's size.

    python -m bench.recovery --bootstrap HOST:PORT [--cis 1000000] [--repetitions 3]

The state is built as ``bench.scale`` builds it (N CIs, ~3N relations, through ``Engine``);
``changelog.changed_entries`` turns it into changelog records (one per CI, and one per
remembered event identity: each CI's observation), which are produced to a fresh compacted
topic of 3 partitions. Then, each repetition, ``cmdb-worker run`` is started on that state
topic (fresh group, empty inputs) and timed from process start until /readyz answers 200;
the worker's own ``state_rebuilt`` log line gives the rebuild alone, and its VmHWM the peak
memory. The topic's size on the broker comes from the admin API (``describe_log_dirs``).
"""

import argparse
import gc
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer

from bench import scale
from bench.throughput import PARTITIONS, start_worker
from cmdb_worker.worker import changelog
from tests.kafka_broker import create_topics


def produce_changelog(bootstrap: str, n_cis: int) -> dict[str, Any]:
    """Build N CIs, produce their changelog to a new compacted topic; returns what it did."""
    engine, build_seconds = scale.build(n_cis, identities=True)
    started = time.perf_counter()
    entries = changelog.changed_entries(engine)
    encode_seconds = time.perf_counter() - started
    cis = engine.state.cmdb.graph.number_of_nodes()
    relations = engine.state.cmdb.graph.number_of_edges()
    del engine
    topic = f"bench-{uuid.uuid4().hex[:8]}.state"
    create_topics(bootstrap, [topic], partitions=PARTITIONS, compacted=[topic])
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024,
                             max_request_size=8 * 1024 * 1024, acks=1)  # fmt: skip
    started = time.perf_counter()
    value_bytes = 0
    for key, value in entries:
        value_bytes += len(value or b"")
        producer.send(topic, key=key.encode(), value=value)
    producer.flush()
    producer.close()
    produce_seconds = time.perf_counter() - started
    records = len(entries)
    del entries
    gc.collect()
    return {"topic": topic, "cis": cis, "relations": relations, "records": records,
            "value_mib": value_bytes / 2**20, "build_seconds": build_seconds,
            "encode_seconds": encode_seconds, "produce_seconds": produce_seconds}  # fmt: skip


def topic_bytes(bootstrap: str, topic: str) -> int | None:
    """Bytes of the topic's partitions on the broker (``describe_log_dirs``), if it answers."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        answer = admin.describe_log_dirs([topic])
    finally:
        admin.close()
    return _sum_sizes(answer, topic)


def _sum_sizes(node: Any, topic: str, inside: bool = False) -> int | None:
    """Sum every partition ``size`` under the topic's entries, whatever the answer's nesting."""
    if isinstance(node, dict):
        name = node.get("name", node.get("topic"))
        inside = inside or name == topic
        total: int | None = None
        for key, value in node.items():
            if inside and key in ("partition_size", "size") and isinstance(value, int):
                total = (total or 0) + value
            else:
                found = _sum_sizes(value, topic, inside)
                if found is not None:
                    total = (total or 0) + found
        return total
    if isinstance(node, list | tuple):
        sizes = [s for s in (_sum_sizes(item, topic, inside) for item in node) if s is not None]
        return sum(sizes) if sizes else None
    return None


def restart(bootstrap: str, state_topic: str, log_dir: Path) -> dict[str, float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    worker = start_worker(bootstrap, prefix, log_dir, inputs=None, state_topic=state_topic)
    try:
        ready = worker.wait_ready(timeout=1800)
        peak = worker.peak_rss_mib()
    finally:
        worker.stop()
    rebuilt = worker.log_events("state_rebuilt")
    return {"ready_s": ready, "rebuild_s": float(rebuilt[-1]["seconds"]) if rebuilt else 0.0,
            "rebuilt_cis": float(rebuilt[-1]["cis"]) if rebuilt else 0.0,
            "peak_rss_mib": peak}  # fmt: skip


def measure(bootstrap: str, n_cis: int, repetitions: int = 3) -> dict[str, Any]:
    made = produce_changelog(bootstrap, n_cis)
    result: dict[str, Any] = {**made, "topic_bytes": topic_bytes(bootstrap, made["topic"]),
                              "ready_s": [], "rebuild_s": [], "peak_rss_mib": [],
                              "rebuilt_cis": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(repetitions):
            for key, value in restart(bootstrap, made["topic"], Path(scratch)).items():
                result[key].append(value)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--cis", type=int, default=1_000_000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = measure(args.bootstrap, args.cis, args.repetitions)
    scale.print_result(result, args.json)


if __name__ == "__main__":
    main()
