"""``cmdb-worker policy diff``: what the same events conclude under a new policy versus a base.

Both policies replay the same files on fresh engines, judged as of the same moment. A finding is
known by its kind and subject; when several of one kind concern one subject (a change assessed
twice), the last one is its verdict. A verdict *appears* under the new policy, *disappears*, or
*changes* when severity, score, level or route differ.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker.replay_command import EXIT_USAGE, all_exist, replay_files, write_document

Verdict = dict[str, Any]
FindingKey = tuple[str, str]
Status = Literal["appears", "disappears", "changes"]
STATUSES: tuple[Status, ...] = ("appears", "disappears", "changes")
VERDICT_FIELDS = ("severity", "score", "level", "route")
"""What a verdict compares: a finding's severity, and a change assessment's score/level/route."""


@dataclass(frozen=True)
class Difference:
    status: Status
    kind: str
    subject: str
    before: Verdict | None
    after: Verdict | None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "before": self.before,
                "after": self.after}  # fmt: skip


def verdict(finding: Finding) -> Verdict:
    """The fields of a finding that a policy decides, in a fixed order."""
    fields = {"severity": finding.data.severity, **finding.details()}
    return {name: fields[name] for name in VERDICT_FIELDS if name in fields}


def verdicts(findings: Iterable[Finding]) -> dict[FindingKey, Verdict]:
    """The last verdict per (kind, subject)."""
    return {(finding.kind, finding.data.subject): verdict(finding) for finding in findings}


def diff_findings(base: Iterable[Finding], new: Iterable[Finding]) -> list[Difference]:
    """Verdicts that appear, disappear or change, in that order, each sorted by kind and subject."""
    before, after = verdicts(base), verdicts(new)
    differences = [
        Difference(_status(before.get(key), after.get(key)), *key, before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]
    return sorted(differences, key=lambda d: STATUSES.index(d.status))


def _status(before: Verdict | None, after: Verdict | None) -> Status:
    if before is None:
        return "appears"
    return "disappears" if after is None else "changes"


def replay_both(
    base: Policy, new: Policy, paths: list[Path], as_of: datetime | None
) -> tuple[list[Difference], datetime]:
    """Replay ``paths`` under each policy as of one moment; the differences and that moment."""
    _, base_result, moment = replay_files(base, paths, as_of)
    _, new_result, _ = replay_files(new, paths, moment)
    return diff_findings(base_result.findings, new_result.findings), moment


def diff_json(differences: list[Difference], header: dict[str, str]) -> str:
    by_status = {status: [d.as_json() for d in differences if d.status == status]
                 for status in STATUSES}  # fmt: skip
    return json.dumps({**header, **by_status}, indent=2)


def diff_table(differences: list[Difference], header: dict[str, str]) -> str:
    rows = [("", "kind", "subject", "before", "after")] + [
        (d.status, d.kind, d.subject, _shown(d.before), _shown(d.after)) for d in differences
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ["  ".join([*(f"{c:<{w}}" for c, w in zip(row, widths, strict=False)), row[4]])
             for row in rows]  # fmt: skip
    counts = ", ".join(f"{sum(d.status == s for d in differences)} {s[:-1]}" for s in STATUSES)
    preamble = [f"{name}: {value}" for name, value in header.items()]
    return "\n".join([*preamble, "", *lines, "", counts])


def _shown(verdict: Verdict | None) -> str:
    return ", ".join(f"{name} {value}" for name, value in verdict.items()) if verdict else "-"


def run_policy_diff(
    base: tuple[Policy, str], new: tuple[Policy, str], paths: list[Path],
    as_of: datetime | None, as_json: bool,
) -> int:  # fmt: skip
    """Replay under both policies and print the differences (a table, or JSON)."""
    if not all_exist(paths, "policy diff"):
        return EXIT_USAGE
    differences, moment = replay_both(base[0], new[0], paths, as_of)
    header = {"base": base[1], "policy": new[1], "as_of": moment.isoformat()}
    shown = diff_json(differences, header) if as_json else diff_table(differences, header)
    return write_document(shown + "\n", None, "policy diff")
