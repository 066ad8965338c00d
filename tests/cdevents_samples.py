"""CDEvents in the shapes pipelines put on the wire: the 0.4 form (``context.version``,
``subject.type``) and the 0.5+ form (``context.specversion``), with links, chainId, schemaUri
and customData as real producers send them. Values are this project's own."""

from typing import Any

LINKS = [
    {
        "linkType": "RELATION",
        "linkKind": "TRIGGER",
        "target": {"contextId": "c-0001"},
        "tags": {"team": "release"},
    },
    {"linkType": "PATH", "from": {"contextId": "c-0001"}},
    {"linkType": "END", "from": {"contextId": "c-0001"}},
]

CONTENT: dict[str, dict[str, Any]] = {
    "service.deployed": {
        "environment": {"id": "prod", "source": "/k8s/eu"},
        "artifactId": "pkg:oci/cart@sha256%3Aabc",
    },
    "service.upgraded": {"environment": {"id": "prod"}, "artifactId": "pkg:oci/cart@sha256%3Adef"},
    "service.rolledback": {
        "environment": {"id": "prod"},
        "artifactId": "pkg:oci/cart@sha256%3Aabc",
    },
    "service.removed": {"environment": {"id": "prod"}},
    "service.published": {"environment": {"id": "prod"}},
    "incident.detected": {
        "description": "p99 latency over 800ms",
        "environment": {"id": "prod"},
        "service": {"id": "cart", "source": "/k8s/eu"},
        "artifactId": "pkg:oci/cart@sha256%3Adef",
    },
    "incident.reported": {
        "description": "customers see 502s",
        "environment": {"id": "prod"},
        "service": {"id": "cart"},
        "ticketURI": "https://tickets.example/42",
    },
    "incident.resolved": {
        "description": "latency back to normal",
        "environment": {"id": "prod"},
        "service": {"id": "cart"},
    },
    "environment.created": {"name": "pr-17", "url": "https://pr-17.example"},
    "environment.modified": {"name": "pr-17"},
    "environment.deleted": {"name": "pr-17"},
    "pipelinerun.finished": {
        "pipelineName": "build-cart",
        "outcome": "success",
        "url": "https://ci.example/run/9",
    },
    "change.merged": {"repository": {"id": "shop/cart", "source": "https://git.example"}},
    "ticket.created": {
        "summary": "Flaky checkout",
        "ticketType": "bug",
        "creator": "bob",
        "uri": "https://tickets.example/43",
    },
    "ticket.updated": {
        "summary": "Flaky checkout",
        "updatedBy": "carol",
        "uri": "https://tickets.example/43",
    },
    "ticket.closed": {
        "resolution": "completed",
        "updatedBy": "carol",
        "uri": "https://tickets.example/43",
    },
}
SUBJECT_IDS = {
    "incident": "inc-77",
    "environment": "env-pr-17",
    "pipelinerun": "run-9",
    "change": "pr-1234",
    "ticket": "ticket-43",
}


def cdevent(
    kind: str,
    form: str,
    *,
    event_id: str = "e-1",
    subject_id: str | None = None,
    custom: Any = None,
) -> dict[str, Any]:
    """A CDEvent of ``kind`` (``service.deployed``) in ``form`` "0.4" or "0.5+"."""
    subject_type = kind.split(".")[0]
    context: dict[str, Any] = {
        "id": event_id,
        "chainId": "chain-1",
        "source": "/ci/shop",
        "type": f"dev.cdevents.{kind}.{'0.2.0' if form == '0.4' else '0.3.0'}",
        "timestamp": "2026-11-20T10:15:00.123456Z",
        "schemaUri": "https://shop.example/schema",
        "links": LINKS,
    }
    context |= {"version": "0.4.1"} if form == "0.4" else {"specversion": "0.5.0"}
    subject: dict[str, Any] = {
        "id": subject_id or SUBJECT_IDS.get(subject_type, "cart"),
        "source": "/ci/shop",
        "content": CONTENT[kind],
    }
    if form == "0.4":
        subject["type"] = subject_type
    event = {"context": context, "subject": subject}
    if custom is not None:
        event |= {"customData": custom, "customDataContentType": "application/json"}
    return event


ALL_KINDS = sorted(CONTENT)
