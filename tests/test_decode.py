"""The envelope decoder: CloudEvents structured and binary, CDEvents 0.4 and 0.5+, bad input."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdb_worker.schemas.decode import InvalidEvent, decode
from cmdb_worker.schemas.events import CIObserved, Deploy, Ignored, Incident
from tests.cdevents_samples import ALL_KINDS, cdevent
from tests.events import cloudevent

OBSERVED = cloudevent(
    "cmdb.ci.observed", {"ci": {"type": "Service", "name": "api", "environment": "PROD"}}, id="o-1"
)


def test_structured_cloudevent_decodes_with_lower_cased_ids():
    """A structured CloudEvent is decoded; type and environment are lower-cased in the CI id."""
    event = decode(json.dumps(OBSERVED).encode())
    assert isinstance(event.payload, CIObserved)
    assert event.payload.ci.ci_id == "service/api@prod"
    assert event.identity == ("/discovery/a", "o-1", "cmdb.ci.observed")


def test_binary_mode_takes_attributes_from_ce_headers():
    """With ce_ headers and no cloudevents content-type, the value is the event's data."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"b-1"),
        ("ce_source", b"/disc"),
        ("ce_type", b"cmdb.ci.observed"),
        ("ce_time", b"2026-11-20T10:00:00Z"),
        ("content-type", b"application/json"),
    ]
    event = decode(json.dumps(OBSERVED["data"]).encode(), headers)
    assert (event.source, event.id) == ("/disc", "b-1")
    assert isinstance(event.payload, CIObserved)


def test_cloudevents_content_type_means_structured_even_with_ce_headers():
    """The content-type header decides the mode, not the mere presence of a ce_ header."""
    headers = {"content-type": b"application/cloudevents+json", "ce_id": b"ignored"}
    event = decode(json.dumps(OBSERVED).encode(), headers)
    assert event.id == "o-1"


def test_binary_mode_without_required_header_is_refused():
    """A binary-mode message missing ce_time is dead-lettered as missing_field."""
    headers = {
        "ce_specversion": b"1.0",
        "ce_id": b"1",
        "ce_source": b"/s",
        "ce_type": b"cmdb.ci.observed",
    }
    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(OBSERVED["data"]).encode(), headers)
    assert caught.value.code == "missing_field" and "time" in caught.value.detail


