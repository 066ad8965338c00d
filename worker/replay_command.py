"""``cmdb-worker replay``: run the engine over files and write every output the contract names."""

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rules.policy import Policy
from worker.engine import Engine
from worker.export import (
    finding_line,
    findings_by_kind,
    graph_document,
    lessons_yaml,
    write_json,
    write_lines,
)
from worker.logs import get_logger
from worker.replay import ReplayResult, replay

log = get_logger("cmdb_worker.replay")


def run_replay(
    policy: Policy, paths: list[Path], as_of: datetime | None, out: Path, quiet: bool = False
) -> int:
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        print(f"cmdb-worker replay: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    engine = Engine(policy)
    log.info("replay_started", files=[str(path) for path in paths], out=str(out))
    result = replay(engine, paths, progress=_log_progress)
    moment = as_of or result.latest_event_time or datetime.now(UTC)
    result.findings += engine.tick(moment)
    out.mkdir(parents=True, exist_ok=True)
    summary = write_outputs(engine, result, moment, out)
    log.info("replay_finished", **{k: v for k, v in summary.items() if k != "findings"})
    if not quiet:
        print(summary_table(summary, out))
    return 0


def write_outputs(
    engine: Engine, result: ReplayResult, as_of: datetime, out: Path
) -> dict[str, Any]:
    write_lines(out / "findings.jsonl", (finding_line(f) for f in result.findings))
    write_lines(out / "dead_letters.jsonl", (json.dumps(d.as_json()) for d in result.dead_letters))
    (out / "lessons.yaml").write_text(lessons_yaml([]), encoding="utf-8")
    write_json(out / "cmdb.json", graph_document(engine.state.cmdb, engine.policy, as_of))
    summary = summarise(engine, result, as_of)
    write_json(out / "summary.json", summary)
    return summary


def summarise(engine: Engine, result: ReplayResult, as_of: datetime) -> dict[str, Any]:
    cmdb = engine.state.cmdb
    return {
        "as_of": as_of.isoformat(),
        "lines": result.lines,
        "events_applied": result.applied,
        "duplicates_ignored": result.duplicates,
        "dead_letters": len(result.dead_letters),
        "cis": cmdb.graph.number_of_nodes(),
        "relations": cmdb.graph.number_of_edges(),
        "stale_cis": sum(1 for record in cmdb.records() if record.stale),
        "findings_total": len(result.findings),
        "findings": findings_by_kind(result.findings),
    }


def summary_table(summary: dict[str, Any], out: Path) -> str:
    rows = [
        ("lines read", summary["lines"]),
        ("events applied", summary["events_applied"]),
        ("duplicates ignored", summary["duplicates_ignored"]),
        ("dead letters", summary["dead_letters"]),
        ("CIs / relations", f"{summary['cis']} / {summary['relations']}"),
        ("stale CIs as of", f"{summary['stale_cis']} at {summary['as_of']}"),
    ]
    rows += [(f"  {kind}", count) for kind, count in summary["findings"].items()]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    lines.insert(6, f"{'findings':<{width}}  {summary['findings_total']}")
    return "\n".join([*lines, "", f"outputs in {out}/: " + ", ".join(OUTPUT_FILES)])


OUTPUT_FILES = ("findings.jsonl", "lessons.yaml", "dead_letters.jsonl", "cmdb.json", "summary.json")


def _log_progress(read: int, total: int, lines: int) -> None:
    log.info("replay_progress", percent=round(100 * read / max(total, 1), 1), lines=lines)
