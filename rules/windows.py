"""When a change may happen: its planned window (with slack) and the policy's freeze windows.

A planned window is ``[planned_start, planned_end]``; a change that gives only one of them
plans an instant. Freeze windows and overlaps are half-open, ``[start, end)``: a freeze that ends
at midnight does not hold at midnight, and a change ending as another begins does not overlap it.
A deploy is judged against its change's window inclusively, with the slack on both sides.
"""

from datetime import datetime

from cmdb_worker.rules.policy import FreezeWindow, Policy
from cmdb_worker.schemas.changes import ChangeVersion
from cmdb_worker.schemas.events import ChangeFields

Window = tuple[datetime, datetime]


def planned_window(change: ChangeFields | ChangeVersion) -> Window | None:
    """The change's planned window, or None when it plans no time at all."""
    start = change.planned_start or change.planned_end
    end = change.planned_end or change.planned_start
    return (start, end) if start and end else None


def overlap(first: Window, second: Window) -> bool:
    """Whether two half-open windows share a moment (an instant window is that one moment)."""
    return _starts_before_end(first[0], second) and _starts_before_end(second[0], first)


def _starts_before_end(moment: datetime, window: Window) -> bool:
    return moment < window[1] or moment == window[0] == window[1]


def within_planned_window(policy: Policy, change: ChangeVersion, at: datetime) -> bool:
    """Whether ``at`` is inside the change's planned window widened by the policy's slack."""
    window = planned_window(change)
    if window is None:
        return True
    slack = policy.governance.window_slack
    return window[0] - slack <= at <= window[1] + slack


def freezes_at(policy: Policy, environment: str | None, at: datetime) -> list[FreezeWindow]:
    """The freeze windows holding at ``at`` in ``environment``."""
    return [
        freeze for freeze in policy.governance.freezes_of(environment)
        if freeze.start <= at < freeze.end
    ]  # fmt: skip


def freezes_during(
    policy: Policy, environments: set[str | None], window: Window
) -> list[FreezeWindow]:
    """The freeze windows that a change planned for ``window`` in ``environments`` runs into."""
    found = {
        freeze.name: freeze
        for environment in sorted(environments, key=str)
        for freeze in policy.governance.freezes_of(environment)
        if overlap(window, (freeze.start, freeze.end))
    }
    return list(found.values())


def describe(freeze: FreezeWindow) -> str:
    return f"{freeze.name} ({freeze.start.isoformat()} to {freeze.end.isoformat()})"
