"""Change conflicts: open changes planned at overlapping times on the same or related CIs.

Two open changes (``requested``, ``approved`` or ``implementing``) conflict when their planned
windows overlap and they share a CI, or a CI of one directly depends on a CI of the other (an
edge either way). Only the later requested of the two is flagged; the earlier one was judged
before the other existed. The worker hands in candidates from its index of open changes by CI,
so this never looks at every change. When an earlier change is moved onto a later one, the
later one is reassessed, so it carries the conflict whichever of the two moved.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import networkx as nx

from cmdb_worker.rules import windows
from cmdb_worker.rules.findings import make_finding
from cmdb_worker.schemas.changes import ChangeRecord
from cmdb_worker.schemas.findings import Finding, Reason
from cmdb_worker.schemas.ids import CIId

OPEN_STATES = frozenset({"requested", "approved", "implementing"})


@dataclass(frozen=True)
class Candidate:
    """Another change near this one in the graph, with its CIs resolved through aliases."""

    change: ChangeRecord
    cis: list[CIId]


@dataclass(frozen=True)
class Conflict:
    change_id: str
    detail: str


def is_open(change: ChangeRecord) -> bool:
    return change.request.state in OPEN_STATES


@dataclass(frozen=True)
class Conflicts:
    earlier: list[Conflict]
    """Changes requested before this one: this one carries the conflict."""
    later: list[str]
    """Ids of changes requested after this one: each of them carries the conflict."""


def find(
    graph: nx.DiGraph, change: ChangeRecord, cis: list[CIId], candidates: Iterable[Candidate]
) -> Conflicts:
    """The open changes that ``change`` (with ``cis``) conflicts with, earlier and later."""
    window = windows.planned_window(change.request)
    if window is None or not is_open(change):
        return Conflicts([], [])
    earlier, later = [], []
    for other in candidates:
        relation = _overlapping(graph, change, cis, other, window)
        if relation is None:
            continue
        if (other.change.requested_at, other.change.id) < (change.requested_at, change.id):
            earlier.append(Conflict(other.change.id, f"{other.change.id}: {relation}"))
        else:
            later.append(other.change.id)
    return Conflicts(sorted(earlier, key=lambda conflict: conflict.change_id), sorted(later))


def _overlapping(
    graph: nx.DiGraph, change: ChangeRecord, cis: list[CIId], other: Candidate,
    window: windows.Window,
) -> str | None:  # fmt: skip
    """How ``other`` relates to ``change``, if it is another open change planned meanwhile."""
    theirs = windows.planned_window(other.change.request)
    if other.change.id == change.id or not is_open(other.change) or theirs is None:
        return None
    return related(graph, cis, other.cis) if windows.overlap(window, theirs) else None


def related(graph: nx.DiGraph, mine: list[CIId], theirs: list[CIId]) -> str | None:
    """How two changes' CIs touch: a shared CI, or a direct dependency either way."""
    shared = sorted(set(mine) & set(theirs))
    if shared:
        return f"both change {shared[0]}"
    for ci in mine:
        for other in theirs:
            if graph.has_edge(ci, other):
                return f"{ci} depends on {other}"
            if graph.has_edge(other, ci):
                return f"{other} depends on {ci}"
    return None


def change_conflict(change: ChangeRecord, conflict: Conflict, now: datetime) -> Finding:
    """``change`` overlaps ``conflict.change_id``, which was requested before it."""
    reason = Reason(code="conflicting_change", detail=conflict.detail)
    return make_finding(
        "change_conflict", change.id, "warning", now, conflict.change_id, [reason],
        conflicts_with=conflict.change_id, owner=change.request.owner,
        planned_start=change.request.planned_start, planned_end=change.request.planned_end,
    )  # fmt: skip
