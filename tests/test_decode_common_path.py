"""The one-pass decoding of common messages agrees with the full decoder on everything it takes."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import synthetic
from cmdb_worker.schemas import decode as decoding
from cmdb_worker.schemas.decode import InvalidEvent, _decode_common, decode
from cmdb_worker.schemas.events import InputEvent

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "events.jsonl"
FALLBACK_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def _lines() -> list[bytes]:
    sample = [line for line in EXAMPLES.read_bytes().splitlines() if line.strip()]
    return sample + [line.encode() for line in synthetic.events(3000)]


def _outcome(value: bytes) -> InputEvent | str:
    try:
        return decode(value, (), FALLBACK_TIME)
    except InvalidEvent as invalid:
        return invalid.reason


def test_common_path_decodes_like_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sample and synthetic line decodes to the very same event (or dead letter reason)
    with the one-pass path as with the full decoder alone."""
    lines = _lines()
    with_common_path = [_outcome(value) for value in lines]
    monkeypatch.setattr(decoding, "_decode_common", lambda value: None)
    assert with_common_path == [_outcome(value) for value in lines]


def test_the_common_path_takes_the_common_messages() -> None:
    """Nearly all of the synthetic stream (all but its bad lines) is decoded in one pass."""
    taken = sum(_decode_common(line.encode()) is not None for line in synthetic.events(3000))
    assert taken >= 0.97 * 3000


UNUSUAL = [
    b'{"specversion":"1.0","id":"1","source":"/s","type":"cmdb.ci.observed",'
    b'"data":{"ci":{"type":"host","name":"h"}}}',
    b'{"specversion":"1.0","id":"1","source":"/s","type":"cmdb.ci.observed",'
    b'"time":"2026-11-01T00:00:00Z","datacontenttype":"text/plain","data":{"ci":{}}}',
    b'{"specversion":"1.0","id":"1","source":"/s","type":"cmdb.ci.observed",'
    b'"time":"2026-11-01T00:00:00Z","data_base64":"e30=","data":{"ci":{}}}',
    b'{"specversion":"1.0","id":"1","source":"/s","type":"cdevent","context":{},"subject":{}}',
    b'{"specversion":"1.0","id":"1","source":"/s","type":"dev.cdevents.service.deployed.0.3.0",'
    b'"time":"2026-11-01T00:00:00Z","data":{}}',
]


@pytest.mark.parametrize("value", UNUSUAL)
def test_unusual_messages_are_left_to_the_full_path(value: bytes) -> None:
    """No time, non-JSON content, data_base64, or a type the fast path does not read: not taken."""
    assert _decode_common(value) is None
