"""A stream whose judgement does not depend on how partitions interleave, for replica tests.

Kafka orders a partition, not a topic: replicas (and a failover between them) see the
partitions of the input interleaved differently from the file a ``replay`` reads. So every event
of a CI goes to one partition (key: the CI's id; deploys of a service are keyed by the service)
and on one topic, and all event times fall within ``SPAN``, shorter than every deadline of the
default policy (orphan grace 1 h, phantom grace 1 d, source silence 6 h, staleness in days), so no
deadline fires in either run. Findings then depend on each CI's own events only: owners missing
(``ci_no_owner``) and deploys in prod with no change (``deploy_unauthorized``, and one
``unauthorized_deploys`` lesson per service). Relations cross partitions (services depend on
databases that run on hosts), so a blast radius needs the whole graph.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.events import T0, observed
from tests.governance_helpers import deploy

SPAN = timedelta(minutes=30)
SERVICES_PER_DATABASE = 5
DATABASES_PER_HOST = 4
DEPLOY_EVERY = 10
"""Every tenth event is a deploy of the service whose turn it is."""


def service_name(n: int) -> str:
    return f"svc{n:05d}"


def database_name(n: int) -> str:
    return f"db{n // SERVICES_PER_DATABASE:04d}"


def host_name(n: int) -> str:
    return f"host{n // (SERVICES_PER_DATABASE * DATABASES_PER_HOST):03d}.example.net"


def ci_key(message: dict[str, Any]) -> str:
    """The partition key: the observed CI's id, or the deployed service's."""
    if "ci" in message.get("data", {}):
        ci = message["data"]["ci"]
        environment = f"@{ci['environment']}" if ci.get("environment") else ""
        return f"{ci['type']}/{ci['name']}{environment}"
    return f"service/{message['subject']['id']}@prod"


def stream(count: int, services: int, start: datetime = T0) -> list[dict[str, Any]]:
    """``count`` events over ``services`` services (and their databases and hosts), in time
    order within ``SPAN`` from ``start``: observations round-robin, every ``DEPLOY_EVERY``-th a
    deploy."""
    step = SPAN / count
    return [_event(i, services, start + i * step) for i in range(count)]


def _event(i: int, services: int, time: Any) -> dict[str, Any]:
    n = (i // 3) % services
    if i % DEPLOY_EVERY == DEPLOY_EVERY - 1:
        return deploy(service_name(n), id=f"deploy-{i}", time=time)
    return [_service, _database, _host][i % 3](n, i, time)


def _service(n: int, i: int, time: Any) -> dict[str, Any]:
    owner = None if n % 7 == 0 else f"team-{n % 11}"
    return observed(service_name(n), id=f"obs-{i}", time=time, owner=owner,
                    relations=[("depends_on", f"database/{database_name(n)}@prod")])  # fmt: skip


def _database(n: int, i: int, time: Any) -> dict[str, Any]:
    return observed(database_name(n), ci_type="database", id=f"obs-{i}", time=time,
                    owner="team-dba", relations=[("runs_on", f"host/{host_name(n)}")])  # fmt: skip


def _host(n: int, i: int, time: Any) -> dict[str, Any]:
    return observed(host_name(n), ci_type="host", environment=None, id=f"obs-{i}", time=time,
                    owner="team-infra")  # fmt: skip
