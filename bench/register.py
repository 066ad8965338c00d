"""Writing the Lessons Register: seconds to write 10,000 lessons as the register's YAML.

    python -m bench.register [--lessons 10000] [--repetitions 5] [--json]

Each lesson is shaped like those the worker files (titles and descriptions of ~60-120
characters, two evidence ids); ``worker.export.lessons_yaml`` writes them all, as ``replay``'s
``lessons.yaml`` and ``/api/lessons?format=yaml`` do. The pure-Python reference writer
(``reference_lessons_yaml``, byte for byte the same output) is timed beside it.
"""

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from bench.scale import print_result
from cmdb_worker.schemas.lessons import Lesson
from cmdb_worker.worker.export import lessons_yaml, reference_lessons_yaml

FILED = datetime(2026, 11, 20, 10, tzinfo=UTC)


def lessons(count: int) -> list[Lesson]:
    return [
        Lesson(
            id=f"LL-{n:05d}",
            title=f"Deploys without an approved change on service/svc{n}@prod",
            description=f"service/svc{n}@prod got pkg:oci/svc{n}@sha256:{n:06x} at "
            f"{FILED.isoformat()}: no change linked (customData.change_id)",
            impact="High",
            owner=f"team-{n % 40}",
            action="Link pipeline deploys to approved changes (customData.change_id)",
            due=date(2026, 12, 4),
            status="Open" if n % 3 else "In Progress",
            rule="unauthorized_deploys",
            subject=f"service/svc{n}@prod",
            evidence=[f"deploy-{n}", f"deploy-{n + 1}"],
            occurrences=1 + n % 4,
            created_at=FILED,
            updated_at=FILED,
        )
        for n in range(count)
    ]


def seconds(write: Callable[[], str], repetitions: int) -> list[float]:
    times = []
    for _ in range(repetitions):
        began = time.perf_counter()
        write()
        times.append(time.perf_counter() - began)
    return times


def measure(count: int, repetitions: int) -> dict[str, Any]:
    register = lessons(count)
    assert lessons_yaml(register) == reference_lessons_yaml(register)
    fast = seconds(lambda: lessons_yaml(register), repetitions)
    reference = seconds(lambda: reference_lessons_yaml(register), 1)
    return {"lessons": count, "write_seconds": statistics.median(fast),
            "write_seconds_max": max(fast), "reference_seconds": reference[0]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lessons", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    print_result(measure(args.lessons, args.repetitions), args.json)


if __name__ == "__main__":
    main()
