"""Synthetic event streams for benchmarks: a realistic mix at any size, deterministic by seed."""

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 11, 1, tzinfo=UTC)
SOURCES = ("/discovery/k8s-prod", "/discovery/vmware", "/discovery/aws")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def observation(
    i: int, n_services: int, rng: random.Random, at: datetime, stable: bool = False
) -> dict[str, Any]:
    """A service observed with 0-3 dependencies: drawn anew each time, or (``stable``) always
    the same ones for the same service, as a settled estate reports them."""
    service = rng.randrange(n_services)
    picks = random.Random(service) if stable else rng
    targets = {picks.randrange(n_services) for _ in range(picks.randint(0, 3))} - {service}
    relations = [
        {
            "type": "depends_on",
            "target": {"type": "service", "name": f"svc-{t}", "environment": "prod"},
        }
        for t in targets
    ]
    relations.append(
        {"type": "runs_on", "target": {"type": "host", "name": f"node-{service % 500}.example.net"}}
    )
    ci = {
        "type": "service",
        "name": f"svc-{service}",
        "environment": "prod",
        "owner": f"team-{service % 40}",
        "criticality": 1 + service % 4,
        "identifiers": {"k8s_uid": f"uid-{service}"},
    }
    return {
        "specversion": "1.0",
        "id": f"obs-{i}",
        "source": rng.choice(SOURCES),
        "type": "cmdb.ci.observed",
        "time": _iso(at),
        "data": {"ci": ci, "relations": relations, "relations_complete": True},
    }


def deploy(i: int, n_services: int, rng: random.Random, at: datetime) -> dict[str, Any]:
    service = rng.randrange(n_services)
    return {
        "context": {
            "specversion": "0.5.0",
            "id": f"dep-{i}",
            "source": "/ci/pipeline",
            "type": "dev.cdevents.service.deployed.0.3.0",
            "timestamp": _iso(at),
        },
        "subject": {
            "id": f"svc-{service}",
            "content": {"environment": {"id": "prod"}, "artifactId": f"pkg:oci/svc-{service}@v{i}"},
        },
        "customData": {"change_id": f"CHG{service:06d}"},
    }


def events(
    count: int, n_services: int = 5000, seed: int = 7, stable: bool = False
) -> Iterator[str]:
    """``count`` replay lines: ~90% discovery, ~9% deploys, ~1% bad lines, over ~10 days;
    ``stable``: each service's relations stay the same (see ``observation``)."""
    rng = random.Random(seed)
    step = timedelta(days=10) / max(count, 1)
    for i in range(count):
        at = START + step * i
        roll = rng.random()
        if roll < 0.01:
            yield "{not json"
        elif roll < 0.10:
            yield json.dumps(deploy(i, n_services, rng, at))
        else:
            yield json.dumps(observation(i, n_services, rng, at, stable))


def write(path: Path, count: int, n_services: int = 5000) -> Path:
    with path.open("w") as handle:
        for line in events(count, n_services):
            handle.write(line + "\n")
    return path
