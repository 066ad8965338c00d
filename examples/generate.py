"""Build ``examples/events.jsonl``: a week of a small estate, as its tools would report it.

Run ``python -m examples.generate`` (``make examples``). Deterministic: the same file every time.
"""

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 11, 16, tzinfo=UTC)
END = datetime(2026, 11, 22, 12, tzinfo=UTC)
OUT = Path(__file__).with_name("events.jsonl")
K8S, VMWARE, AWS = "/discovery/k8s-prod-eu", "/discovery/vmware-dc1", "/discovery/aws-eu-west-1"

Event = dict[str, Any]


def ref(ci_type: str, name: str, environment: str | None = None) -> dict[str, str]:
    found = {"type": ci_type, "name": name}
    return found | ({"environment": environment} if environment else {})


def depends_on(*targets: dict[str, str]) -> list[dict[str, Any]]:
    return [{"type": "depends_on", "target": target} for target in targets]


def runs_on(*hosts: str) -> list[dict[str, Any]]:
    return [{"type": "runs_on", "target": ref("host", host)} for host in hosts]


SERVICES: dict[str, dict[str, Any]] = {
    "checkout-web": {
        "owner": "team-storefront",
        "criticality": 1,
        "relations": depends_on(ref("service", "payments-api", "prod"))
        + runs_on("k8s-node-1.example.net", "k8s-node-2.example.net"),
    },
    "payments-api": {
        "owner": "team-payments",
        "criticality": 1,
        "business_service": "Payments",
        "relations": depends_on(
            ref("database", "payments-pg", "prod"), ref("service", "ledger", "prod")
        )
        + runs_on("k8s-node-2.example.net", "k8s-node-3.example.net"),
    },
    "ledger": {
        "owner": "team-payments",
        "criticality": 2,
        "business_service": "Payments",
        "relations": depends_on(ref("database", "ledger-pg", "prod"))
        + runs_on("k8s-node-3.example.net"),
    },
    "search-api": {
        "owner": "team-search",
        "criticality": 2,
        "relations": depends_on(ref("database", "search-es", "prod"))
        + runs_on("k8s-node-1.example.net"),
    },
    "feature-flags": {
        "criticality": 3,  # nobody owns it: ci_no_owner
        "relations": depends_on(ref("database", "flags-redis", "prod")),
    },
    "legacy-reports": {
        "owner": "team-finance-it",
        "criticality": 3,
        "relations": runs_on("legacy01.example.net"),
    },
}
DATABASES: dict[str, dict[str, Any]] = {
    "payments-pg": {"owner": "team-dba", "criticality": 1, "host": "db01.example.net"},
    "ledger-pg": {"owner": "team-dba", "criticality": 2, "host": "db02.example.net"},
    "search-es": {"owner": "team-search", "criticality": 2, "host": "db02.example.net"},
    "flags-redis": {"owner": "team-platform", "criticality": 3, "host": "db02.example.net"},
    "analytics-pg": {"owner": "team-data", "criticality": 4, "host": None},  # nothing uses it
}
HOSTS = [
    "k8s-node-1.example.net",
    "k8s-node-2.example.net",
    "k8s-node-3.example.net",
    "db01.example.net",
    "db02.example.net",
    "legacy01.example.net",
    "batch07.example.net",
]


def cloudevent(event_id: str, source: str, event_type: str, at: datetime, data: Event) -> Event:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def every(step: timedelta, rng: random.Random, until: datetime = END) -> Iterator[datetime]:
    at = START + timedelta(minutes=rng.randint(0, 30))
    while at <= until:
        yield at
        at += step + timedelta(minutes=rng.randint(-10, 10))


def service_sightings(rng: random.Random) -> Iterator[Event]:
    stop_seeing = {"legacy-reports": START + timedelta(days=2)}  # goes stale and stays stale
    gap = (START + timedelta(days=3), START + timedelta(days=4, hours=12))  # search-api outage
    for name, facts in SERVICES.items():
        for n, at in enumerate(every(timedelta(hours=6), rng, stop_seeing.get(name, END))):
            if name == "search-api" and gap[0] <= at <= gap[1]:
                continue
            ci = ref("service", name, "prod") | {k: v for k, v in facts.items() if k != "relations"}
            ci["identifiers"] = {"k8s_uid": f"uid-{name}"}
            data = {"ci": ci, "relations": facts["relations"], "relations_complete": True}
            yield cloudevent(f"k8s-{name}-{n:03d}", K8S, "cmdb.ci.observed", at, data)
    for n, at in enumerate(every(timedelta(hours=12), rng)):
        data = {"ci": ref("service", "notifications", "staging") | {"owner": "team-growth"}}
        yield cloudevent(f"k8s-notifications-{n:03d}", K8S, "cmdb.ci.observed", at, data)


