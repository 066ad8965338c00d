"""A min-heap of deadlines, so a tick costs O(k log n) for the k entries that fall due.

Rescheduling pushes a new entry and leaves the old one in the heap; an entry is honoured only
if it is still the key's current deadline. The heap is rebuilt when dead entries pile up.
"""

import heapq
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
        if self._batching:
            return
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

    def cancel(self, key: str, kind: DeadlineKind) -> None:
        self._current.pop((key, kind), None)

    def pop_due(self, now: datetime) -> list[tuple[str, DeadlineKind]]:
        """Every (key, kind) whose deadline is strictly before ``now``, earliest first."""
        limit = now.timestamp()
        due: list[tuple[str, DeadlineKind]] = []
        while self._heap and self._heap[0][0] < limit:
            at, kind, key = heapq.heappop(self._heap)
            if self._current.get((key, kind)) == at:
                del self._current[(key, kind)]
                due.append((key, kind))
        return due

    def _rebuild(self) -> None:
        self._heap = [(at, kind, key) for (key, kind), at in self._current.items()]
        heapq.heapify(self._heap)
