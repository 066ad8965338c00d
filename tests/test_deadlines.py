"""The deadline vocabulary and index: every kind has its handler, and only a key's latest
deadline falls due."""

from datetime import datetime, timedelta
from typing import get_args

from cmdb_worker.worker.engine.apply import DEADLINE_HANDLERS
from cmdb_worker.worker.engine.deadlines import DeadlineIndex, DeadlineKind
from tests.events import T0


def pop_due(index: DeadlineIndex, now: datetime) -> list[tuple[str, DeadlineKind]]:
    """Every deadline due by ``now``, in the order ``pop_next`` gives them."""
    return list(iter(lambda: index.pop_next(now), None))


def test_every_deadline_kind_has_exactly_its_handler() -> None:
    assert sorted(DEADLINE_HANDLERS) == sorted(get_args(DeadlineKind))


def test_only_the_latest_deadline_of_a_key_falls_due_and_a_cancelled_one_never() -> None:
    index = DeadlineIndex()
    index.schedule("ci-a", "stale", T0 + timedelta(hours=1))
    index.schedule("ci-a", "stale", T0 + timedelta(hours=3))  # moved later: the first is dead
    index.schedule("ci-b", "orphan", T0 + timedelta(hours=2))
    index.schedule("ci-c", "phantom", T0 + timedelta(minutes=30))
    index.cancel("ci-c", "phantom")
    assert pop_due(index, T0 + timedelta(hours=2, minutes=30)) == [("ci-b", "orphan")]
    assert pop_due(index, T0 + timedelta(hours=4)) == [("ci-a", "stale")]
    assert len(index) == 0


def test_rearming_a_key_keeps_its_unchanged_deadlines_without_growing_the_heap() -> None:
    """Re-armed from scratch, a deadline at its old time takes its heap entry back (no new
    entry), a moved one falls due at its new time only, and one not armed again never."""
    index = DeadlineIndex()
    index.schedule("ci-a", "stale", T0 + timedelta(hours=1))
    index.schedule("ci-a", "orphan", T0 + timedelta(hours=2))
    index.schedule("ci-a", "phantom", T0 + timedelta(hours=3))
    entries = len(index._heap)
    for _ in range(3):
        with index.rearming("ci-a", ("stale", "orphan", "phantom")):
            index.schedule("ci-a", "stale", T0 + timedelta(hours=1))
    assert len(index._heap) == entries
    with index.rearming("ci-a", ("stale", "orphan", "phantom")):
        index.schedule("ci-a", "stale", T0 + timedelta(hours=1))
        index.schedule("ci-a", "orphan", T0 + timedelta(hours=5))
    assert pop_due(index, T0 + timedelta(hours=4)) == [("ci-a", "stale")]
    assert pop_due(index, T0 + timedelta(hours=6)) == [("ci-a", "orphan")]
    assert len(index) == 0


def test_a_heap_rebuilt_while_rearming_keeps_the_entries_it_revives() -> None:
    """The heap may be rebuilt in the middle of a re-arm (dead entries piled up): a deadline
    revived after that still falls due."""
    index = DeadlineIndex()
    index.schedule("ci-a", "stale", T0 + timedelta(hours=1))
    with index.rearming("ci-a", ("stale",)):
        index._rebuild()
        index.schedule("ci-a", "stale", T0 + timedelta(hours=1))
    assert pop_due(index, T0 + timedelta(hours=2)) == [("ci-a", "stale")]
