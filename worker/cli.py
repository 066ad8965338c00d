"""The ``cmdb-worker`` command line."""

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError

from cmdb_worker.rules.policy import PolicyError, load_policy
from cmdb_worker.worker import __version__
from cmdb_worker.worker.logs import configure_logging, get_logger
from cmdb_worker.worker.produce_command import run_produce
from cmdb_worker.worker.replay_command import (
    EXIT_ALL_DEAD_LETTERED,
    EXIT_USAGE,
    run_lessons_export,
    run_replay,
)
from cmdb_worker.worker.service import serve
from cmdb_worker.worker.settings import LOG_LEVELS, SettingsError, load_settings, settings_help

DESCRIPTION = """\
cmdb-worker keeps a CMDB dependency graph current from discovery, CI/CD and ITSM events, flags
stale CIs and risky changes, correlates incidents with recent changes and files lessons.

  run      consume from Kafka until SIGTERM (settings: CMDB_WORKER_* variables)
  replay   embedded mode: replay JSON-lines event files, no broker needed
  produce  send JSON-lines event files to the input topics, routed and keyed by the contract
  lessons  the Lessons Register: `lessons export` replays event files and writes it as YAML
"""

RUN_HELP = f"""\
Consume the input topics (cmdb.discovery, cicd.events, itsm.changes, cmdb.lesson-updates) until
SIGTERM. State is rebuilt from the compacted cmdb.state changelog first. Findings go to
cmdb.findings, lessons to cmdb.lessons, bad messages to cmdb.dlq; each poll batch commits
atomically with its input offsets (a Kafka transaction).
HTTP on HTTP_PORT: /metrics, /healthz, /readyz, /api/cis/{{id}}, /api/stale, ...

Exit status: 0 stopped by SIGTERM; 1 Kafka failed (restart it); 2 refused at start (a bad
setting or policy, or an unfit existing topic).

Settings come from CMDB_WORKER_* environment variables, or a YAML file named by
CMDB_WORKER_CONFIG (keys in lower case without the prefix):
{settings_help()}
"""

EXIT_STATUS_HELP = f"""\
Exit status: 0 done (bad lines, if any, were dead-lettered); {EXIT_USAGE} bad usage, a missing
input file or an output that cannot be written; {EXIT_ALL_DEAD_LETTERED} there were lines and
every one was dead-lettered (nothing could be applied).
"""

REPLAY_HELP = f"""\
Replay one or more JSON-lines files (- reads standard input) through the worker, as if they
had arrived on Kafka in that order. Each line is one message value (a CloudEvent or a
CDEvent); a line may instead be {{"key": ..., "headers": {{...}}, "value": ...}} to carry
binary-mode CloudEvents headers. A bad line never stops the replay: it is written to
dead_letters.jsonl with its reason.

Writes to --out: findings.jsonl, lessons.yaml, dead_letters.jsonl, cmdb.json (NetworkX
node-link graph) and summary.json, and prints a summary table.

{EXIT_STATUS_HELP}"""


PRODUCE_HELP = """\
Send JSON-lines event files (- reads standard input; lines as replay reads them) to the input
topics of a broker, routed and keyed as the contract says: discovery events to
cmdb.discovery keyed by CI id, CDEvents to cicd.events keyed by the service's CI id, changes to
itsm.changes keyed by change id, lesson updates to cmdb.lesson-updates keyed by lesson id. A line
that does not decode goes to cmdb.discovery unkeyed (the worker dead-letters it). Creates the
worker's topics first, as run does. The broker, security and topic names come from the same
CMDB_WORKER_* settings as run (see `cmdb-worker run --help`).
"""

LESSONS_EXPORT_HELP = f"""\
Replay JSON-lines event files (as `replay` does, writing nothing else) and write the Lessons
Register as YAML: a `lessons_register:` list, each lesson's register fields first (id, title,
description, impact, owner, action, due, status), then rule, subject, evidence, occurrences,
created_at and updated_at. Overdue checks are made as of --as-of (default: the latest event time).

{EXIT_STATUS_HELP}"""


def _timestamp(text: str) -> datetime:
    try:
        moment = TypeAdapter(datetime).validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2026-11-20T10:00:00Z")
    return moment


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmdb-worker",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}",
        help="print the version and exit",
    )  # fmt: skip
    _log_level(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _command(commands, "run", "consume from Kafka until SIGTERM", RUN_HELP)
    replay = _command(commands, "replay", "replay event files without a broker", REPLAY_HELP)
    _replay_inputs(replay)
    replay.add_argument(
        "--out",
        type=Path,
        default=Path("out"),
        metavar="DIR",
        help="output directory (default: out)",
    )
    replay.add_argument("--quiet", action="store_true", help="no summary table on stdout")
    produce = _command(commands, "produce", "send event files to the input topics", PRODUCE_HELP)
    produce.add_argument("events", nargs="+", type=Path, metavar="EVENTS.jsonl")
    _lessons_commands(commands)
    return parser


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def _command(
    commands: "Commands", name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    command = commands.add_parser(
        name, help=summary, description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _log_level(command, default=argparse.SUPPRESS)  # after the command too; unset keeps the first
    return command


def _log_level(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default=default, metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS)} (default: INFO; for run, CMDB_WORKER_LOG_LEVEL)",
    )  # fmt: skip


def _replay_inputs(command: argparse.ArgumentParser) -> None:
    command.add_argument("events", nargs="+", type=Path, metavar="EVENTS.jsonl")
    command.add_argument("--policy", type=Path, help="policy YAML (default: the packaged policy)")
    command.add_argument(
        "--as-of",
        type=_timestamp,
        metavar="TIME",
        help="judge staleness as of this RFC 3339 time (default: the latest event time)",
    )


def _lessons_commands(commands: "Commands") -> None:
    lessons = commands.add_parser("lessons", help="the Lessons Register")
    actions = lessons.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = _command(
        actions, "export", "replay event files and write the register as YAML", LESSONS_EXPORT_HELP
    )
    _replay_inputs(export)
    export.add_argument(
        "-o", "--out", type=Path, metavar="FILE", help="write here (default: standard output)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run_worker(args.log_level)
    configure_logging(args.log_level or "INFO")
    if args.command == "produce":
        return produce_events(args.events)
    try:
        policy = load_policy(args.policy)
    except PolicyError as error:
        return _refuse(error)
    if args.command == "lessons":
        return run_lessons_export(policy, args.events, args.as_of, args.out)
    return run_replay(policy, args.events, args.as_of, args.out, quiet=args.quiet)


def run_worker(log_level: str | None = None) -> int:
    """``run``: the --log-level flag, when given, wins over CMDB_WORKER_LOG_LEVEL."""
    configure_logging(log_level or "INFO")
    try:
        settings = load_settings(**({"log_level": log_level} if log_level else {}))
        policy = load_policy(settings.policy)
    except (SettingsError, PolicyError) as error:
        return _refuse(error)
    configure_logging(settings.log_level)
    return serve(settings, policy)


def produce_events(paths: list[Path]) -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        return _refuse(error)
    return run_produce(settings, paths)


def _refuse(error: Exception) -> int:
    get_logger("cmdb_worker.cli").error("refused_at_start", error=str(error))
    print(f"cmdb-worker: {error}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
