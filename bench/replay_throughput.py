"""Replay throughput: events per second of `cmdb-worker replay`, and its peak memory.

python -m bench.replay_throughput [--events N]
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.synthetic import write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        events = write(Path(scratch) / "events.jsonl", args.events)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cmdb_worker.worker.cli",
                "--log-level",
                "WARNING",
                "replay",
                str(events),
                "--out",
                str(Path(scratch) / "out"),
                "--quiet",
            ],
            check=True,
        )
        seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"replay: {args.events} events in {seconds:.1f} s = {args.events / seconds:,.0f} events/s;"
        f" peak RSS {peak_mib:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
