"""``cmdb-worker replay``: run the engine over files and write every output the contract names."""

import json
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.findings import Reason
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.ownership import ONE_OWNER, Ownership
from cmdb_worker.worker.export import (
    finding_line,
    findings_by_kind,
    graph_document,
    lessons_yaml,
    register_order,
    write_json,
    write_lines,
)
from cmdb_worker.worker.logs import get_logger
from cmdb_worker.worker.replay import STDIN, ReplayResult, replay
from cmdb_worker.worker.tickets import event_json, ticket_events

log = get_logger("cmdb_worker.replay")


EXIT_ALL_DEAD_LETTERED = 3
"""Exit status of a replay in which every line was dead-lettered (nothing could be applied)."""
EXIT_USAGE = 2
"""Exit status for unreadable input or an output that cannot be written."""


def run_replay(
    policy: Policy, paths: list[Path], as_of: datetime | None, out: Path, quiet: bool = False,
    tickets: Path | None = None, ownership: Ownership = ONE_OWNER,
) -> int:  # fmt: skip
    """Replay and write the outputs to ``out``; with ``tickets``, the lessons as ticket events."""
    if not (all_exist(paths, "replay") and _made_dir(out)):  # fail fast, not after the replay
        return EXIT_USAGE
    engine, result, moment = replay_files(policy, paths, as_of, ownership)
    try:
        summary = write_outputs(engine, result, moment, out)
        if tickets is not None:
            write_tickets(engine, tickets)
    except OSError as error:
        return cannot_write("replay", error)
    log.info("replay_finished", **{k: v for k, v in summary.items() if k not in DETAILED})
    if not quiet:
        print(summary_table(summary, out))
    return replay_status(result)


def run_lessons_export(
    policy: Policy, paths: list[Path], as_of: datetime | None, output: Path | None,
    ownership: Ownership = ONE_OWNER,
) -> int:  # fmt: skip
    """``cmdb-worker lessons export``: replay, then write only the register (stdout by default)."""
    if not all_exist(paths, "lessons export"):
        return EXIT_USAGE
    engine, result, _ = replay_files(policy, paths, as_of, ownership)
    register = lessons_yaml(engine.state.lessons.values())
    return write_document(register, output, "lessons export") or replay_status(result)


def write_document(text: str, output: Path | None, command: str) -> int:
    """Write ``text`` to ``output`` (None: standard output); 0, or ``EXIT_USAGE`` if it fails."""
    try:
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
    except OSError as error:
        return cannot_write(command, error)
    return 0


def replay_status(result: ReplayResult) -> int:
    """0, or ``EXIT_ALL_DEAD_LETTERED`` when there were lines and every one was dead-lettered."""
    all_bad = result.lines > 0 and len(result.dead_letters) == result.lines
    return EXIT_ALL_DEAD_LETTERED if all_bad else 0


def _made_dir(out: Path) -> bool:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        cannot_write("replay", error)
        return False
    return True


def cannot_write(command: str, error: OSError) -> int:
    where = f" {error.filename}" if error.filename else ""
    print(f"cmdb-worker {command}: cannot write{where}: {error.strerror or error}", file=sys.stderr)
    return EXIT_USAGE


def all_exist(paths: list[Path], command: str) -> bool:
    missing = [str(path) for path in paths if path != STDIN and not path.is_file()]
    if missing:
        print(f"cmdb-worker {command}: no such file: {', '.join(missing)}", file=sys.stderr)
    return not missing


def replay_files(
    policy: Policy, paths: list[Path], as_of: datetime | None, ownership: Ownership = ONE_OWNER
) -> tuple[Engine, ReplayResult, datetime]:
    """Replay ``paths`` on a fresh engine, then fire the deadlines due by ``as_of``."""
    engine = Engine(policy, ownership)
    log.info("replay_started", files=[str(path) for path in paths])
    result = replay(engine, paths, progress=_log_progress)
    moment = as_of or result.latest_event_time or datetime.now(UTC)
    result.findings += engine.tick(moment)
    return engine, result, moment


def write_outputs(
    engine: Engine, result: ReplayResult, as_of: datetime, out: Path
) -> dict[str, Any]:
    write_lines(out / "findings.jsonl", (finding_line(f) for f in result.findings))
    write_lines(out / "dead_letters.jsonl", (json.dumps(d.as_json()) for d in result.dead_letters))
    (out / "lessons.yaml").write_text(lessons_yaml(engine.state.lessons.values()), encoding="utf-8")
    write_json(out / "cmdb.json", graph_document(engine.state.cmdb, engine.policy, as_of))
    summary = summarise(engine, result, as_of)
    write_json(out / "summary.json", summary)
    return summary


