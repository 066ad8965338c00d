"""Run every benchmark, write bench/RESULTS.md and print a summary (``make bench``).

    python -m bench.run_all [--bootstrap HOST:PORT] [--repetitions 3] [--events 100000]
                            [--cis 1000000] [--replay-events 1000000] [--only NAME ...]

Each benchmark runs in its own process (so one's memory does not weigh on the next); a figure
is the median of ``--repetitions`` runs, with min and max. Without ``--bootstrap`` a local
broker is started with ``deploy/local/kafka.sh`` in a temporary directory and stopped after.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
NAMES = (
    "throughput", "scale", "blast_radius", "governance", "register", "recovery", "replay",
    "failover", "partitioning",
)  # fmt: skip
COUNTS = ("cis", "open_changes", "_seconds", "rss_mib")
"""Figures of bench/governance.py shown without decimals."""
EMBEDDED = re.compile(r"<!-- results: (.*) -->")
REPLAY_LINE = re.compile(
    r"in ([\d.]+) s = ([\d,]+) events/s; peak RSS ([\d,]+) MiB; "
    r"bare json.loads ([\d,]+) events/s; ratio ([\d.]+)"
)


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}  # fmt: skip


def _json_run(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args --json`` and return the JSON object it printed last."""
    command = [sys.executable, "-m", module, *args, "--json"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def throughput(bootstrap: str, events: int, repetitions: int) -> dict[str, Any]:
    raw = _json_run("bench.throughput", "--bootstrap", bootstrap, "--events", str(events),
                    "--repetitions", str(repetitions))  # fmt: skip
    return {"events": raw["events"], "worker_eps": stats(raw["worker_eps"]),
            "bare_eps": stats(raw["bare_eps"]), "ratio": stats(raw["ratio"]),
            "worker_startup_s": stats(raw["worker_startup_s"]),
            "worker_cpu_us_per_event": stats(raw["worker_cpu_us_per_event"])}  # fmt: skip


def scale(cis: int, repetitions: int, ticks: int, changes: int) -> dict[str, Any]:
    runs = [_json_run("bench.scale", "--cis", str(cis), "--ticks", str(ticks),
                      "--changes", str(changes)) for _ in range(repetitions)]  # fmt: skip
    summary: dict[str, Any] = {}
    for key in runs[0]:
        values = [float(run[key]) for run in runs]
        summary[key] = stats(values) if key not in ("cis", "relations") else int(values[0])
    return summary


def blast_radius(cis: int, repetitions: int, changes: int) -> dict[str, Any]:
    """``bench/blast_radius.py`` (a colleague's: a service estate, whole change assessments)."""
    return _numeric_runs(repetitions, "bench.blast_radius", "--cis", str(cis),
                         "--changes", str(changes))  # fmt: skip


def governance(repetitions: int, open_changes: int) -> dict[str, Any]:
    """``bench/governance.py``: conflicts and deploy authorisation among many open changes."""
    return _numeric_runs(repetitions, "bench.governance", "--open-changes", str(open_changes))


def register(repetitions: int) -> dict[str, Any]:
    """``bench/register.py``: writing a register of 10,000 lessons."""
    return _numeric_runs(repetitions, "bench.register")


def _numeric_runs(repetitions: int, module: str, *args: str) -> dict[str, Any]:
    """Run a benchmark module ``repetitions`` times; min/median/max of each figure it prints."""
    runs = [_json_run(module, *args) for _ in range(repetitions)]
    return {key: stats([float(run[key]) for run in runs]) for key, value in runs[0].items()
            if isinstance(value, int | float)}  # fmt: skip


def recovery(bootstrap: str, cis: int, repetitions: int) -> dict[str, Any]:
    raw = _json_run("bench.recovery", "--bootstrap", bootstrap, "--cis", str(cis),
                    "--repetitions", str(repetitions))  # fmt: skip
    return {key: stats(value) if isinstance(value, list) else value for key, value in raw.items()}


def failover(bootstrap: str, repetitions: int) -> dict[str, Any]:
    """``bench/failover.py``: kill -9 of the active of 3 replicas, until the next judges."""
    return _json_run("bench.failover", "--bootstrap", bootstrap,
                     "--repetitions", str(repetitions))  # fmt: skip


def partitioning(events: int) -> dict[str, Any]:
    """One run: the owners' counts are exact; the view's CPU per record is the best of 3."""
    return _json_run("bench.partitioning", "--events", str(events), "--partitions", "3", "6", "12")


def replay(events: int, repetitions: int) -> dict[str, Any]:
    """``bench/replay_throughput.py``: the whole replay command and a bare ``json.loads``."""
    runs = [_replay_run(events) for _ in range(repetitions)]
    names = ("seconds", "eps", "peak_rss_mib", "bare_eps", "ratio")
    return {"events": events} | {name: stats([run[i] for run in runs])
                                 for i, name in enumerate(names)}  # fmt: skip


def _replay_run(events: int) -> list[float]:
    command = [sys.executable, "-m", "bench.replay_throughput", "--events", str(events)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    match = REPLAY_LINE.search(done.stdout)
    if match is None:
        raise RuntimeError(f"unexpected output of bench.replay_throughput: {done.stdout}")
    return [float(figure.replace(",", "")) for figure in match.groups()]


# ----------------------------------------------------------------------------- environment
def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info
                    if line.startswith("model name")), cpu)  # fmt: skip
    memory = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as info:
        kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
        memory = f"{kib / 2**20:.1f} GiB"
    return {"nproc": str(os.cpu_count()), "memory": memory, "cpu": cpu,
            "os": platform.platform()}  # fmt: skip


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("kafka-python", "networkx", "pydantic"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    jars = sorted((REPO / "deploy" / "local" / ".kafka" / "libs").glob("kafka_2.*-*.jar"))
    found["Kafka broker"] = jars[0].stem.split("-", 1)[1] if jars else "unknown"
    return found


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from tests.kafka_broker import LocalKafkaBroker

    with tempfile.TemporaryDirectory(prefix="cmdb-bench-") as scratch:
        local = LocalKafkaBroker(Path(scratch) / "kafka")
        try:
            yield local.start()
        finally:
            local.stop()


# ------------------------------------------------------------------------------- reporting
def _f(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _mmm(s: dict[str, float], digits: int = 0, unit: str = "") -> str:
    unit = f" {unit}" if unit else ""
    return (f"{_f(s['median'], digits)}{unit} (min {_f(s['min'], digits)}, "
            f"max {_f(s['max'], digits)}; n={int(s['n'])})")  # fmt: skip


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def report(results: dict[str, Any], command: str, elapsed: float) -> str:
    lines = ["# Benchmark results", "",
             f"Generated by `{command}` on {datetime.date.today().isoformat()} "
             f"in {elapsed / 60:.1f} min. Each figure is the **median** of n runs with "
             "min and max. The machine was shared with other engineers running tests, so "
             "figures are noisy (the min/max spread shows how much). Why a target is missed, "
             "with profiles, and what would meet it: `bench/ANALYSIS.md` (hand-kept; this "
             "file is rewritten whole by every run).", ""]  # fmt: skip
    lines += ["## Machine and versions", ""]
    lines += [f"- {key}: {value}" for key, value in {**machine(), **versions()}.items()]
    lines += ["", "## Targets", "", "| target | figure | verdict |", "|---|---|---|"]
    lines += _targets(results)
    lines += [""]
    if "throughput" in results:
        t = results["throughput"]
        lines += ["## Throughput through the local broker (`bench/throughput.py`)", "",
                  f"{_f(t['events'])} synthetic events (`bench/synthetic.py`: ~90% discovery, "
                  "~9% deploys, ~1% bad lines) on two input topics of 3 partitions, read in the "
                  "same run by a bare kafka-python consumer (read + `json.loads`) and by "
                  "`cmdb-worker run` (fresh group; from /readyz until every input offset is "
                  "committed; event clock).", "",
                  f"- worker: {_mmm(t['worker_eps'], unit='events/s')}",
                  f"- bare consumer: {_mmm(t['bare_eps'], unit='events/s')}",
                  f"- ratio worker / bare: {_mmm(t['ratio'], 3)}",
                  f"- worker start-up (excluded): {_mmm(t['worker_startup_s'], 1, 's')}",
                  "- worker CPU per event (user + system, every thread; less disturbed by "
                  f"other load): {_mmm(t['worker_cpu_us_per_event'], 0, 'µs')}",
                  ""]  # fmt: skip
    if "scale" in results:
        s = results["scale"]
        lines += ["## Scale (`bench/scale.py`)", "",
                  f"{_f(s['cis'])} CIs and {_f(s['relations'])} relations applied as decoded "
                  "`cmdb.ci.observed` events through `Engine.apply` (one fresh process per run).",
                  "",
                  f"- build: {_mmm(s['build_seconds'], 1, 's')}",
                  f"- resident memory (whole process): {_mmm(s['rss_mib'], 0, 'MiB')}",
                  f"- of which the build added: {_mmm(s['rss_growth_mib'], 0, 'MiB')}",
                  f"- staleness tick, nothing due: {_mmm(s['idle_tick_us'], 2, 'µs')} per tick",
                  f"- tick with 1% of CIs falling due ({_f(s['due_tick_cis']['median'])} CIs "
                  f"go stale): {_mmm(s['due_tick_ms'], 1, 'ms')}",
                  f"- blast radius per change, p50: {_mmm(s['blast_radius_p50_ms'], 3, 'ms')}",
                  f"- blast radius per change, p99: {_mmm(s['blast_radius_p99_ms'], 3, 'ms')}",
                  f"- blast radius size: p50 {_f(s['blast_radius_p50_cis']['median'])} CIs, "
                  f"p99 {_f(s['blast_radius_p99_cis']['median'])} CIs", ""]  # fmt: skip
    if "blast_radius" in results:
        b = results["blast_radius"]
        lines += [
            "## Blast radius on a service estate (`bench/blast_radius.py`)",
            "",
            "A colleague's benchmark, run as is: a 1M-CI service estate (services, "
            "databases, hosts, clusters, instances) and random changes of 1-3 CIs; the "
            "bare traversal and the whole change assessment (`Engine.apply`).",
            "",
        ]
        lines += [
            f"- {key}: {_mmm(value, 3 if key.endswith('_ms') else 0)}" for key, value in b.items()
        ]
        lines += [""]  # fmt: skip
    if "governance" in results:
        g = results["governance"]
        lines += [
            "## Change governance at scale (`bench/governance.py`)",
            "",
            f"{_f(g['open_changes']['median'])} open changes on a "
            f"{_f(g['cis']['median'])}-CI service estate; per event: finding a new "
            "change's conflicts, the whole change request, a deploy's authorisation.",
            "",
        ]
        lines += [
            f"- {key}: {_mmm(value, 0 if key.endswith(COUNTS) else 3)}" for key, value in g.items()
        ]
        lines += [""]  # fmt: skip
    if "register" in results:
        w = results["register"]
        lines += ["## Lessons Register (`bench/register.py`)", "",
                  f"{_f(w['lessons']['median'])} lessons written as the register's YAML "
                  "(`worker.export.lessons_yaml`: events straight to libyaml, byte for byte the "
                  "pure-Python reference's output).", "",
                  f"- write: {_mmm(w['write_seconds'], 2, 's')}",
                  f"- the pure-Python reference writer: {_mmm(w['reference_seconds'], 2, 's')}",
                  ""]  # fmt: skip
    if "recovery" in results:
        r = results["recovery"]
        size = r.get("topic_bytes")
        lines += ["## Recovery (`bench/recovery.py`)", "",
                  f"Changelog of {_f(r['cis'])} CIs ({_f(r['relations'])} relations): "
                  f"{_f(r['records'])} records, {_f(r['value_mib'])} MiB of values, produced "
                  "once to a compacted topic; then `cmdb-worker run` started on it.", "",
                  f"- start to ready (/readyz 200): {_mmm(r['ready_s'], 1, 's')}",
                  f"- of which the rebuild (worker's `state_rebuilt`): "
                  f"{_mmm(r['rebuild_s'], 1, 's')}",
                  f"- worker peak memory (VmHWM): {_mmm(r['peak_rss_mib'], 0, 'MiB')}",
                  "- changelog topic on the broker (describe_log_dirs): "
                  + (f"{_f(size / 2**20)} MiB" if size else "not reported"), ""]  # fmt: skip
    if "replay" in results:
        p = results["replay"]
        lines += ["## Replay (`bench/replay_throughput.py`)", "",
                  f"`cmdb-worker replay` of {_f(p['events'])} synthetic events from a file "
                  "(the whole command: start-up, replay, every output written), and a bare "
                  "loop that reads the same file and `json.loads` each line.", "",
                  f"- {_mmm(p['eps'], unit='events/s')}",
                  f"- bare json.loads: {_mmm(p['bare_eps'], unit='events/s')}",
                  f"- ratio replay / bare json.loads: {_mmm(p['ratio'], 4)}",
                  f"- wall time: {_mmm(p['seconds'], 1, 's')}",
                  f"- peak memory: {_mmm(p['peak_rss_mib'], 0, 'MiB')}", ""]  # fmt: skip
    if "failover" in results:
        f = results["failover"]
        lines += [
            "## Failover (`bench/failover.py`)",
            "",
            f"{f['replicas']} replicas of `cmdb-worker run` in one group, inputs on 6 "
            f"partitions, a steady {_f(f['rate'])} events/s keyed by CI id; the active "
            "replica killed with SIGKILL, timed until a survivor has judged an event "
            f"(session timeout {f['session_timeout_seconds']} s). n={len(f['seconds'])}; "
            "with so few runs the p99 is the slowest.",
            "",
            f"- p50 {f['p50']:.1f} s, p99 {f['p99']:.1f} s (min {f['min']:.1f} s, "
            f"max {f['max']:.1f} s)",
            "- every run: " + ", ".join(f"{s:.1f}" for s in f["seconds"]) + " s",
            "- of which the new active's takeover (`took_over`): "
            + ", ".join(f"{s:.2f}" for s in f.get("takeover_seconds", []))
            + " s",
            *_takeover_phases(f),
            "",
        ]
    if "partitioning" in results:
        lines += _partitioning_section(results["partitioning"])
    lines += [f"<!-- results: {json.dumps(results)} -->"]
    return "\n".join(lines) + "\n"


def _partitioning_section(surveys: dict[str, Any]) -> list[str]:
    lines = ["## What partitioned judgement would meet (`bench/partitioning.py`)", "",
             "Each stream applied in order as `replay` does, every changelog key given the "
             "partition Kafka's default partitioner would give its owning entity. *Owners per "
             "event*: the work multiplied if an event were forwarded whole to each owner whose "
             "keys it writes (per-source and per-team aggregates are kept per owner). One run "
             "per partition count; counts are exact (see bench/ANALYSIS.md). *Operations*: "
             "what one event sends to other owners when that many owners of one partition each "
             "judge the stream's first 20,000 events exchanging operations "
             "(`worker/partitioned.py`), and the keys still written by a non-owner (identity "
             "merges across owners are not operations yet).", "",
             "| stream, partitions | writing another owner's keys | owners per event "
             "| operations per event (by kind) | keys still written by a non-owner |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, survey in surveys.items():
        for n, tally in survey["partitions"].items():
            events, sent = tally["events"], tally["operations"]
            kinds = ", ".join(f"{k} {v:,}" for k, v in sent["operations_by_kind"].items())
            foreign = sum(sent["foreign_writes_by_kind"].values())
            lines.append(
                f"| {name}, {n} | {events['share_writing_another_owner']:.0%} "
                f"| {events['owners_per_application']:.2f} "
                f"| {sent['operations_per_event']:.3f} ({kinds or 'none'}) | {foreign:,} |"
            )
    lines += ["", "The changelog each stream made (batches of 500 events, as `run` commits them) "
              "applied to a fresh global view as a standby tails it: CPU per record, the best "
              "of 3 passes, which every replica pays for every record; and to a lean view "
              "(`bench/lean_view.py`: the graph, the CI fields and open changes other owners' "
              "judgements read, every other value kept raw until read).", "",
              "| stream | changelog records per event | view CPU per record, deadlines armed "
              "/ none | view CPU per input event | lean view per record / per input event |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, survey in surveys.items():
        records, per_record = survey["changelog_records_per_event"], survey["view_us_per_record"]
        lean = survey["lean_view_us_per_record"]
        lines.append(
            f"| {name} | {records:.2f} | {per_record:.0f} / "
            f"{survey['view_us_per_record_unarmed']:.0f} µs | {records * per_record:.0f} µs "
            f"| {lean:.1f} / {records * lean:.0f} µs |"
        )
    return [*lines, ""]


TAKEOVER_PHASES = {
    "fence": "fencing the previous active (`init_transactions`)",
    "state": "the state topic read to its end",
    "rearm": "indexes and the model stores' deadlines derived",
    "seek": "the inputs put at their committed offsets",
}


def _takeover_phases(failover: dict[str, Any]) -> list[str]:
    """One line per phase of the takeover the bench recorded (older results have none)."""
    lines = []
    for phase, what in TAKEOVER_PHASES.items():
        seconds = failover.get(f"takeover_{phase}_seconds")
        if seconds is not None:
            lines.append(f"  - {what}: " + ", ".join(f"{s:.2f}" for s in seconds) + " s")
    return lines


def _targets(results: dict[str, Any]) -> list[str]:
    rows = []
    if "throughput" in results:
        ratio = results["throughput"]["ratio"]["median"]
        eps = results["throughput"]["worker_eps"]["median"]
        rows.append(f"| worker / bare consumer >= 0.5 | {ratio:.3f} ({eps:,.0f} events/s) | "
                    f"{_verdict(ratio >= 0.5)} |")  # fmt: skip
    if "scale" in results:
        s = results["scale"]
        rss = s["rss_mib"]["median"]
        tick = s["idle_tick_us"]["median"]
        size = f"{s['cis']:,} CIs / {s['relations']:,} relations"
        rows += [f"| memory at {size} (target at 1M / 3M: <= 1.5 GB) | {rss:,.0f} MiB | "
                 f"{_verdict(rss * 2**20 <= 1.5e9)} |",
                 f"| staleness tick, nothing due <= 1 ms | {tick:.2f} µs | "
                 f"{_verdict(tick <= 1000)} |",
                 f"| build time (no target) | {s['build_seconds']['median']:,.1f} s | - |",
                 f"| blast radius p50 / p99, domain graph of bench/scale.py (no target) | "
                 f"{s['blast_radius_p50_ms']['median']:.3f} / "
                 f"{s['blast_radius_p99_ms']['median']:.3f} ms | - |"]  # fmt: skip
    if "blast_radius" in results:
        p99 = results["blast_radius"]["assessment_p99_ms"]["median"]
        rows.append(f"| change assessment p99, 1M-CI service estate <= 100 ms | {p99:,.1f} ms | "
                    f"{_verdict(p99 <= 100)} |")  # fmt: skip
    if "recovery" in results:
        rows += _recovery_rows(results["recovery"], results.get("scale"))
    if "failover" in results:
        f = results["failover"]
        rows.append(f"| failover after kill -9 of the active <= 15 s | p50 {f['p50']:.1f} s, "
                    f"p99 {f['p99']:.1f} s | {_verdict(f['p99'] <= 15)} |")  # fmt: skip
    if "register" in results:
        write = results["register"]["write_seconds"]["median"]
        rows.append(f"| lessons register of 10,000 written <= 1 s | {write:.2f} s | "
                    f"{_verdict(write <= 1)} |")  # fmt: skip
    if "replay" in results:
        ratio, eps = results["replay"]["ratio"]["median"], results["replay"]["eps"]["median"]
        rows.append(f"| replay / bare json.loads >= 0.2 | {ratio:.4f} ({eps:,.0f} events/s) | "
                    f"{_verdict(ratio >= 0.2)} |")  # fmt: skip
    return rows


def _recovery_rows(recovery: dict[str, Any], scale: dict[str, Any] | None) -> list[str]:
    """Start to ready, and the rebuild's peak over the steady size of the same state (the scale
    build of as many CIs, in the same run)."""
    ready, peak = recovery["ready_s"]["median"], recovery["peak_rss_mib"]["median"]
    rows = [f"| start to ready, {recovery['cis']:,} CIs in the changelog (target at 1M: <= 30 s) "
            f"| {ready:,.1f} s | {_verdict(ready <= 30)} |"]  # fmt: skip
    if scale is not None:
        ratio = peak / scale["rss_mib"]["median"]
        rows.append(f"| peak RSS during that start / steady RSS of the same state <= 1.2 | "
                    f"{ratio:.2f} ({peak:,.0f} MiB) | {_verdict(ratio <= 1.2)} |")  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", help="an existing broker; else one is started")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--recovery-repetitions", type=int, help="default: --repetitions")
    parser.add_argument("--replay-repetitions", type=int, help="default: --repetitions")
    parser.add_argument("--failover-repetitions", type=int, default=7)
    parser.add_argument("--events", type=int, default=100_000, help="throughput events")
    parser.add_argument("--cis", type=int, default=1_000_000, help="scale and recovery CIs")
    parser.add_argument("--replay-events", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=2000, help="blast radius samples")
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the figures of benchmarks not run from the existing --out",
    )
    parser.add_argument("--blast-changes", type=int, default=1000)
    parser.add_argument("--open-changes", type=int, default=100_000, help="governance bench")
    args = parser.parse_args(argv)
    command = (
        "make bench"
        if argv is None and os.environ.get("MAKELEVEL")
        else shlex.join(
            ["python", "-m", "bench.run_all", *(sys.argv[1:] if argv is None else argv)]
        )
    )
    started = time.monotonic()
    results: dict[str, Any] = {}
    needs_kafka = {"throughput", "recovery", "failover"} & set(args.only)
    with broker(args.bootstrap if needs_kafka else "-") as kafka:
        for name in args.only:
            print(f"bench: {name} ...", flush=True)
            began = time.monotonic()
            if name == "throughput":
                results[name] = throughput(kafka, args.events, args.repetitions)
            elif name == "scale":
                results[name] = scale(args.cis, args.repetitions, args.ticks, args.changes)
            elif name == "blast_radius":
                if not (REPO / "bench" / "blast_radius.py").exists():
                    continue
                results[name] = blast_radius(args.cis, args.repetitions, args.blast_changes)
            elif name == "register":
                results[name] = register(args.repetitions)
            elif name == "governance":
                results[name] = governance(args.repetitions, args.open_changes)
            elif name == "recovery":
                results[name] = recovery(
                    kafka, args.cis, args.recovery_repetitions or args.repetitions
                )
            elif name == "failover":
                results[name] = failover(kafka, args.failover_repetitions)
            elif name == "partitioning":
                results[name] = partitioning(args.events)
            else:
                results[name] = replay(
                    args.replay_events, args.replay_repetitions or args.repetitions
                )
            print(f"bench: {name} done in {time.monotonic() - began:.0f} s", flush=True)
    if args.merge and args.out.exists():
        found = EMBEDDED.search(args.out.read_text())
        earlier = json.loads(found[1]) if found else {}
        results = {name: results.get(name, earlier.get(name)) for name in NAMES
                   if name in results or name in earlier}  # fmt: skip
        command += " (merged into the earlier results)"
    text = report(results, command, time.monotonic() - started)
    args.out.write_text(text)
    print(text)
    return results


if __name__ == "__main__":
    main()
