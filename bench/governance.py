"""Conflict detection and deploy authorisation with 100,000 open changes: p50/p99 per event.

    python -m bench.governance [--cis 200000] [--open-changes 100000] [--events 2000] [--json]

The estate is ``bench.blast_radius``'s (services in tiers, databases, hosts, clusters and
instances, ~3 edges per CI). ``--open-changes`` approved changes, each on 1-3 services,
databases or hosts and planned for 1-4 hours somewhere in the next 90 days, are put straight
into the state and its open-changes index (setting up, not measured). Then, timed per event:

- ``conflicts``: finding the conflicts of a new change (index lookup of the changes on its CIs
  and their direct neighbours, window overlap, relation) -- the work this benchmark is about;
- ``change_request``: ``Engine.apply`` of the whole ``itsm.change.requested`` (blast radius,
  every reason incl. conflicts, the findings);
- ``deploy``: ``Engine.apply`` of a ``service.deployed`` linked to a random open change on a
  service (refresh of the service, authorisation against the change as it stood, history).
"""

import argparse
import random
import time
from datetime import timedelta
from typing import Any

from bench.blast_radius import CHANGES_AT, Estate, build
from bench.scale import percentiles_ms, print_result, rss_bytes
from cmdb_worker.rules import conflicts
from cmdb_worker.schemas.changes import ChangeRecord
from cmdb_worker.schemas.ci import CIRef
from cmdb_worker.schemas.events import ChangeRequested, Deploy, InputEvent
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.engine import governance
from cmdb_worker.worker.engine.apply import Engine

HORIZON_HOURS = 90 * 24
SCOPE_KINDS, SCOPE_WEIGHTS = ("service", "database", "host"), (0.6, 0.2, 0.2)


def change_request(number: int, estate: Estate, rng: random.Random) -> ChangeRequested:
    """An approved, safe change on 1-3 CIs, planned for 1-4 hours within the horizon."""
    start = CHANGES_AT + timedelta(hours=rng.uniform(0, HORIZON_HOURS))
    kinds = rng.choices(SCOPE_KINDS, SCOPE_WEIGHTS, k=rng.randint(1, 3))
    return ChangeRequested(
        change_id=f"CHG{number:07d}", cis=[estate.pick(kind, rng) for kind in kinds],
        owner="team-bench", state="approved", rollback_plan="undo", rollback_automated=True,
        canary=True, planned_start=start.isoformat(),
        planned_end=(start + timedelta(hours=rng.uniform(1, 4))).isoformat(),
    )  # fmt: skip


def open_changes(engine: Engine, estate: Estate, count: int, rng: random.Random) -> None:
    """Put ``count`` open changes into the state and its index, as if requested long ago."""
    for number in range(count):
        request = change_request(number, estate, rng)
        change = ChangeRecord(request=request, requested_at=CHANGES_AT, updated_at=CHANGES_AT)
        engine.state.changes[change.id] = change
        governance.index_change(engine.state, change)


def timed_conflicts(engine: Engine, requests: list[ChangeRequested]) -> dict[str, Any]:
    state, times, found = engine.state, [], 0
    for request in requests:
        change = ChangeRecord(request=request, requested_at=CHANGES_AT + timedelta(days=1),
                              updated_at=CHANGES_AT)  # fmt: skip
        ids = [CIId(ref.ci_id) for ref in request.cis]
        began = time.perf_counter()
        nearby = governance.candidates(state, ids)
        found += len(conflicts.find(state.cmdb.graph, change, ids, nearby).earlier)
        times.append(time.perf_counter() - began)
    return percentiles_ms("conflicts", times) | {"conflicts_per_change": found / len(requests)}


def timed_apply(name: str, engine: Engine, events: list[InputEvent]) -> dict[str, Any]:
    times = []
    for event in events:
        began = time.perf_counter()
        engine.apply(event, event.time)
        times.append(time.perf_counter() - began)
    return percentiles_ms(name, times)


def request_events(requests: list[ChangeRequested]) -> list[InputEvent]:
    at = CHANGES_AT + timedelta(days=1)
    return [
        InputEvent("/itsm/bench", f"req-{r.change_id}", "itsm.change.requested", at, r)
        for r in requests
    ]


def deploy_events(engine: Engine, count: int, rng: random.Random) -> list[InputEvent]:
    """Deploys of a service of a random open change, at a random time near its window."""
    on_services = [c for c in engine.state.changes.values() if c.request.cis[0].type == "service"]
    events = []
    for number in range(count):
        change = rng.choice(on_services)
        service: CIRef = change.request.cis[0]
        assert change.request.planned_start is not None
        at = change.request.planned_start + timedelta(hours=rng.uniform(-3, 5))
        payload = Deploy(predicate="deployed", service=service, artifact_id=f"pkg:oci/x@{number}",
                         change_id=change.id)  # fmt: skip
        events.append(InputEvent("/pipelines/bench", f"deploy-{number}",
                                 "dev.cdevents.service.deployed", at, payload))  # fmt: skip
    return events


def measure(n_cis: int, n_open: int, n_events: int, seed: int) -> dict[str, Any]:
    engine, estate, build_seconds = build(n_cis, seed)
    rng = random.Random(seed + 1)
    began = time.perf_counter()
    open_changes(engine, estate, n_open, rng)
    result: dict[str, Any] = {
        "cis": engine.state.cmdb.graph.number_of_nodes(),
        "open_changes": len(engine.state.open_changes),
        "build_seconds": build_seconds, "open_changes_seconds": time.perf_counter() - began,
    }  # fmt: skip
    requests = [change_request(n_open + n, estate, rng) for n in range(n_events)]
    result |= timed_conflicts(engine, requests)
    result |= timed_apply("change_request", engine, request_events(requests))
    result |= timed_apply("deploy", engine, deploy_events(engine, n_events, rng))
    return result | {"rss_mib": rss_bytes() / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cis", type=int, default=200_000)
    parser.add_argument("--open-changes", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    print_result(measure(args.cis, args.open_changes, args.events, args.seed), args.json)


if __name__ == "__main__":
    main()
