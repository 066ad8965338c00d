"""Kafka clients configured from settings: security, idempotent transactional producer, topics."""

import contextlib
import socket
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, MemberToRemove
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from cmdb_worker.worker.engine.ownership import Ownership
from cmdb_worker.worker.settings import ENV_PREFIX, Settings

COMPACTED = {"cleanup.policy": "compact"}
DEFAULT_REPLICAS = 3


def security_config(settings: Settings) -> dict[str, Any]:
    """The connection and authentication options every client shares."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "security_protocol": settings.security_protocol,
        "bootstrap_timeout_ms": int(settings.connect_timeout_seconds * 1000),
    }
    if settings.sasl_mechanism:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        password = settings.sasl_password
        config["sasl_plain_password"] = password.get_secret_value() if password else None
    if settings.ssl_cafile:
        config["ssl_cafile"] = str(settings.ssl_cafile)
    return config


def any_broker_listening(settings: Settings, timeout: float = 3.0) -> bool:
    """Whether any bootstrap server accepts a TCP connection: a network fault, or a login one?"""
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        with contextlib.suppress(OSError, ValueError):
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return True
    return False


def input_consumer(settings: Settings, assignor: AbstractPartitionAssignor) -> KafkaConsumer:
    """The group consumer of the input topics: manual commits through the producer's transaction.

    A static member (``group.instance.id`` is the replica's name, so a restarted pod resumes its
    membership) whose group is assigned by ``assignor`` alone (``worker.assignment``).
    """
    session_ms = int(settings.session_timeout_seconds * 1000)
    consumer = KafkaConsumer(
        **security_config(settings),
        group_id=settings.group_id,
        group_instance_id=settings.instance_id,
        partition_assignment_strategy=[assignor],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=settings.max_poll_records,
        client_id=f"{settings.group_id}-{settings.instance_id}",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=session_ms // HEARTBEATS_PER_SESSION,
    )
    _keep_a_finished_join(consumer)
    return consumer


def _keep_a_finished_join(consumer: KafkaConsumer) -> None:
    """Let the next ``poll`` take a group join that finished while no ``poll`` waited for it.

    kafka-python 3.0.12 runs each JoinGroup/SyncGroup round trip as a task on its IO thread. A
    ``poll`` that times out first leaves the task running; the next ``poll`` finds it finished
    and schedules a new one, dropping the assignment it brought. A leader's new JoinGroup starts
    another rebalance, so a leader that keeps missing its join (a standby waits mostly on the
    state topic, polling its input briefly) rebalances the group every second and the
    partitions never reach anyone (``tests/test_group_join.py``). Here the new round trip hands
    back the finished one's assignment instead of sending a JoinGroup; the assignment is
    forgotten once the join is completed with it.
    """
    coordinator = consumer._coordinator
    join_and_sync = coordinator._do_join_and_sync_async
    complete = coordinator._on_join_complete_async
    unclaimed: list[bytes] = []

    async def join_once() -> bytes:
        if unclaimed:
            return unclaimed.pop()
        assignment: bytes = await join_and_sync()
        unclaimed.append(assignment)
        return assignment

    async def on_join_complete(*args: Any, **kwargs: Any) -> Any:
        unclaimed.clear()
        return await complete(*args, **kwargs)

    coordinator._do_join_and_sync_async = join_once
    coordinator._on_join_complete_async = on_join_complete


LEAVE_TIMEOUT_MS = 5000
"""Leaving is a courtesy that saves a session's wait: never worth the shutdown grace."""
HEARTBEATS_PER_SESSION = 10
"""Members learn of a rebalance (a replica's session expired) at their next heartbeat: a tenth
of the session keeps that part of a failover near one second."""


def leave_group(settings: Settings) -> None:
    """Take this static member out of the group now (KIP-345: a static member's ``close`` sends
    no LeaveGroup, so the group would otherwise wait a whole session before reassigning)."""
    quick = {"bootstrap_timeout_ms": LEAVE_TIMEOUT_MS, "request_timeout_ms": LEAVE_TIMEOUT_MS}
    admin = KafkaAdminClient(**(security_config(settings) | quick))
    try:
        member = MemberToRemove(group_instance_id=settings.instance_id, reason="shutting down")
        admin.remove_group_members(settings.group_id, [member])
    finally:
        admin.close()