def write_tickets(engine: Engine, path: Path) -> None:
    """Every lesson as the CDEvents ticket events one batch of the whole replay would send."""
    events = ticket_events(engine.state.take_lesson_changes())
    write_lines(path, (event_json(event) for event in events))


def summarise(engine: Engine, result: ReplayResult, as_of: datetime) -> dict[str, Any]:
    cmdb = engine.state.cmdb
    return {
        "as_of": as_of.isoformat(),
        "lines": result.lines,
        "events_applied": result.applied,
        "duplicates_ignored": result.duplicates,
        "times_inferred": result.times_inferred,
        "dead_letters": len(result.dead_letters),
        "cis": cmdb.graph.number_of_nodes(),
        "relations": cmdb.graph.number_of_edges(),
        "stale_cis": sum(1 for record in cmdb.records() if record.stale),
        "findings_total": len(result.findings),
        "findings": findings_by_kind(result.findings),
        **governance_summary(engine, result),
    }


def governance_summary(engine: Engine, result: ReplayResult) -> dict[str, Any]:
    """Changes by route and reason, unauthorized deploys by reason, incidents, the register."""
    state, kinds = engine.state, Counter(finding.kind for finding in result.findings)
    assessments = [c.assessment for c in state.changes.values() if c.assessment]
    unauthorized = [f for f in result.findings if f.kind == "deploy_unauthorized"]
    return {
        "changes_assessed": dict(sorted(Counter(a.route for a in assessments).items())),
        "changes_preapproved": sum(a.preapproved for a in assessments),
        "change_reasons": _reason_counts(a.reasons for a in assessments),
        "unauthorized_deploys": kinds["deploy_unauthorized"],
        "unauthorized_reasons": _reason_counts(f.data.reasons for f in unauthorized),
        "incidents_correlated": kinds["incident_correlated"],
        "lessons": [
            lesson.model_dump(mode="json", include=set(LESSON_COLUMNS))
            for lesson in register_order(state.lessons.values())
        ],
    }


def _reason_counts(reason_lists: Iterable[list[Reason]]) -> dict[str, int]:
    """How often each reason code appears, most frequent first."""
    counts = Counter(reason.code for reasons in reason_lists for reason in reasons)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{code} {count}" for code, count in counts.items()) or "none"


def summary_table(summary: dict[str, Any], out: Path) -> str:
    routes = summary["changes_assessed"]
    rows = [
        ("lines read", summary["lines"]),
        ("events applied", summary["events_applied"]),
        ("duplicates ignored", summary["duplicates_ignored"]),
        ("times from the line before", summary["times_inferred"]),
        ("dead letters", summary["dead_letters"]),
        ("CIs / relations", f"{summary['cis']} / {summary['relations']}"),
        ("stale CIs as of", f"{summary['stale_cis']} at {summary['as_of']}"),
        ("findings", summary["findings_total"]),
        *((f"  {kind}", count) for kind, count in summary["findings"].items()),
        ("changes assessed", ", ".join(f"{n} {route}" for route, n in routes.items()) or "0"),
        ("  pre-approved", summary["changes_preapproved"]),
        ("  reasons", _counted(summary["change_reasons"])),
        ("unauthorized deploys", summary["unauthorized_deploys"]),
        ("  reasons", _counted(summary["unauthorized_reasons"])),
        ("incidents correlated", summary["incidents_correlated"]),
        ("lessons", len(summary["lessons"])),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    lines += [_lesson_row(lesson) for lesson in summary["lessons"]]
    return "\n".join([*lines, "", f"outputs in {out}/: " + ", ".join(OUTPUT_FILES)])


def _lesson_row(lesson: dict[str, Any]) -> str:
    return (
        f"  {lesson['id']}  {lesson['status']:<11}  due {lesson['due']}  "
        f"owner {lesson['owner']:<16}  {lesson['rule']}: {lesson['subject']}"
        + (f" (x{lesson['occurrences']})" if lesson["occurrences"] > 1 else "")
    )


OUTPUT_FILES = ("findings.jsonl", "lessons.yaml", "dead_letters.jsonl", "cmdb.json", "summary.json")
DETAILED = frozenset({"findings", "lessons", "change_reasons", "unauthorized_reasons"})
"""Summary keys too long for the log line."""
LESSON_COLUMNS = ("id", "status", "due", "owner", "rule", "subject", "occurrences")


def _log_progress(read: int, total: int, lines: int) -> None:
    log.info("replay_progress", percent=round(100 * read / max(total, 1), 1), lines=lines)
