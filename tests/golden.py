"""Digests of ``replay``'s outputs on the sample week and on a 20,000-event synthetic stream.

Work that makes the worker faster or smaller must not change one judgement: ``test_golden.py``
replays both streams and compares every output file with the digests in ``golden.json``. When
behaviour changes on purpose, ``make golden`` rewrites them; commit that with the reason.
"""

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import synthetic

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).with_name("golden.json")
OUTPUTS = ("findings.jsonl", "lessons.yaml", "dead_letters.jsonl", "cmdb.json", "summary.json")
SYNTHETIC_EVENTS = 20_000


def sample_week(directory: Path) -> list[str]:
    return [
        str(ROOT / "examples" / "events.jsonl"),
        "--policy",
        str(ROOT / "examples" / "policy.yaml"),
    ]


def synthetic_stream(directory: Path) -> list[str]:
    return [str(synthetic.write(directory / "synthetic.jsonl", SYNTHETIC_EVENTS))]


STREAMS: dict[str, Callable[[Path], list[str]]] = {
    "sample-week": sample_week, "synthetic-20k": synthetic_stream,
}  # fmt: skip
"""Each stream's name and how to get the ``replay`` arguments for it into a directory."""


def digests(name: str, directory: Path) -> dict[str, Any]:
    """Replay the stream into ``directory``: each output's sha256, and findings by kind."""
    from cmdb_worker.worker.cli import (
        main,  # the CLI configures logging: import it only when replaying
    )

    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "out"
    assert main(["replay", *STREAMS[name](directory), "--out", str(out), "--quiet"]) == 0
    files = {file: hashlib.sha256(_content(out / file)).hexdigest() for file in OUTPUTS}
    summary = json.loads((out / "summary.json").read_text())
    return {"findings_by_kind": summary["findings"], "sha256": files}


def _content(path: Path) -> bytes:
    """The file's bytes; for dead letters, without the replayed file's path (it varies)."""
    if path.name != "dead_letters.jsonl":
        return path.read_bytes()
    letters = [json.loads(line) for line in path.read_text().splitlines()]
    return json.dumps([{k: v for k, v in d.items() if k != "file"} for d in letters]).encode()


def write(directory: Path) -> None:
    """Rewrite ``golden.json`` from the current code (``make golden``)."""
    golden = {name: digests(name, directory / name) for name in STREAMS}
    GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        write(Path(scratch))
    print(f"wrote {GOLDEN.relative_to(ROOT)}", file=sys.stderr)
