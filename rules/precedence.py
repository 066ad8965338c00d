"""Which source wins an attribute: ``identification.precedence`` ranks sources per attribute.

A source lower in the ranking (or unlisted) never overwrites a value a higher one has given; its
value counts only while no higher source holds one. Unlisted sources rank last, the most recent
first. Each source's own value is kept, so a higher source retracting its value (reporting the
attribute as null) leaves the next one's in force, and precedence survives a restart.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cmdb_worker.rules.findings import make_finding
from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Finding, Reason
from cmdb_worker.schemas.records import CIRecord

RANKED_ATTRIBUTES = ("owner", "criticality", "business_service")
"""Attributes whose value each source gives is kept per source."""
ATTRIBUTE = "attributes."
"""Prefix of an ``attributes`` entry's per-source values, kept only when ``*`` is ranked."""
CONFLICTING_ATTRIBUTES = ("owner", "criticality")
"""Attributes on which sources disagreeing is a finding."""


def winner(
    ranking: list[str], values: Mapping[str, Any], seen: Mapping[str, datetime]
) -> str | None:
    """The source whose value is in force: the first listed, else the latest unlisted."""

    def rank(source: str) -> tuple[int, float]:
        if source in ranking:
            return ranking.index(source), 0.0
        return len(ranking), -seen[source].timestamp()

    return min(values, key=rank) if values else None


def value_in_force(ranking: list[str], record: CIRecord, attribute: str) -> Any:
    """The value of ``attribute`` its most trusted source gives (None if no source does)."""
    values = record.reported.get(attribute, {})
    source = winner(ranking, values, record.seen_by)
    return values[source] if source else None


def disagreement(record: CIRecord, attribute: str) -> dict[str, Any] | None:
    """Each source's value of ``attribute`` when they are not all the same, else None."""
    values = record.reported.get(attribute, {})
    return dict(sorted(values.items())) if len(set(values.values())) > 1 else None


def ci_attribute_conflict(
    policy: Policy, record: CIRecord, attribute: str, values: dict[str, Any], now: datetime
) -> Finding:
    current = getattr(record, attribute)
    holders = {source: value for source, value in values.items() if value == current}
    chosen = winner(policy.identification.ranking(attribute) or [], holders, record.seen_by)
    reason = Reason(
        code="sources_disagree",
        detail=f"{attribute} of {record.id}: "
        + ", ".join(f"{source} says {value!r}" for source, value in values.items())
        + f"; {chosen} wins with {current!r}",
    )
    return make_finding(
        "ci_attribute_conflict", record.id, "warning", now, f"{attribute}={values}", [reason],
        attribute=attribute, values=values, winner=chosen, value=current,
    )  # fmt: skip
