"""CloudEvents 1.0 and its Kafka binding, to the letter: optional time, data_base64,
datacontenttype, extension attributes (traceparent reaches the findings), specversion.

The events are the spec's own examples retold with this project's values: a structured JSON
event with an extension and no time, the same data as base64, and binary-mode headers.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from cmdb_worker.schemas.decode import InvalidEvent, decode
from cmdb_worker.schemas.events import CIObserved
from cmdb_worker.worker.cli import main
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.runner import _record_time
from tests.events import T0, iso
from tests.kafka_broker import create_topics

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DATA = {"ci": {"type": "service", "name": "billing", "environment": "prod"}}
# The spec's structured-mode example, retold: required attributes, optional ones, an extension
# attribute (`comexampleextension1`) and the distributed-tracing extension; `time` left out.
SPEC_EXAMPLE: dict[str, Any] = {
    "specversion": "1.0",
    "type": "cmdb.ci.observed",
    "source": "/discovery/k8s-eu",
    "subject": "billing",
    "id": "B234-1234-1234",
    "comexampleextension1": "value",
    "comexampleothervalue": 5,
    "traceparent": TRACEPARENT,
    "datacontenttype": "application/json",
    "data": DATA,
}
LATER = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def encoded(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def refused(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        decode(value, headers or [], default_time=LATER)
    return caught.value


def test_time_is_optional_and_the_fallback_time_is_used_and_said() -> None:
    """An event without `time` takes the time it is given, and says the time was inferred."""
    event = decode(encoded(SPEC_EXAMPLE), default_time=LATER)
    assert (event.time, event.time_inferred) == (LATER, True)
    timed = decode(encoded(SPEC_EXAMPLE | {"time": iso(T0)}), default_time=LATER)
    assert (timed.time, timed.time_inferred) == (T0, False)


def test_without_time_and_without_a_fallback_the_event_is_dead_lettered() -> None:
    """No `time` and nothing to fall back to: missing_field naming time, not a crash."""
    with pytest.raises(InvalidEvent) as caught:
        decode(encoded(SPEC_EXAMPLE))
    assert caught.value.code == "missing_field" and caught.value.detail.startswith("time")


def test_extension_attributes_are_kept_in_structured_mode() -> None:
    """Attributes beyond the spec's own are kept on the event with their JSON types."""
    extensions = decode(encoded(SPEC_EXAMPLE), default_time=LATER).extensions
    assert extensions == {
        "comexampleextension1": "value", "comexampleothervalue": 5, "traceparent": TRACEPARENT,
    }  # fmt: skip


def test_binary_mode_keeps_every_ce_header_as_an_attribute() -> None:
    """Kafka binding, binary mode: ce_ headers beyond the required ones are extensions."""
    headers = [
        ("ce_specversion", b"1.0"), ("ce_id", b"b-7"), ("ce_source", b"/discovery/k8s-eu"),
        ("ce_type", b"cmdb.ci.observed"), ("ce_traceparent", TRACEPARENT.encode()),
        ("ce_comexampleextension1", b"value"), ("content-type", b"application/json"),
    ]  # fmt: skip
    event = decode(encoded(DATA), headers, default_time=LATER)
    assert event.extensions == {"traceparent": TRACEPARENT, "comexampleextension1": "value"}
    assert event.time == LATER and isinstance(event.payload, CIObserved)


def test_data_base64_carries_the_same_data() -> None:
    """`data_base64` holding the JSON bytes of the data decodes to the same payload as `data`."""
    as_bytes = WITHOUT_DATA | {"data_base64": base64.b64encode(encoded(DATA)).decode()}
    event = decode(encoded(as_bytes), default_time=LATER)
    assert event.payload == decode(encoded(SPEC_EXAMPLE), default_time=LATER).payload


WITHOUT_DATA = {k: v for k, v in SPEC_EXAMPLE.items() if k != "data"}


