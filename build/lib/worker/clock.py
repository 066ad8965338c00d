"""The clocks rules are judged by: the wall clock live, or event time (as replay does)."""

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self, event_time: datetime | None = None) -> datetime:
        """The time to judge by, told the time of the event being applied (if any)."""
        ...


class WallClock:
    def now(self, event_time: datetime | None = None) -> datetime:
        return datetime.now(UTC)


class EventClock:
    """Time is the latest event time seen so far; it never moves backwards."""

    def __init__(self) -> None:
        self.latest: datetime | None = None

    def now(self, event_time: datetime | None = None) -> datetime:
        if event_time is not None and (self.latest is None or event_time > self.latest):
            self.latest = event_time
        return self.latest or datetime.now(UTC)
