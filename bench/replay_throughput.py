"""Replay throughput: `cmdb-worker replay` (the whole command) against a bare ``json.loads``.

python -m bench.replay_throughput [--events N]

The same file, in the same run: first a bare loop reads it line by line and ``json.loads``
each line (a bad line's ``ValueError`` is ignored), then ``cmdb-worker replay`` runs on it as
a subprocess (start-up, replay and writing every output included). The ratio is the replay's
events/s over the bare loop's (the issue's target: >= 0.2).
"""

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.synthetic import write


def bare_json_seconds(events: Path) -> float:
    """Seconds to read ``events`` line by line and ``json.loads`` every line."""
    started = time.perf_counter()
    with events.open("rb") as handle:
        for line in handle:
            with contextlib.suppress(ValueError):
                json.loads(line)
    return time.perf_counter() - started


def replay_seconds(events: Path, out: Path) -> float:
    """Seconds for the whole ``cmdb-worker replay`` command on ``events``."""
    command = [sys.executable, "-m", "cmdb_worker.worker.cli", "--log-level", "WARNING",
               "replay", str(events), "--out", str(out), "--quiet"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        events = write(Path(scratch) / "events.jsonl", args.events)
        bare = bare_json_seconds(events)
        seconds = replay_seconds(events, Path(scratch) / "out")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"replay: {args.events} events in {seconds:.1f} s = {args.events / seconds:,.0f} events/s;"
        f" peak RSS {peak_mib:,.0f} MiB; bare json.loads {args.events / bare:,.0f} events/s;"
        f" ratio {bare / seconds:.4f}"
    )


if __name__ == "__main__":
    main()
