"""Replay's outputs on the sample week and a 20,000-event synthetic stream are exactly the
recorded ones (tests/golden.json): speed work changes no finding, lesson or graph byte."""

import json
from pathlib import Path

import pytest

from tests.golden import GOLDEN, STREAMS, digests


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_replay_outputs_are_byte_for_byte_the_recorded_ones(name: str, tmp_path: Path) -> None:
    """Every output file hashes as recorded; on a difference, counts by kind show where."""
    recorded = json.loads(GOLDEN.read_text())[name]
    current = digests(name, tmp_path)
    assert current["findings_by_kind"] == recorded["findings_by_kind"]
    assert current["sha256"] == recorded["sha256"], "run `make golden` only if this was meant"
