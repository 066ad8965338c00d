"""A min-heap of deadlines, so a tick costs O(k log n) for the k entries that fall due.

Rescheduling pushes a new entry and leaves the old one in the heap; an entry is honoured only
if it is still the key's current deadline. The heap is rebuilt when dead entries pile up.
Re-arming a key from scratch (``rearming``) revives the entries whose time did not change
instead of pushing them again.
"""

import heapq
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Literal

DeadlineKind = Literal[
    "stale",
    "orphan",
    "phantom",
    "stale_too_long",
    "lesson_due",
    "source_silent",
    "suppression_ends",
    "timeline_expires",
    "edges_expire",
]
"""Every kind of deadline; each has its handler in ``apply.DEADLINE_HANDLERS`` (a test checks)."""
Entry = tuple[float, DeadlineKind, str]


class DeadlineIndex:
    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._current: dict[tuple[str, DeadlineKind], float] = {}
        self._batching = False
        self._revivable: dict[tuple[str, DeadlineKind], float] = {}

    def __len__(self) -> int:
        return len(self._current)

    def clear(self) -> None:
        """Forget every deadline, in place: the graph's bookkeeping holds this very index."""
        self._heap.clear()
        self._current.clear()

    def schedule(self, key: str, kind: DeadlineKind, deadline: datetime) -> None:
        at = deadline.timestamp()
        if self._current.get((key, kind)) == at:
            return
        self._current[(key, kind)] = at
        if self._batching or self._revivable.get((key, kind)) == at:
            return  # ordered later, or its entry is still in the heap
        heapq.heappush(self._heap, (at, kind, key))
        if len(self._heap) > 2 * len(self._current) + 1024:
            self._rebuild()

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Schedule many deadlines, then order the heap once (a rebuild re-arms every CI's)."""
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            self._rebuild()

    @contextmanager
    def rearming(self, key: str, kinds: tuple[DeadlineKind, ...]) -> Iterator[None]:
        """Cancel ``key``'s deadlines of ``kinds`` for the block to schedule again: one
        scheduled at the time it had takes its heap entry back, one not scheduled stays
        cancelled."""
        self._revivable = {}
        for kind in kinds:
            at = self._current.pop((key, kind), None)
            if at is not None:
                self._revivable[(key, kind)] = at
        try:
            yield
        finally:
            self._revivable = {}

    def cancel(self, key: str, kind: DeadlineKind) -> None:
        self._current.pop((key, kind), None)

    def pop_next(self, now: datetime) -> tuple[str, DeadlineKind] | None:
        """The (key, kind) whose deadline is earliest and strictly before ``now`` (ties by kind,
        then key), or None. One at a time, so that what its handler arms or cancels counts for
        the next: the order is the deadlines' own, however and whenever they were armed."""
        if self.next_due(now) is None:
            return None
        _, kind, key = heapq.heappop(self._heap)
        del self._current[(key, kind)]
        return key, kind

    def next_due(self, now: datetime) -> Entry | None:
        """The entry ``pop_next`` would take, left in place: several engines' deadlines can be
        fired in their common order."""
        limit = now.timestamp()
        while self._heap and self._heap[0][0] < limit:
            at, kind, key = self._heap[0]
            if self._current.get((key, kind)) == at:
                return self._heap[0]
            heapq.heappop(self._heap)
        return None

    def _rebuild(self) -> None:
        """The heap anew from the current deadlines (and those a ``rearming`` may revive)."""
        entries = itertools.chain(self._current.items(), self._revivable.items())
        self._heap = [(at, kind, key) for (key, kind), at in entries]
        heapq.heapify(self._heap)