def host_scans(rng: random.Random) -> Iterator[Event]:
    """vmware sweeps every 12 h and says when each sweep is done; batch07 vanishes on day 4."""
    for n, started in enumerate(every(timedelta(hours=12), rng)):
        for i, host in enumerate(HOSTS):
            if host == "batch07.example.net" and started > START + timedelta(days=4):
                continue
            if host == "legacy01.example.net" and started > START + timedelta(days=5):
                continue
            ci = ref("host", host) | {
                "identifiers": {"fqdn": host, "serial_number": f"VMW-{i:04d}"}
            }
            if host != "batch07.example.net":
                ci["owner"] = "team-infra"
            at = started + timedelta(minutes=2 * i + 1)
            yield cloudevent(f"vmw-{n:03d}-{i}", VMWARE, "cmdb.ci.observed", at, {"ci": ci})
        scope = {"types": ["host"]}
        done = started + timedelta(minutes=30)
        yield cloudevent(
            f"vmw-scan-{n:03d}",
            VMWARE,
            "cmdb.scan.completed",
            done,
            {"scope": scope, "started_at": started.isoformat().replace("+00:00", "Z")},
        )


def cloud_inventory(rng: random.Random) -> Iterator[Event]:
    """AWS reports databases daily, and db01 under its EC2 name; the fqdn merges the two."""
    for n, at in enumerate(every(timedelta(days=1), rng)):
        for name, facts in DATABASES.items():
            ci = ref("database", name, "prod") | {
                "owner": facts["owner"],
                "criticality": facts["criticality"],
                "identifiers": {"cloud_resource_id": f"arn:rds:{name}"},
            }
            relations = runs_on(facts["host"]) if facts["host"] else []
            data = {"ci": ci, "relations": relations, "relations_complete": True}
            yield cloudevent(f"aws-{name}-{n:03d}", AWS, "cmdb.ci.observed", at, data)
        ec2 = ref("host", "ip-10-0-3-17.eu-west-1.compute.internal") | {
            "owner": "team-infra",
            "identifiers": {"fqdn": "db01.example.net", "cloud_resource_id": "i-0abc1234"},
        }
        yield cloudevent(
            f"aws-ec2-{n:03d}", AWS, "cmdb.ci.observed", at + timedelta(minutes=5), {"ci": ec2}
        )


def retirement() -> Event:
    at = START + timedelta(days=5, hours=8)
    data = {"ci": ref("host", "legacy01.example.net"), "reason": "decommissioned"}
    return cloudevent("retire-legacy01", "/itsm/servicenow", "cmdb.ci.retired", at, data)


BAD_LINES = [
    "this is not json at all",
    '["an", "array", "not", "an", "object"]',
    json.dumps(
        {k: v for k, v in cloudevent("x", K8S, "cmdb.ci.observed", START, {}).items() if k != "id"}
    ),
    json.dumps(
        cloudevent("bad-time", K8S, "cmdb.ci.observed", START, {"ci": ref("host", "h")})
        | {"time": "last tuesday"}
    ),
    json.dumps(
        cloudevent(
            "wrong-types",
            K8S,
            "cmdb.ci.observed",
            START,
            {"ci": {"type": "service", "name": ["not", "a", "name"]}},
        )
    ),
    json.dumps(cloudevent("unknown", K8S, "cmdb.ci.exploded", START, {"ci": ref("host", "h")})),
]


def all_events() -> list[Event]:
    from examples.governance_events import governance_events
    from examples.hygiene_events import hygiene_events

    rng = random.Random(20261116)
    events = [*service_sightings(rng), *host_scans(rng), *cloud_inventory(rng), retirement()]
    events += governance_events()
    events += hygiene_events()
    return sorted(events, key=_event_time)


def _event_time(line: Event) -> str:
    """RFC 3339 time of a replay line: CloudEvent time, binary-mode ce_time or CDEvent timestamp."""
    if "value" in line:
        return str(line.get("headers", {}).get("ce_time") or _event_time(line["value"]))
    return str(line.get("time") or line.get("context", {}).get("timestamp", ""))


def lines() -> list[str]:
    events = [json.dumps(event, separators=(",", ":")) for event in all_events()]
    redelivered = events[40]  # a broker redelivery: must have no second effect
    events.insert(41, redelivered)
    for offset, bad in enumerate(BAD_LINES):
        events.insert(25 + 37 * offset, bad)
    return events


def main() -> None:
    OUT.write_text("\n".join(lines()) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
