"""The clocks rules are judged by: the wall clock live, or event time (as replay does)."""

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self, event_time: datetime | None = None) -> datetime:
        """The time to judge by, told the time of the event being applied (if any)."""
        ...

    def at(self, event_time: datetime) -> datetime:
        """The time an event at ``event_time`` is judged by, the clock left where it is (an
        event refused by its handler must not move it: a restarted replica's would not)."""
        ...


class WallClock:
    def now(self, event_time: datetime | None = None) -> datetime:
        return datetime.now(UTC)

    def at(self, event_time: datetime) -> datetime:
        return self.now()


class EventClock:
    """Time is the latest event time seen so far; it never moves backwards."""

    def __init__(self) -> None:
        self.latest: datetime | None = None

    def now(self, event_time: datetime | None = None) -> datetime:
        self.latest = self.at(event_time) if event_time is not None else self.latest
        return self.latest or datetime.now(UTC)

    def at(self, event_time: datetime) -> datetime:
        return max(self.latest, event_time) if self.latest is not None else event_time
