"""The active role's bookkeeping between the rebalance callbacks and the loop: granted partitions
are taken over once, kept partitions change nothing, and partitions gone elsewhere end it."""

import threading
from typing import Any, cast

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.memory_kafka import MemoryBroker
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.settings import Settings
from cmdb_worker.worker.state_tail import StateTail
from cmdb_worker.worker.takeover import ActiveRole, ActiveRoleLost

PARTITIONS = {TopicPartition("cmdb.discovery", 0), TopicPartition("cmdb.discovery", 1)}
NOTHING = cast(Any, None)
"""What the loop passes and these paths never touch (consumer, engine, clock)."""


@pytest.fixture
def role() -> ActiveRole:
    return ActiveRole(
        Settings(), MemoryBroker(), cast(StateTail, object()), Metrics(CollectorRegistry())
    )


def active(role: ActiveRole) -> ActiveRole:
    """The role as it is once taken over (a producer on the shared transactional id)."""
    role.producer = cast(Any, object())
    return role


def test_a_standby_given_partitions_is_to_take_over(role: ActiveRole) -> None:
    """Partitions given to a standby mark the role granted, for the loop to take over."""
    role.assigned(PARTITIONS)
    assert role.granted.is_set() and not role.lost.is_set()


def test_a_grant_withdrawn_before_the_loop_acted_is_forgotten(role: ActiveRole) -> None:
    """A second rebalance that gives the partitions elsewhere clears a grant not yet acted on."""
    role.assigned(PARTITIONS)
    role.assigned(set())
    assert not role.granted.is_set()
    assert role.take_over_if_granted(NOTHING, NOTHING, NOTHING, lambda: None) is False


def test_the_active_keeping_its_partitions_changes_nothing(role: ActiveRole) -> None:
    """An eager rebalance revokes and gives back the active's partitions: no new takeover."""
    active(role).assigned(PARTITIONS)
    assert not role.granted.is_set() and not role.lost.is_set()


def test_the_active_losing_its_partitions_must_stop(role: ActiveRole) -> None:
    """Partitions gone elsewhere from the active end the loop with ActiveRoleLost."""
    active(role).assigned(set())
    with pytest.raises(ActiveRoleLost):
        role.take_over_if_granted(NOTHING, NOTHING, NOTHING, lambda: None)


def test_the_new_active_reports_itself_active_with_no_state_lag() -> None:
    """Taking over reads the state topic to its end: the replica reports itself active with a
    state lag of 0, not the lag it last had as a standby (which would keep an alert on it)."""
    settings, broker = Settings(), MemoryBroker()
    broker.prepare_topics(settings)
    registry = CollectorRegistry()
    metrics, engine = Metrics(registry), Engine(load_policy())
    tail = StateTail(broker.state_reader(settings), engine, threading.RLock())
    role = ActiveRole(settings, broker, tail, metrics)
    metrics.set_state_lag(5000)  # as it last stood by, behind
    role.assigned(PARTITIONS)
    consumer = broker.input_consumer(settings)
    assert role.take_over_if_granted(consumer, engine, EventClock(), lambda: None) is True
    assert registry.get_sample_value("cmdb_worker_active") == 1
    assert registry.get_sample_value("cmdb_worker_state_lag") == 0
