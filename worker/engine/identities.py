"""The identities of applied events, remembered for a window so a redelivery has no effect.

They are kept in batches (closed every ``BATCH_SIZE`` events, or whenever the changelog takes
them), so the changelog holds one record per batch rather than one per event, and forgets a
batch whole once its newest event is older than the window.
"""

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

BATCH_SIZE = 1000


@dataclass(frozen=True)
class IdentityBatch:
    """Consecutively applied identities; ``id`` is the first one, ``newest`` the latest time."""

    id: str
    keys: tuple[str, ...]
    newest: datetime


class AppliedEvents:
    def __init__(self, window: timedelta) -> None:
        self.window = window
        self._known: set[str] = set()
        self._open: list[str] = []
        self._open_newest: datetime | None = None
        self._kept: deque[IdentityBatch] = deque()
        self._unreported: list[IdentityBatch] = []
        self._forgotten: list[str] = []

    def __contains__(self, key: str) -> bool:
        return key in self._known

    def remember(self, key: str, now: datetime) -> None:
        self._known.add(key)
        self._open.append(key)
        self._open_newest = max(now, self._open_newest or now)
        if len(self._open) >= BATCH_SIZE:
            self._close()
        self._forget_before(now - self.window)

    def take_changes(self) -> tuple[list[IdentityBatch], list[str]]:
        """Batches to record and batch ids to delete since the last call (for the changelog)."""
        self._close()
        changes = (self._unreported, self._forgotten)
        self._unreported, self._forgotten = [], []
        return changes

    def restore(self, batches: Iterable[IdentityBatch]) -> None:
        for batch in sorted(batches, key=lambda batch: batch.newest):
            self._known.update(batch.keys)
            self._kept.append(batch)

    @property
    def last_applied_at(self) -> datetime | None:
        """The time the latest remembered event was judged at: where an event clock resumes."""
        return self._open_newest or (self._kept[-1].newest if self._kept else None)

    def _close(self) -> None:
        if self._open and self._open_newest is not None:
            batch = IdentityBatch(self._open[0], tuple(self._open), self._open_newest)
            self._kept.append(batch)
            self._unreported.append(batch)
            self._open, self._open_newest = [], None

    def _forget_before(self, horizon: datetime) -> None:
        while self._kept and self._kept[0].newest < horizon:
            batch = self._kept.popleft()
            self._known.difference_update(batch.keys)
            self._forgotten.append(batch.id)
