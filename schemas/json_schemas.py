"""JSON Schemas of the contract's messages, generated from the pydantic models (no I/O here)."""

from typing import Any

from pydantic import BaseModel, create_model

from cmdb_worker.schemas.decode import CLOUDEVENT_PAYLOADS
from cmdb_worker.schemas.envelope import CDEvent, CloudEvent
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.schemas.lessons import Lesson


def _as_cloudevent(event_type: str, payload: type[BaseModel]) -> type[BaseModel]:
    name = "".join(part.title() for part in event_type.split(".")) + "Event"
    model: type[BaseModel] = create_model(name, __base__=CloudEvent, data=(payload, ...))
    return model


def all_json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every input event, the envelopes, findings and lessons."""
    models: dict[str, type[BaseModel]] = {
        f"{event_type}.json": _as_cloudevent(event_type, payload)
        for event_type, payload in CLOUDEVENT_PAYLOADS.items()
    }
    models |= {
        "cloudevent.json": CloudEvent,
        "cdevent.json": CDEvent,
        "finding.json": Finding,
        "lesson.json": Lesson,
    }
    return {
        name: _with_id(name, model.model_json_schema()) for name, model in sorted(models.items())
    }


def _with_id(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": name, **schema}
