"""CMDB hygiene: missing owners, orphans, merged duplicates, dangling relations, scan gaps."""

from datetime import datetime

from cmdb_worker.rules.findings import make_finding
from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Finding, Reason
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord


def needs_owner(policy: Policy, record: CIRecord) -> bool:
    return policy.governance.governs(record.environment) and not record.owner


def ci_no_owner(record: CIRecord, now: datetime, reported_by: str) -> Finding:
    reason = Reason(
        code="no_owner",
        detail=f"{record.id} is in governed environment {record.environment!r} "
        f"and no source reports an owner (last report from {reported_by})",
    )
    return make_finding("ci_no_owner", record.id, "warning", now, "", [reason])


def expects_relations(policy: Policy, record: CIRecord) -> bool:
    return record.type in policy.hygiene.relations_expected_for


def ci_orphan(policy: Policy, record: CIRecord, now: datetime) -> Finding:
    reason = Reason(
        code="no_relations",
        detail=f"type {record.type!r} is expected to have relations; {record.id} has none "
        f"after {policy.hygiene.orphan_grace} of grace",
    )
    first_seen = record.first_seen.isoformat() if record.first_seen else ""
    return make_finding("ci_orphan", record.id, "warning", now, first_seen, [reason])


def ci_duplicate_merged(
    kept: CIRecord, merged: CIId, identifiers: dict[str, str], now: datetime, source: str
) -> Finding:
    shared = ", ".join(f"{key}={value}" for key, value in sorted(identifiers.items()))
    reason = Reason(
        code="strong_identifier_match",
        detail=f"{source} reported {merged} with {shared}, which {kept.id} already holds; "
        f"{merged} is now an alias of {kept.id}",
    )
    return make_finding(
        "ci_duplicate_merged",
        kept.id,
        "info",
        now,
        merged,
        [reason],
        merged_id=merged,
        shared_identifiers=identifiers,
        aliases=sorted(kept.aliases),
    )


def relation_dangling(
    pointing: CIId, target: CIId, relation_types: list[str], now: datetime, retired_at: datetime,
    reported_at: datetime | None = None,
) -> Finding:  # fmt: skip
    """``reported_at``: when a source named the retired target again (each report is raised)."""
    again = f", reported again at {reported_at.isoformat()}" if reported_at else ""
    reason = Reason(
        code="target_retired",
        detail=f"{pointing} {'/'.join(relation_types)} {target}, "
        f"which was retired at {retired_at.isoformat()}{again}",
    )
    return make_finding(
        "relation_dangling", pointing, "warning", now,
        f"{target}@{retired_at.isoformat()}{again}", [reason],
        target=target, relation_types=relation_types, reported_at=reported_at,
    )  # fmt: skip


def ci_phantom(
    policy: Policy, record: CIRecord, referenced_by: list[CIId], now: datetime
) -> Finding:
    since = record.referenced_at.isoformat() if record.referenced_at else ""
    reason = Reason(
        code="never_observed",
        detail=f"{record.id} exists only as the target of relations (from "
        f"{', '.join(referenced_by) or 'no CI any more'}) since {since}; no source has observed "
        f"it itself within {policy.hygiene.phantom_grace}",
    )
    return make_finding(
        "ci_phantom", record.id, "warning", now, since, [reason],
        referenced_by=referenced_by, referenced_since=record.referenced_at,
    )  # fmt: skip


def ci_missing_from_scan(
    record: CIRecord, source: str, started_at: datetime, now: datetime
) -> Finding:
    seen = record.seen_by.get(source)
    reason = Reason(
        code="not_in_scan",
        detail=f"{source} last saw {record.id} at {seen.isoformat() if seen else 'never'}, "
        f"not in its scan started {started_at.isoformat()}",
    )
    return make_finding(
        "ci_missing_from_scan",
        record.id,
        "warning",
        now,
        f"{source}@{started_at.isoformat()}",
        [reason],
        source=source,
        scan_started_at=started_at,
        last_seen_by_source=seen,
    )
