"""Turn one raw message (value bytes + headers) into a validated ``InputEvent``, or say why not.

Envelope detection follows the CloudEvents Kafka binding: a ``content-type`` header of
``application/cloudevents...`` means structured mode; otherwise ``ce_specversion`` means binary
mode; otherwise the value is a structured CloudEvent or a bare CDEvent, told apart by its keys.
Per CloudEvents 1.0: ``time`` is optional, ``data_base64`` carries data as bytes,
``datacontenttype`` must name JSON (the only data the worker reads), extension attributes are
kept on the event, and a ``specversion`` other than 1.0 is refused.
"""

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from cmdb_worker.schemas.ci import CIRef, NonBlank
from cmdb_worker.schemas.envelope import CDEvent, CloudEvent
from cmdb_worker.schemas.events import (
    ChangeRequested,
    ChangeUpdated,
    CIObserved,
    CIRetired,
    Deploy,
    EventPayload,
    Ignored,
    Incident,
    InputEvent,
    LessonUpdated,
    Payload,
    ScanCompleted,
    SuppressionSet,
)

Headers = Mapping[str, bytes] | Iterable[tuple[str, bytes]]

CLOUDEVENT_PAYLOADS: dict[str, type[Payload]] = {
    "cmdb.ci.observed": CIObserved,
    "cmdb.ci.retired": CIRetired,
    "cmdb.scan.completed": ScanCompleted,
    "itsm.change.requested": ChangeRequested,
    "itsm.change.updated": ChangeUpdated,
    "cmdb.lesson.updated": LessonUpdated,
    "cmdb.suppression.set": SuppressionSet,
}
CDEVENTS_PREFIX = "dev.cdevents."
SPEC_VERSION = "1.0"
JSON_MEDIA = re.compile(r"^\s*(application|text)/([\w.-]+\+)?json\s*(;|$)", re.IGNORECASE)
"""``datacontenttype`` values whose data is JSON: application/json, text/json, */*+json."""


class InvalidEvent(Exception):
    """A message that can never be applied; ``code`` is a bounded label, ``detail`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


class _IdRef(BaseModel):
    id: NonBlank


class _ServiceContent(BaseModel):
    environment: _IdRef | None = None
    artifactId: str | None = None


class _IncidentContent(BaseModel):
    environment: _IdRef | None = None
    service: _IdRef | None = None
    description: str | None = None


class _DeployCustomData(BaseModel):
    change_id: NonBlank | None = None
    depends_on: list[CIRef] = []
    owner: NonBlank | None = None
    criticality: int | None = None


def decode(
    value: bytes | None, headers: Headers = (), default_time: datetime | None = None
) -> InputEvent:
    """Decode one message; raises ``InvalidEvent`` for anything that can't be applied.

    ``default_time`` stands in for a CloudEvent that has no ``time`` (the attribute is optional
    in CloudEvents 1.0): ``run`` passes the Kafka record's timestamp, ``replay`` the previous
    line's time. The event then says ``time_inferred``.
    """
    text_headers = _text_headers(headers)
    try:
        return _decode_message(value, text_headers, default_time)
    except ValidationError as error:
        raise _invalid_from(error) from None


def _decode_message(
    value: bytes | None, headers: dict[str, str], default_time: datetime | None
) -> InputEvent:
    if _is_binary_mode(headers):
        return _from_cloudevent(_binary_attributes(value, headers), default_time)
    body = _json_object(value)
    if "specversion" not in body and "context" in body:
        return _from_cdevent(CDEvent.model_validate(body))
    return _from_cloudevent(_structured_attributes(body), default_time)


def _is_binary_mode(headers: dict[str, str]) -> bool:
    if headers.get("content-type", "").startswith("application/cloudevents"):
        return False
    return "ce_specversion" in headers


def _binary_attributes(value: bytes | None, headers: dict[str, str]) -> dict[str, Any]:
    """Kafka binding, binary mode: every ``ce_`` header is an attribute (extensions too), the
    ``content-type`` header is ``datacontenttype`` and the value is the data."""
    attributes: dict[str, Any] = {
        name.removeprefix("ce_"): text for name, text in headers.items() if name.startswith("ce_")
    }
    if "content-type" in headers:
        attributes["datacontenttype"] = headers["content-type"]
    _require_json_content(attributes.get("datacontenttype"))
    return {**attributes, "data": _json_object(value)}


def _structured_attributes(body: dict[str, Any]) -> dict[str, Any]:
    """Structured mode: ``data`` as JSON, or ``data_base64`` holding the data's bytes."""
    _require_json_content(body.get("datacontenttype"))
    if "data_base64" not in body:
        return body
    if "data" in body:
        raise InvalidEvent("invalid_value", "an event carries 'data' or 'data_base64', not both")
    attributes = {name: value for name, value in body.items() if name != "data_base64"}
    return {**attributes, "data": _json_object(_base64(body["data_base64"]))}


