"""A generated discovery stream that exercises what a restart must keep: CIs seen often or
rarely (some go stale and come back), orphans, CIs without owner, host retirements with legacy
services still pointing at them, strong-identifier merges and completed scans."""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.events import T0, observed, retired, scan_completed

EVENTS = 3000
K8S, VMWARE, AWS, IMPORT = (
    "/discovery/k8s", "/discovery/vmware", "/discovery/aws", "/discovery/cmdb-import",
)  # fmt: skip


@dataclass(frozen=True)
class Fleet:
    """The CIs of the generated stream and the relations each one always reports."""

    hosts: list[str]
    databases: list[str]
    services: list[str]
    legacy: list[str]
    doomed: list[str]
    relations: dict[str, list[tuple[str, str]]]


def fleet(rng: random.Random) -> Fleet:
    hosts = [f"h{n:02d}.example.net" for n in range(40)]
    doomed = [f"old{n}.example.net" for n in range(4)]
    databases = [f"db{n:02d}" for n in range(20)]
    services = [f"svc{n:03d}" for n in range(120)]
    legacy = [f"legacy{n}" for n in range(8)]
    relations: dict[str, list[tuple[str, str]]] = {}
    for n, name in enumerate(services):  # every 10th service reports no relations: an orphan
        relations[name] = [] if n % 10 == 0 else [
            ("depends_on", f"database/{rng.choice(databases)}@prod"),
            ("runs_on", f"host/{rng.choice(hosts)}"),
        ]  # fmt: skip
    for n, name in enumerate(databases):
        relations[name] = [] if n % 7 == 0 else [("runs_on", f"host/{rng.choice(hosts)}")]
    for n, name in enumerate(legacy):
        relations[name] = [("runs_on", f"host/{doomed[n % 4]}"),
                           ("depends_on", f"database/{rng.choice(databases)}@prod")]  # fmt: skip
    return Fleet(hosts, databases, services, legacy, doomed, relations)


def discovery_stream(count: int = EVENTS, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` discovery events a minute apart (5% arrive up to 30 min late): observations of
    CIs seen often or rarely (so some go stale and come back), orphans, CIs without owner,
    host retirements with legacy services still pointing at them, strong-identifier merges and
    completed scans. Finding ids of a replay are unique."""
    rng = random.Random(seed)
    ci = fleet(rng)
    events = [observe_host(ci, host, n, T0, f"boot-{n}") for n, host in enumerate(ci.doomed)]
    for step in range(len(events), count):
        at = T0 + timedelta(minutes=step)
        late = at - timedelta(minutes=rng.randint(1, 30)) if rng.random() < 0.05 else at
        events.append(special(ci, step, at) or observation(ci, rng, step, late))
    return events


def special(ci: Fleet, step: int, at: datetime) -> dict[str, Any] | None:
    """Retirements, merges and scans at fixed steps; legacy services only early on."""
    if step % 500 == 250 and step // 500 < len(ci.doomed):
        return retired("host", ci.doomed[step // 500], time=at, id=f"retire-{step}")
    if step % 300 == 150:
        n = step // 300
        return observed(f"import-{n}.example.net", ci_type="host", environment=None,
                        source=IMPORT, time=at, id=f"merge-{step}", owner="team-infra",
                        identifiers={"serial_number": f"SN-{ci.hosts[n]}"})  # fmt: skip
    if step % 400 == 399:
        return scan_completed(started=at - timedelta(hours=6), time=at, source=VMWARE,
                              types=["host"], id=f"scan-{step}")  # fmt: skip
    if step < 200 and step % 25 == 0:
        name = ci.legacy[step // 25]
        return observed(name, source=K8S, time=at, id=f"legacy-{step}", owner="team-legacy",
                        relations=ci.relations[name], complete=True)  # fmt: skip
    return None


def observation(ci: Fleet, rng: random.Random, step: int, at: datetime) -> dict[str, Any]:
    """One observation of a CI picked with a skewed weight: a few often, many rarely."""
    kind = rng.choices(["service", "host", "database"], weights=[6, 2, 2])[0]
    names = {"service": ci.services, "host": ci.hosts, "database": ci.databases}[kind]
    n = min(int(rng.paretovariate(0.6)) - 1, len(names) - 1)
    if kind == "host":
        return observe_host(ci, names[n], n, at, f"e-{step}")
    owner = {} if n % 9 == 4 else {"owner": f"team-{n % 6}"}
    return observed(names[n], ci_type=kind, source=K8S if kind == "service" else AWS, time=at,
                    id=f"e-{step}", relations=ci.relations[names[n]], complete=True,
                    criticality=1 + n % 4, **owner)  # fmt: skip


def observe_host(ci: Fleet, host: str, n: int, at: datetime, event_id: str) -> dict[str, Any]:
    return observed(host, ci_type="host", environment=None, source=VMWARE, time=at,
                    id=event_id, owner="team-infra",
                    identifiers={"serial_number": f"SN-{host}", "fqdn": host})  # fmt: skip
