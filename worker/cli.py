"""The ``cmdb-worker`` command line."""

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from cmdb_worker.rules.policy import Policy, PolicyError, load_policy
from cmdb_worker.worker import __version__
from cmdb_worker.worker.engine.ownership import ONE_OWNER
from cmdb_worker.worker.graph_export import (
    FORMATS,
    GraphRequest,
    graph_of_replay,
    read_graph,
    run_graph_export,
)
from cmdb_worker.worker.kafka_clients import ownership
from cmdb_worker.worker.logs import configure_logging, get_logger
from cmdb_worker.worker.policy_diff import run_policy_diff
from cmdb_worker.worker.produce_command import run_produce
from cmdb_worker.worker.replay_command import (
    EXIT_ALL_DEAD_LETTERED,
    EXIT_USAGE,
    all_exist,
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
  policy   `policy diff`: what a new policy would conclude differently on the same events
  graph    `graph export`: the CMDB graph (or a CI's neighbourhood) as Graphviz DOT or Mermaid
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
node-link graph) and summary.json, and prints a summary table. With --tickets FILE, also the
lessons as CDEvents ticket events (what `run` sends to cmdb.tickets with CMDB_WORKER_TICKETS on;
as if the whole replay were one batch: ticket.created for each lesson, ticket.closed after it for
one that ended Done or Won't Do).

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


POLICY_DIFF_HELP = """\
Replay JSON-lines event files twice, under --base (default: the packaged policy) and under
--policy, judged as of the same moment, and print what the new policy changes: findings that
appear, disappear, or change (same kind and subject, different severity, score, level or route;
the last finding of a kind about a subject counts). Both policy files overlay the packaged
policy key by key, as `replay --policy` does. A table by default, JSON with --json.

Exit status: 0 done; 2 bad usage, a missing input file or a refused policy.
"""

GRAPH_EXPORT_HELP = """\
Write the CMDB graph as Graphviz DOT (`dot -Tsvg`) or a Mermaid flowchart (GitHub and most
wikis render it), for docs and tickets. The graph is the one `replay` writes as cmdb.json: give
event files to replay them (with --policy and --as-of as replay takes them), or --cmdb with a
replay's cmdb.json. Nodes say type, name and environment; stale and unverified CIs are dashed
and say so; edges are labelled with their relation type. --around CI keeps only the CIs within
--depth relations of it (either direction; an alias works too).

Exit status: 0 done; 2 bad usage, a missing input, an unknown --around CI or an output that
cannot be written.
"""


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
    _owner_partitions(replay)
    replay.add_argument(
        "--out",
        type=Path,
        default=Path("out"),
        metavar="DIR",
        help="output directory (default: out)",
    )
    replay.add_argument("--quiet", action="store_true", help="no summary table on stdout")
    replay.add_argument(
        "--tickets", type=Path, metavar="FILE",
        help="also write the lessons as CDEvents ticket events (JSON lines) to FILE",
    )  # fmt: skip
    produce = _command(commands, "produce", "send event files to the input topics", PRODUCE_HELP)
    produce.add_argument("events", nargs="+", type=Path, metavar="EVENTS.jsonl")
    _lessons_commands(commands)
    _policy_commands(commands)
    _graph_commands(commands)
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


PACKAGED_POLICY_HELP: dict[str, Any] = {"help": "policy YAML (default: the packaged policy)"}


def _replay_inputs(
    command: argparse.ArgumentParser, events: str = "+", policy: dict[str, Any] | None = None
) -> None:
    """The event files, --policy (as ``policy`` says, else optional) and --as-of."""
    command.add_argument("events", nargs=events, type=Path, metavar="EVENTS.jsonl")
    command.add_argument("--policy", type=Path, **(policy or PACKAGED_POLICY_HELP))
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
    _owner_partitions(export)
    export.add_argument(
        "-o", "--out", type=Path, metavar="FILE", help="write here (default: standard output)"
    )


def _owner_partitions(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--owner-partitions", type=_partitions, default=1, metavar="N",
        help="number lesson ids per owner partition, as run does with CMDB_WORKER_OWNER_PARTITIONS"
        "=N: the ids then equal those of a worker whose input topics have N partitions "
        "(default: 1, one sequence)",
    )  # fmt: skip


def _policy_commands(commands: "Commands") -> None:
    policy = commands.add_parser("policy", help="compare policies on the same events")
    actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    diff = _command(actions, "diff", "what a new policy changes on these events", POLICY_DIFF_HELP)
    new_policy = {"required": True, "metavar": "NEW.yaml",
                  "help": "the policy to try (overlays the packaged one)"}  # fmt: skip
    _replay_inputs(diff, policy=new_policy)
    diff.add_argument("--base", type=Path, metavar="OLD.yaml",
                      help="the policy to compare with (default: the packaged policy)")  # fmt: skip
    diff.add_argument("--json", action="store_true", help="JSON instead of a table")


def _graph_commands(commands: "Commands") -> None:
    graph = commands.add_parser("graph", help="the CMDB graph as a picture")
    actions = graph.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = _command(actions, "export", "write the graph as DOT or Mermaid", GRAPH_EXPORT_HELP)
    _replay_inputs(export, events="*")
    export.add_argument("--cmdb", type=Path, metavar="cmdb.json",
                        help="a replay's cmdb.json instead of event files")  # fmt: skip
    export.add_argument("--format", choices=FORMATS, required=True)
    export.add_argument("--around", metavar="CI", help="only this CI's neighbourhood")
    export.add_argument("--depth", type=_depth, default=2, metavar="N",
                        help="relations followed from --around (default: 2)")  # fmt: skip
    export.add_argument("-o", "--out", type=Path, metavar="FILE",
                        help="write here (default: standard output)")  # fmt: skip


def _partitions(text: str) -> int:
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is not a partition count (1 or more)")
    return int(text)


def _depth(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of relations")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_worker(args.log_level)
    configure_logging(args.log_level or "INFO")
    if args.command == "produce":
        return produce_events(args.events)
    if args.command == "graph" and bool(args.events) == bool(args.cmdb):
        parser.error("graph export: give event files or --cmdb, not both or neither")
    try:
        policy = load_policy(args.policy)
    except PolicyError as error:
        return _refuse(error)
    return _replaying_command(args, policy)


def _replaying_command(args: argparse.Namespace, policy: Policy) -> int:
    owners = ownership(args.owner_partitions) if "owner_partitions" in args else ONE_OWNER
    if args.command == "lessons":
        return run_lessons_export(policy, args.events, args.as_of, args.out, owners)
    if args.command == "policy":
        return policy_diff(args, policy)
    if args.command == "graph":
        return graph_export(args, policy)
    return run_replay(policy, args.events, args.as_of, args.out, args.quiet, args.tickets, owners)


def policy_diff(args: argparse.Namespace, new: Policy) -> int:
    try:
        base = load_policy(args.base)
    except PolicyError as error:
        return _refuse(error)
    names = (str(args.base or "packaged policy"), str(args.policy))
    return run_policy_diff((base, names[0]), (new, names[1]), args.events, args.as_of, args.json)


def graph_export(args: argparse.Namespace, policy: Policy) -> int:
    request = GraphRequest(args.format, args.around, args.depth, args.out)
    if args.cmdb is not None:
        try:
            return run_graph_export(read_graph(args.cmdb), request)
        except (OSError, ValueError) as error:
            return _refuse(ValueError(f"graph export: cannot read {args.cmdb}: {error}"))
    if not all_exist(args.events, "graph export"):
        return EXIT_USAGE
    return run_graph_export(graph_of_replay(policy, args.events, args.as_of), request)


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
