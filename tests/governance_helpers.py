"""Builders of governance events for tests: change requests and updates, CDEvents, lesson edits."""

from datetime import datetime
from typing import Any

from cmdb_worker.schemas.findings import Finding
from tests.events import T0, cloudevent, iso, observed

ITSM, PIPELINE, MONITORING = "/itsm/servicenow", "/pipelines/argo", "/monitoring/prod"
SAFE = {"rollback_plan": "helm rollback", "rollback_automated": True, "canary": True}
"""The fields of a change that gives no reason for concern."""


def ref(ci_id: str) -> dict[str, str]:
    """``database/pg@prod`` as a CI reference."""
    ci_type, rest = ci_id.split("/", 1)
    name, _, environment = rest.partition("@")
    return {"type": ci_type, "name": name} | ({"environment": environment} if environment else {})


def change_requested(
    change_id: str, *cis: str, time: datetime = T0, id: str | None = None, **fields: Any
) -> dict[str, Any]:
    data = {"change_id": change_id, "cis": [ref(ci) for ci in cis], "owner": "team-a", **fields}
    event_id = id or f"req-{change_id}-{iso(time)}"
    return cloudevent("itsm.change.requested", data, id=event_id, source=ITSM, time=time)


def change_updated(
    change_id: str, *, time: datetime = T0, id: str | None = None, **fields: Any
) -> dict[str, Any]:
    event_id = id or f"upd-{change_id}-{iso(time)}"
    data = {"change_id": change_id, **fields}
    return cloudevent("itsm.change.updated", data, id=event_id, source=ITSM, time=time)


def cdevent(
    kind: str, subject_id: str, content: dict[str, Any], *, id: str, time: datetime,
    source: str = PIPELINE, custom: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A bare CDEvent 0.5+ (``context.specversion``)."""
    context = {"specversion": "0.5.0", "id": id, "source": source,
               "type": f"dev.cdevents.{kind}.0.2.0", "timestamp": iso(time)}  # fmt: skip
    event = {"context": context, "subject": {"id": subject_id, "content": content}}
    return event | ({"customData": custom} if custom else {})


def deploy(
    service: str, *, id: str, time: datetime = T0, environment: str = "prod",
    predicate: str = "deployed", artifact: str | None = None, **custom: Any,
) -> dict[str, Any]:  # fmt: skip
    """``service.<predicate>`` of ``service`` (a name); ``custom`` becomes ``customData``."""
    content: dict[str, Any] = {"environment": {"id": environment}}
    content["artifactId"] = artifact or f"pkg:oci/{service}@{id}"
    return cdevent(f"service.{predicate}", service, content, id=id, time=time, custom=custom)


def incident(
    incident_id: str, service: str | None, *, id: str, time: datetime = T0,
    predicate: str = "detected", environment: str = "prod",
) -> dict[str, Any]:  # fmt: skip
    content: dict[str, Any] = {"environment": {"id": environment}, "description": "errors"}
    if service:
        content["service"] = {"id": service}
    return cdevent(
        f"incident.{predicate}", incident_id, content, id=id, time=time, source=MONITORING
    )


def lesson_updated(
    lesson_id: str, *, id: str, time: datetime = T0, **fields: Any
) -> dict[str, Any]:
    data = {"lesson_id": lesson_id, **fields}
    return cloudevent("cmdb.lesson.updated", data, id=id, source="/people/portal", time=time)


def payments_estate(time: datetime = T0) -> list[dict[str, Any]]:
    """checkout-web -> payments-api -> payments-pg (each depends on the next), all in prod."""
    return [
        observed("payments-pg", ci_type="database", owner="team-dba", criticality=2, time=time),
        observed("payments-api", owner="team-payments", criticality=1, time=time,
                 relations=[("depends_on", "database/payments-pg@prod")]),
        observed("checkout-web", owner="team-storefront", criticality=1, time=time,
                 relations=[("depends_on", "service/payments-api@prod")]),
    ]  # fmt: skip


def of_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [finding for finding in findings if finding.kind == kind]
