"""Building findings: one constructor, deterministic ids (same facts, same id)."""

import hashlib
from datetime import datetime
from typing import Any

from cmdb_worker.schemas.findings import Finding, FindingData, FindingKind, Reason, Severity


def finding_id(kind: str, subject: str, fact: str) -> str:
    digest = hashlib.sha256(f"{kind}\x1f{subject}\x1f{fact}".encode()).hexdigest()
    return f"finding-{digest[:32]}"


def make_finding(
    kind: FindingKind,
    subject: str,
    severity: Severity,
    now: datetime,
    fact: str,
    reasons: list[Reason],
    **details: Any,
) -> Finding:
    """A finding about ``subject``; ``fact`` is what makes this occurrence distinct."""
    data = FindingData(
        kind=kind, subject=subject, severity=severity, detected_at=now, reasons=reasons, **details
    )
    return Finding(
        id=finding_id(kind, subject, fact),
        type=f"cmdb.finding.{kind}",
        time=now,
        subject=subject,
        data=data,
    )
