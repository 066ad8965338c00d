"""A group join that completes while no poll waits for it is kept, not sent again.

kafka-python 3.0.12 runs the JoinGroup/SyncGroup round trip on its IO thread; a ``poll`` whose
timeout ends first leaves it running, and the next ``poll`` found it finished and sent a new
JoinGroup, dropping the assignment it had brought. For the group's leader a new JoinGroup starts
a new rebalance, so a leader that kept missing its join (a standby polls its input for 50 ms
between waits on the state topic) rebalanced the group every second and never took the
partitions over: the failover that never came (``bench/failover.py``, 1 run in ~30).
``kafka_clients.input_consumer`` keeps such a finished join for the next ``poll``.
"""

import time

import pytest
from kafka import KafkaConsumer

from cmdb_worker.worker import kafka_clients
from cmdb_worker.worker.assignment import ActiveStandbyAssignor
from cmdb_worker.worker.settings import Settings
from tests.kafka_broker import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def _generation(consumer: KafkaConsumer) -> int:
    generation: int = consumer._coordinator._generation.generation_id
    return generation


def _join_sent(consumer: KafkaConsumer) -> bool:
    return consumer._coordinator._join_task is not None


def test_a_join_that_finished_between_polls_is_taken_not_sent_again(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """The sole member (so the leader) polls just long enough to send its JoinGroup, lets the
    round trip finish while it does not poll, then polls: it holds the partitions in the
    group's first generation, with no second JoinGroup and no second rebalance."""
    topic = f"{unique_name}.in"
    create_topics(kafka_bootstrap, [topic], partitions=2)
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, group_id=f"{unique_name}-group", instance_id="r1"
    )
    consumer = kafka_clients.input_consumer(settings, ActiveStandbyAssignor(lambda: True))
    consumer.subscribe([topic])
    try:
        while topic not in consumer._coordinator._metadata_snapshot:
            time.sleep(0.02)  # else the leader assigns nothing and rejoins once the topic is known
        while not _join_sent(consumer):
            consumer.poll(timeout_ms=1)
        while not consumer._coordinator._join_task.is_done:
            time.sleep(0.02)  # the round trip ends on the IO thread, no poll waiting for it
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        assert {p.partition for p in consumer.assignment()} == {0, 1}
        assert _generation(consumer) == 1
    finally:
        consumer.close()