@pytest.mark.parametrize("form", ["0.4", "0.5+"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_cdevent_shape_is_accepted_bare_and_wrapped(kind, form):
    """Each CDEvents type, in both spec forms, is accepted bare and as a CloudEvent's data."""
    bare = cdevent(kind, form)
    wrapped = cloudevent(bare["context"]["type"], bare, id="ce-1", source="/ci")
    for message in (bare, wrapped):
        event = decode(json.dumps(message).encode())
        assert event.type == f"dev.cdevents.{kind}"
        assert (event.source, event.id) == ("/ci/shop", "e-1")


@pytest.mark.parametrize("form", ["0.4", "0.5+"])
def test_deploy_maps_to_the_service_ci_and_custom_data(form):
    """service.deployed names service/<subject.id>@<environment.id> and reads customData."""
    custom = {
        "change_id": "CHG1",
        "owner": "team-shop",
        "criticality": 2,
        "depends_on": [{"type": "database", "name": "cart-pg", "environment": "prod"}],
    }
    event = decode(json.dumps(cdevent("service.deployed", form, custom=custom)).encode())
    assert isinstance(event.payload, Deploy)
    assert event.payload.service.ci_id == "service/cart@prod"
    assert event.payload.change_id == "CHG1"
    assert event.payload.depends_on[0].ci_id == "database/cart-pg@prod"
    assert event.payload.artifact_id.startswith("pkg:oci/cart")


def test_incident_maps_to_its_service_ci():
    """incident.detected names service/<content.service.id>@<content.environment.id>."""
    event = decode(json.dumps(cdevent("incident.detected", "0.5+")).encode())
    assert isinstance(event.payload, Incident)
    assert event.payload.service.ci_id == "service/cart@prod"
    assert event.payload.incident_id == "inc-77"


def test_other_cdevents_are_accepted_and_ignored():
    """A CDEvent the worker has no use for decodes to Ignored, not to a dead letter."""
    event = decode(json.dumps(cdevent("pipelinerun.finished", "0.5+")).encode())
    assert isinstance(event.payload, Ignored)


def test_cdevent_without_any_spec_version_is_refused():
    """A context with neither version nor specversion is not a CDEvent."""
    message = cdevent("service.deployed", "0.5+")
    del message["context"]["specversion"]
    with pytest.raises(InvalidEvent, match="specversion"):
        decode(json.dumps(message).encode())


def test_bad_custom_data_is_refused_with_its_location():
    """A depends_on that is not a list of CI references is a wrong_type at customData."""
    message = cdevent("service.deployed", "0.5+", custom={"depends_on": "payments-pg"})
    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(message).encode())
    assert caught.value.code == "wrong_type" and "depends_on" in caught.value.detail


def _without(key: str) -> bytes:
    return json.dumps({k: v for k, v in OBSERVED.items() if k != key}).encode()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "not_json"),
        (b"", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (_without("id"), "missing_field"),
        (_without("data"), "missing_field"),
        (json.dumps(OBSERVED | {"time": "yesterday"}).encode(), "bad_time"),
        (json.dumps(OBSERVED | {"time": 1700000000}).encode(), "bad_time"),
        (json.dumps(OBSERVED | {"time": "2026-11-20T10:00:00"}).encode(), "bad_time"),
        (json.dumps(OBSERVED | {"id": 17}).encode(), "wrong_type"),
        (
            json.dumps(OBSERVED | {"data": {"ci": {"type": "host", "name": 5}}}).encode(),
            "wrong_type",
        ),
        (json.dumps(OBSERVED | {"type": "cmdb.ci.exploded"}).encode(), "unknown_type"),
        (json.dumps(OBSERVED | {"specversion": "0.3"}).encode(), "unsupported_specversion"),
        (
            json.dumps(
                OBSERVED | {"data": {"ci": {"type": "host", "name": "h", "criticality": 9}}}
            ).encode(),
            "invalid_value",
        ),
    ],
)
def test_bad_messages_are_refused_with_a_coded_reason(raw, code):
    """Each kind of bad input raises InvalidEvent with its own reason code."""
    with pytest.raises(InvalidEvent) as caught:
        decode(raw)
    assert caught.value.code == code
    assert caught.value.reason.startswith(f"{code}: ")


def test_non_utf8_header_is_refused():
    """A header that is not UTF-8 text is a bad_header, not a crash."""
    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(OBSERVED).encode(), [("ce_id", b"\xff")])
    assert caught.value.code == "bad_header"


def _decodes_or_refuses(raw: bytes, headers: list[tuple[str, bytes]]) -> None:
    try:
        decode(raw, headers)
    except InvalidEvent as invalid:
        assert invalid.code and invalid.detail


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)
KEYS = st.sampled_from(
    [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "data",
        "context",
        "subject",
        "customData",
        "ci",
        "content",
    ]
) | st.text(max_size=8)
ENVELOPE_LIKE = st.dictionaries(KEYS, JSON, max_size=8)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"]
        )
        | st.text(max_size=6),
        st.binary(max_size=20) | st.sampled_from([b"1.0", b"application/cloudevents+json"]),
    ),
    max_size=6,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), HEADERS)
def test_arbitrary_bytes_never_escape_the_decoder(raw, headers):
    """Any bytes with any headers are either decoded or refused with a reason; nothing else."""
    _decodes_or_refuses(raw, headers)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(JSON | ENVELOPE_LIKE, HEADERS)
def test_arbitrary_json_never_escapes_the_decoder(document, headers):
    """Any JSON document, envelope-shaped or not, is decoded or refused with a reason."""
    _decodes_or_refuses(json.dumps(document).encode(), headers)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(
            ["type", "name", "environment", "owner", "criticality", "identifiers", "attributes"]
        ),
        JSON,
    )
)
def test_arbitrary_ci_payloads_never_escape_the_decoder(ci):
    """A well-formed envelope around any CI payload is decoded or refused with a reason."""
    _decodes_or_refuses(json.dumps(OBSERVED | {"data": {"ci": ci}}).encode(), [])