def state_consumer(settings: Settings) -> KafkaConsumer:
    """A group-less consumer that reads the whole changelog (every partition) from the start."""
    return KafkaConsumer(
        **security_config(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=5000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )


def transactional_producer(settings: Settings) -> KafkaProducer:
    """acks=all, idempotent, transactional: a batch's effects and its offsets commit as one."""
    producer = KafkaProducer(
        **security_config(settings),
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id(settings),
        linger_ms=1000,  # records wait for the commit (see ``commit``) or a full batch
        batch_size=1024 * 1024,  # fewer, larger batches: ~1.5x events/s (bench/throughput.py)
        compression_type=None,
        max_request_size=8 * 1024 * 1024,
    )
    _never_bump_the_epoch(producer)
    return producer


def _never_bump_the_epoch(producer: KafkaProducer) -> None:
    """Make a stale-epoch error fatal, as a fenced producer's is, instead of recovered.

    kafka-python 3.0.12 recovers a transactional producer from such an error (KIP-360) by
    bumping its epoch and, when the broker refuses the bump because another producer holds the
    transactional id now, by asking for a fresh producer id, which fences that other producer:
    an active paused past its session and resumed would fence the replica that took over from
    it (``tests/test_run_replicas.py`` saw both exit). Records left in the accumulator would also
    be sent under the new epoch, outside their transaction. Fatal, the process exits 1 and is
    restarted; a standby takes over.
    """
    producer._transaction_manager._supports_epoch_bump = lambda: False


def transactional_id(settings: Settings) -> str:
    """One id for the active role, whichever replica holds it: whoever takes the role over
    initialises it, which fences the previous holder and ends its open transaction."""
    return f"{settings.group_id}-active"


def commit(producer: KafkaProducer) -> None:
    """Commit the producer's transaction, and let the next one's records wait for its commit.

    To commit, kafka-python (3.0.12) begins a flush of its record accumulator and never ends
    it, so from the first commit on every record is ready at once, as if ``linger_ms`` were 0:
    nearly every send opened a new batch and woke the sender thread (~13% of the loop's time
    under pyinstrument in bench/throughput.py, and twice the sender thread's CPU). The
    transaction's batches are all acknowledged once the commit returns; ending the flush
    then only resets that flag.
    """
    producer.commit_transaction()
    accumulator = producer._accumulator
    if accumulator.flush_in_progress():
        accumulator.await_flush_completion(timeout=FLUSH_END_TIMEOUT_SECONDS)


FLUSH_END_TIMEOUT_SECONDS = 30.0


class TopicError(RuntimeError):
    """An existing topic the worker cannot safely use (the message says which and how to fix it)."""


def prepare_topics(settings: Settings) -> list[str]:
    """Refuse a state topic that is not compacted; create missing topics (if allowed).

    Returns the names it created.
    """
    admin = KafkaAdminClient(**security_config(settings))
    try:
        existing = set(admin.list_topics())
        if settings.topic_state in existing:
            _require_compacted(admin, settings.topic_state)
        missing = [name for name in all_topics(settings) if name not in existing]
        created: list[str] = []
        if settings.create_topics and missing:
            replicas = replication_factor(settings, len(admin.describe_cluster()["brokers"]))
            _create(admin, {name: _topic_spec(settings, name, replicas) for name in missing})
            created = missing
        require_owner_partitions(settings, _partition_counts(admin, settings.input_topics))
        return created
    finally:
        admin.close()


def require_owner_partitions(settings: Settings, partitions: dict[str, int]) -> None:
    """Refuse input topics whose partition count is not ``owner_partitions`` (when above 1):
    lesson ids are numbered per owner partition, which must be the partition events arrive on."""
    if settings.owner_partitions == 1:
        return
    wrong = {
        topic: count for topic, count in partitions.items() if count != settings.owner_partitions
    }
    if wrong:
        found = ", ".join(f"{topic} has {count}" for topic, count in sorted(wrong.items()))
        raise TopicError(
            f"{ENV_PREFIX}OWNER_PARTITIONS={settings.owner_partitions}, but the input topics "
            f"must have that many partitions ({found}): set it to their partition count, or "
            "to 1 to number lessons in one sequence"
        )


def _partition_counts(admin: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """The partition count of each of ``topics`` that exists."""
    described = admin.describe_topics(topics)
    return {
        topic["name"]: len(topic["partitions"]) for topic in described if not topic["error_code"]
    }


def ownership(partitions: int) -> Ownership:
    """``partitions`` owner partitions, as the producers' default partitioner places keys."""
    return Ownership(partitions, murmur2)


def replication_factor(settings: Settings, brokers: int) -> int:
    """The setting when given, else ``min(3, brokers)``: as durable as the cluster allows."""
    return settings.replication_factor or min(DEFAULT_REPLICAS, max(brokers, 1))


def min_insync_replicas(replicas: int) -> int:
    """One less than the replicas (at least 1): acks=all writes survive one broker down."""
    return max(replicas - 1, 1)


def _require_compacted(admin: KafkaAdminClient, topic: str) -> None:
    resource = ConfigResource("TOPIC", topic, {"cleanup.policy": None})
    configs = admin.describe_configs([resource], config_filter="all")["topic"][topic]
    policy = configs["cleanup.policy"]["value"]
    if policy != "compact":
        raise TopicError(
            f"the state topic {topic!r} has cleanup.policy={policy}, not compact: the changelog "
            "would lose state to retention. Fix it with: kafka-configs.sh --alter --entity-type "
            f"topics --entity-name {topic} --add-config cleanup.policy=compact"
        )


def all_topics(settings: Settings) -> list[str]:
    """Every topic the worker reads or writes."""
    outputs = [
        settings.topic_findings,
        settings.topic_lessons,
        settings.topic_dlq,
        settings.topic_state,
        *([settings.topic_tickets] if settings.tickets else []),
    ]
    return [*settings.input_topics, *outputs]


def _topic_spec(settings: Settings, name: str, replicas: int) -> dict[str, Any]:
    configs = {"min.insync.replicas": str(min_insync_replicas(replicas))}
    if name in (settings.topic_lessons, settings.topic_state):
        configs.update(COMPACTED)
    return {
        "num_partitions": settings.topic_partitions,
        "replication_factor": replicas,
        "configs": configs,
    }


def _create(admin: KafkaAdminClient, topics: dict[str, dict[str, Any]]) -> None:
    """Create ``topics``; wait until every partition has a leader, so producers send at once."""
    with contextlib.suppress(TopicAlreadyExistsError):  # another replica was first
        admin.create_topics(topics, wait_for_metadata=True)
