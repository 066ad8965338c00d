"""When dependency edges appeared and disappeared (event time), so the blast radius can be
judged as the graph stood at a past moment.

Only edges that changed are kept, per origin CI, as validity intervals: an edge that arrived
with its origin's first sighting and is still there needs none (it is valid from the origin's
``first_seen``), so a graph loaded once costs nothing here. Intervals are dropped once they
end before the retention horizon (``history.edge_retention``); a deadline per origin fires
when its oldest interval expires.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

from cmdb_worker.schemas.history import ChangedEdges, Interval
from cmdb_worker.worker.engine.deadlines import DeadlineIndex, DeadlineKind

EDGES_EXPIRE: DeadlineKind = "edges_expire"


class EdgeHistory:
    """The validity intervals of changed edges, by origin (``ChangedEdges``), indexed by target."""

    def __init__(self, retention: timedelta, deadlines: DeadlineIndex) -> None:
        self.retention = retention
        self.deadlines = deadlines
        self.origins: dict[str, ChangedEdges] = {}
        """Kind ``edge_history``, keyed by origin CI id."""
        self.into: dict[str, set[str]] = {}
        """Target -> origins with a changed edge to it; derived (see ``index``)."""
        self.dirty: set[str] = set()

    def added(self, origin: str, target: str, at: datetime, first_seen: datetime | None) -> None:
        """An edge appeared at ``at``; nothing is kept when it came with the origin's first
        sighting (and never changed before)."""
        known = self._known(origin, target)
        if not known and first_seen is not None and at <= first_seen:
            return
        self._intervals(origin, target).append((at, None))
        self._changed(origin)

    def removed(self, origin: str, target: str, at: datetime, first_seen: datetime | None) -> None:
        """An edge disappeared at ``at``: its open interval (or the implicit one) ends."""
        intervals = self._intervals(origin, target)
        since = intervals.pop()[0] if intervals and intervals[-1][1] is None else first_seen
        intervals.append((since, at))
        self._changed(origin)

    def valid(self, origin: str, target: str, at: datetime, first_seen: datetime | None) -> bool:
        """Whether the edge stood at ``at``; ``first_seen`` (its origin's) for an edge that is
        in the graph now with no intervals kept."""
        known = self._known(origin, target)
        if not known:
            return first_seen is None or first_seen <= at
        return any(_covers(interval, at) for interval in known)

    def origins_into(self, target: str) -> Iterator[str]:
        """Origins of every changed edge into ``target`` (some may be gone from the graph)."""
        yield from self.into.get(target, ())

    def expire(self, origin: str, now: datetime) -> None:
        """Drop what ended before the horizon, and intervals still open from before it."""
        changed = self.origins.get(origin)
        if changed is None:
            return
        horizon = now - self.retention
        for target in list(changed.targets):
            self._set(changed, target, _needed(changed.targets[target], horizon))
        self._changed(origin)

    def index(self) -> None:
        """Rebuild the by-target index and re-arm every expiry, after a restore."""
        self.into = {}
        for changed in self.origins.values():
            for target in changed.targets:
                self.into.setdefault(target, set()).add(changed.origin)
            self._schedule(changed)

    def take_dirty(self) -> set[str]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    def _known(self, origin: str, target: str) -> list[Interval]:
        changed = self.origins.get(origin)
        return changed.targets.get(target, []) if changed else []

    def _intervals(self, origin: str, target: str) -> list[Interval]:
        changed = self.origins.setdefault(origin, ChangedEdges(origin=origin))
        self.into.setdefault(target, set()).add(origin)
        return changed.targets.setdefault(target, [])

    def _set(self, changed: ChangedEdges, target: str, kept: list[Interval]) -> None:
        if kept:
            changed.targets[target] = kept
            return
        del changed.targets[target]
        origins = self.into.get(target, set())
        origins.discard(changed.origin)
        if not origins:
            self.into.pop(target, None)

    def _changed(self, origin: str) -> None:
        self.dirty.add(origin)
        changed = self.origins[origin]
        if changed.targets:
            self._schedule(changed)
        else:
            del self.origins[origin]
            self.deadlines.cancel(origin, EDGES_EXPIRE)

    def _schedule(self, changed: ChangedEdges) -> None:
        moments = [moment for ints in changed.targets.values() for moment in _expiry_moments(ints)]
        if moments:
            self.deadlines.schedule(changed.origin, EDGES_EXPIRE, min(moments) + self.retention)


def _covers(interval: Interval, at: datetime) -> bool:
    since, until = interval
    return (since is None or since <= at) and (until is None or at < until)


def _needed(intervals: list[Interval], horizon: datetime) -> list[Interval]:
    """The intervals still needed to answer for times from ``horizon`` on, an open one that
    began before it clipped to it; none once all that is left is an edge open since the horizon
    or before (the implicit interval from the origin's first sighting says as much)."""
    kept = [_clipped(interval, horizon) for interval in intervals if _ends_after(interval, horizon)]
    return kept if any(_tells(interval, horizon) for interval in kept) else []


def _ends_after(interval: Interval, horizon: datetime) -> bool:
    return interval[1] is None or interval[1] >= horizon


def _clipped(interval: Interval, horizon: datetime) -> Interval:
    since, until = interval
    return (horizon, None) if until is None and (since is None or since < horizon) else interval


def _tells(interval: Interval, horizon: datetime) -> bool:
    since, until = interval
    return until is not None or (since is not None and since > horizon)


def _expiry_moments(intervals: list[Interval]) -> list[datetime]:
    """When each interval's news starts to age: its end, or the start of an open one."""
    return [moment for since, until in intervals if (moment := until or since) is not None]
