"""A team's aggregates, kept per owner partition and summed on read.

The events of every partition add to their team's change outcomes, history of finished changes
and DORA totals, so each owner keeps its own partial of them (keyed ``<owner>/<team>``, the
partition of the change, or of the event's home key) and writes only that; a team's figures are
the sum of its partials, a record from before owner partitions (keyed by the team alone)
included.
"""

from collections.abc import Iterable
from typing import Protocol, Self, TypeVar


class Partial(Protocol):
    team: str

    def plus(self, other: Self) -> Self: ...


P = TypeVar("P", bound=Partial)


def by_team(partials: Iterable[P]) -> list[P]:
    """Each team's sum of partials, by team name."""
    teams: dict[str, P] = {}
    for partial in partials:
        known = teams.get(partial.team)
        teams[partial.team] = known.plus(partial) if known is not None else partial
    return [teams[team] for team in sorted(teams)]


def of_team(partials: Iterable[P], team: str) -> P | None:
    """The sum of ``team``'s partials; None if it has none."""
    summed = by_team(partial for partial in partials if partial.team == team)
    return summed[0] if summed else None
