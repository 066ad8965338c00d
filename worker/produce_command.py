"""``cmdb-worker produce``: put event files on the worker's input topics, as the contract routes
and keys them, so a local broker can be fed the sample week (``make demo``) or any recording.

Each line (a message value, or ``{"key", "headers", "value"}`` as in replay) goes to the topic
its type belongs to, keyed by the contract's key: the CI id for discovery and CI/CD events, the
change id for changes, the lesson id for lesson updates, a scan's source for a scan
(``engine.ownership.home_key``). A line that does not decode goes to the
discovery topic unkeyed, where the worker dead-letters it, as it would from a real producer.
"""

import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from cmdb_worker.schemas.decode import InvalidEvent, decode
from cmdb_worker.schemas.events import InputEvent
from cmdb_worker.worker.engine.ownership import home_key
from cmdb_worker.worker.kafka_clients import prepare_topics, security_config
from cmdb_worker.worker.logs import get_logger
from cmdb_worker.worker.replay import STDIN, Message, message_from_line
from cmdb_worker.worker.settings import Settings

log = get_logger("cmdb_worker.produce")


def run_produce(settings: Settings, paths: list[Path]) -> int:
    """Create the worker's topics (as ``run`` would), send every line, print counts per topic."""
    prepare_topics(settings)
    producer = KafkaProducer(**security_config(settings), acks="all", enable_idempotence=True)
    sent: Counter[str] = Counter()
    try:
        for path in paths:
            for line in _lines(path):
                topic, message = route(settings, line)
                producer.send(topic, value=message.value, key=message.key, headers=message.headers)
                sent[topic] += 1
        producer.flush()
    finally:
        producer.close()
    log.info("produced", **sent)
    print("\n".join(f"{count:>6}  {topic}" for topic, count in sorted(sent.items())))
    return 0


def route(settings: Settings, line: str) -> tuple[str, Message]:
    """The topic and message (with the contract's key) for one line."""
    try:
        message = message_from_line(line)
        event = decode(message.value, message.headers, default_time=datetime.now(UTC))
    except InvalidEvent:
        return settings.topic_discovery, Message(line.encode("utf-8", "surrogateescape"))
    key = message.key or contract_key(event)
    return _topic(settings, event), Message(message.value, message.headers, key)


def _topic(settings: Settings, event: InputEvent) -> str:
    if event.type.startswith("dev.cdevents."):
        return settings.topic_cicd
    if event.type.startswith("itsm.change."):
        return settings.topic_changes
    if event.type == "cmdb.lesson.updated":
        return settings.topic_lesson_updates
    return settings.topic_discovery


def contract_key(event: InputEvent) -> bytes | None:
    key = home_key(event)
    return key.encode() if key else None


def _lines(path: Path) -> list[str]:
    handle = sys.stdin if path == STDIN else path.open(encoding="utf-8", errors="surrogateescape")
    with handle:
        return [line.rstrip("\r\n") for line in handle if line.strip()]