def _base64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise InvalidEvent("wrong_type", "data_base64: must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as error:  # binascii.Error is a ValueError
        raise InvalidEvent("invalid_value", f"data_base64 is not base64 ({error})") from None


def _require_json_content(content_type: Any) -> None:
    if content_type is None or (isinstance(content_type, str) and JSON_MEDIA.match(content_type)):
        return
    raise InvalidEvent(
        "unsupported_content_type",
        f"datacontenttype {content_type!r} is not JSON; the worker reads JSON data only",
    )


def _require_spec_version(attributes: dict[str, Any]) -> None:
    version = attributes.get("specversion")
    if version is not None and version != SPEC_VERSION:
        raise InvalidEvent(
            "unsupported_specversion",
            f"specversion {version!r}: the worker reads CloudEvents {SPEC_VERSION} only",
        )


def _from_cloudevent(attributes: dict[str, Any], default_time: datetime | None) -> InputEvent:
    _require_spec_version(attributes)
    event = CloudEvent.model_validate(attributes)
    if event.type.startswith(CDEVENTS_PREFIX):  # the CDEvent's own context gives its time
        cdevent = _from_cdevent(CDEvent.model_validate(event.data))
        return replace(cdevent, extensions=event.extensions)
    model = CLOUDEVENT_PAYLOADS.get(event.type)
    if model is None:
        raise InvalidEvent("unknown_type", f"event type {event.type!r} is not one the worker reads")
    payload: Any = model.model_validate(event.data)
    time = event.time or default_time
    if time is None:
        raise InvalidEvent("missing_field", "time: absent, and no record time to fall back to")
    return InputEvent(
        event.source, event.id, event.type, time, payload, event.extensions,
        time_inferred=event.time is None,
    )  # fmt: skip


def _from_cdevent(event: CDEvent) -> InputEvent:
    kind = event.context.subject_and_predicate
    builder = CDEVENT_BUILDERS.get(kind)
    payload = builder(event) if builder else Ignored(cdevent_type=event.context.type)
    ctx = event.context
    return InputEvent(ctx.source, ctx.id, f"{CDEVENTS_PREFIX}{kind}", ctx.timestamp, payload)


def _deploy(event: CDEvent) -> EventPayload:
    content = _ServiceContent.model_validate(event.subject.content)
    custom = _DeployCustomData.model_validate(_custom_data(event))
    environment = content.environment.id if content.environment else None
    return Deploy(
        predicate=event.context.subject_and_predicate.split(".")[1],
        service=CIRef(type="service", name=event.subject.id, environment=environment),
        artifact_id=content.artifactId,
        change_id=custom.change_id,
        depends_on=custom.depends_on,
        owner=custom.owner,
        criticality=custom.criticality,
    )


def _incident(event: CDEvent) -> EventPayload:
    content = _IncidentContent.model_validate(event.subject.content)
    environment = content.environment.id if content.environment else None
    service = (
        CIRef(type="service", name=content.service.id, environment=environment)
        if content.service
        else None
    )
    return Incident(
        predicate=event.context.subject_and_predicate.split(".")[1],
        incident_id=event.subject.id,
        service=service,
        description=content.description,
    )


def _custom_data(event: CDEvent) -> dict[str, Any]:
    return event.customData if isinstance(event.customData, dict) else {}


CDEVENT_BUILDERS: dict[str, Callable[[CDEvent], EventPayload]] = {
    **dict.fromkeys(
        ("service.deployed", "service.upgraded", "service.rolledback", "service.removed"), _deploy
    ),
    **dict.fromkeys(("incident.detected", "incident.reported", "incident.resolved"), _incident),
}


def _text_headers(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    try:
        return {key.lower(): (raw or b"").decode("utf-8") for key, raw in pairs}
    except (UnicodeDecodeError, AttributeError) as error:
        raise InvalidEvent("bad_header", f"headers must be UTF-8 text ({error})") from None


def _json_object(value: bytes | None) -> dict[str, Any]:
    try:
        body = json.loads(value or b"")
    except (ValueError, RecursionError) as error:
        raise InvalidEvent("not_json", f"value is not JSON ({error})") from None
    if not isinstance(body, dict):
        raise InvalidEvent("not_an_object", f"value is a JSON {type(body).__name__}, not an object")
    return body


ERROR_CODES = {
    "missing": "missing_field",
    "timezone_aware": "bad_time",
    "literal_error": "invalid_value",
    "string_pattern_mismatch": "invalid_value",
    "greater_than_equal": "invalid_value",
    "less_than_equal": "invalid_value",
    "string_too_short": "invalid_value",
}


def _invalid_from(error: ValidationError) -> InvalidEvent:
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or "value"
    return InvalidEvent(_error_code(first["type"]), f"{location}: {first['msg']}")


def _error_code(pydantic_type: str) -> str:
    if pydantic_type in ERROR_CODES:
        return ERROR_CODES[pydantic_type]
    if pydantic_type.startswith(("datetime", "date", "time")):
        return "bad_time"
    if pydantic_type.endswith("_type") or pydantic_type.endswith("_parsing"):
        return "wrong_type"
    return "invalid_value"