@pytest.mark.parametrize(
    "body",
    [
        SPEC_EXAMPLE | {"data_base64": base64.b64encode(encoded(DATA)).decode()},
        WITHOUT_DATA | {"data_base64": "not base64!"},
    ],
    ids=["both-data-and-data_base64", "not-base64"],
)
def test_bad_data_base64_is_dead_lettered(body: dict[str, Any]) -> None:
    """Both `data` and `data_base64`, or base64 that is not, are refused as invalid_value."""
    assert refused(encoded(body)).code == "invalid_value"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/json",
        "application/vnd.cmdb+json",
    ],
)
def test_json_datacontenttypes_are_read(content_type: str) -> None:
    """Any JSON media type (with parameters) is data the worker reads."""
    event = decode(encoded(SPEC_EXAMPLE | {"datacontenttype": content_type}), default_time=LATER)
    assert isinstance(event.payload, CIObserved)


def test_a_non_json_datacontenttype_is_dead_lettered_in_both_modes() -> None:
    """datacontenttype application/xml (structured) or a text/plain content-type header (binary)
    is refused as unsupported_content_type: the data is not what the worker can read."""
    xml = SPEC_EXAMPLE | {"datacontenttype": "application/xml", "data": "<ci name='billing'/>"}
    assert refused(encoded(xml)).code == "unsupported_content_type"
    headers = [
        ("ce_specversion", b"1.0"), ("ce_id", b"b-8"), ("ce_source", b"/d"),
        ("ce_type", b"cmdb.ci.observed"), ("content-type", b"text/plain"),
    ]  # fmt: skip
    invalid = refused(b"billing seen", headers)
    assert invalid.code == "unsupported_content_type" and "text/plain" in invalid.detail


@pytest.mark.parametrize("version", ["0.3", "2.0", "1"])
def test_other_specversions_are_dead_lettered_with_a_clear_reason(version: str) -> None:
    """Only CloudEvents 1.0 is read; any other specversion says which one and what is read."""
    invalid = refused(encoded(SPEC_EXAMPLE | {"specversion": version}))
    assert invalid.code == "unsupported_specversion"
    assert f"{version!r}" in invalid.detail and "1.0" in invalid.detail


def test_traceparent_is_carried_from_the_input_to_its_findings(engine: Engine) -> None:
    """The findings an event causes carry its traceparent; findings of untraced events do not."""
    traced = decode(encoded(SPEC_EXAMPLE | {"time": iso(T0)}))
    findings = engine.apply(traced, T0) or []
    assert findings and all(f.traceparent == TRACEPARENT for f in findings)
    assert json.loads(findings[0].model_dump_json())["traceparent"] == TRACEPARENT
    untraced = {k: v for k, v in SPEC_EXAMPLE.items() if k != "traceparent"}
    ledger = {"ci": {"type": "service", "name": "ledger", "environment": "prod"}}
    second = untraced | {"id": "B-2", "time": iso(T0), "data": ledger}
    other = engine.apply(decode(encoded(second)), T0)
    assert other and all("traceparent" not in f.model_dump_json() for f in other)


def test_replay_times_a_line_without_time_by_the_line_before(tmp_path: Path) -> None:
    """In replay, a line without `time` takes the previous line's time (the summary counts it);
    a first line without `time` has nothing to take and is dead-lettered."""
    first = SPEC_EXAMPLE | {"id": "first"}
    timed = SPEC_EXAMPLE | {"id": "timed", "time": iso(LATER)}
    untimed = SPEC_EXAMPLE | {"id": "untimed", "data": {"ci": DATA["ci"] | {"name": "ledger"}}}
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in (first, timed, untimed)) + "\n")
    assert main(["replay", str(events), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["times_inferred"], summary["dead_letters"]) == (1, 1)
    graph = json.loads((tmp_path / "out" / "cmdb.json").read_text())
    ledger = next(node for node in graph["nodes"] if node["name"] == "ledger")
    assert ledger["last_seen"] == iso(LATER)


@pytest.mark.kafka
def test_run_times_an_event_without_time_by_its_kafka_record(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A record produced with a timestamp, carrying a CloudEvent without `time`, is timed by
    that record timestamp (what `run` passes the decoder)."""
    create_topics(kafka_bootstrap, [unique_name])
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(unique_name, encoded(SPEC_EXAMPLE), timestamp_ms=int(LATER.timestamp() * 1000))
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        unique_name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=20000,
    )  # fmt: skip
    record = next(iter(consumer))
    consumer.close()
    event = decode(record.value, record.headers, _record_time(record))
    assert (event.time, event.time_inferred) == (LATER, True)
