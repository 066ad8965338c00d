"""Blast radius per change on a 1,000,000-CI CMDB: p50/p99 per change, build time, memory.

    python -m bench.blast_radius [--cis 1000000] [--changes 1000] [--seed 3] [--json]

The graph is built in the real ``Cmdb`` of an ``Engine``'s ``State`` with ``observe`` and
``relate``, as discovery fills it; edges run from a CI to what it depends on:

- 5,000 services in three tiers: edge services depend on 2-4 mid or core services, mid on 1-3
  core, core on 0-2 other core services (so there are cycles); popular services are chosen
  more often (a few carry much of the estate). Each depends on 1-2 of 5,000 databases.
- 5,000 databases, each runs_on one of 40,000 hosts; each host runs_on one of 200 clusters.
- The rest (949,800 at 1M) are instances: each part_of its service, runs_on a host and
  connects_to one of its service's databases: about 3 edges each, ~2.9M edges in all.

Then ``--changes`` random changes (1-3 CIs each: services 50%, databases 20%, hosts 25%,
clusters 5%) are timed two ways: the bare traversal of the whole radius (``rules.risk.
blast_radius`` at the policy's depth, no limit), and the whole assessment, ``Engine.apply`` of
an ``itsm.change.requested`` (resolve CIs, blast radius up to ``graph.blast_radius_limit``,
records, reasons, top dependents, the ``change_assessed`` finding).
Run it in a fresh process for honest memory figures.
"""

import argparse
import gc
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from bench.scale import percentiles_ms, print_result, rss_bytes
from cmdb_worker.rules import risk
from cmdb_worker.rules.policy import load_policy
from cmdb_worker.schemas.ci import CIRef, ObservedCI, Relation
from cmdb_worker.schemas.events import ChangeRequested, InputEvent
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.engine.apply import Engine

SEEN_AT = datetime(2026, 11, 20, tzinfo=UTC)
CHANGES_AT = SEEN_AT + timedelta(hours=2)
SOURCE = "/discovery/bench"
SERVICES, DATABASES, HOSTS, CLUSTERS = 5000, 5000, 40_000, 200
TIERS = (("edge", 0.4, 2, 4), ("mid", 0.4, 1, 3), ("core", 0.2, 0, 2))
"""(tier, share of the services, fewest and most services it depends on, in lower tiers)."""
CHANGE_KINDS, CHANGE_WEIGHTS = ("service", "database", "host", "cluster"), (0.5, 0.2, 0.25, 0.05)


@dataclass
class Estate:
    """The CI references of the generated estate, by type, for picking change scopes."""

    services: list[CIRef]
    databases: list[CIRef]
    hosts: list[CIRef]
    clusters: list[CIRef]

    def pick(self, kind: str, rng: random.Random) -> CIRef:
        refs: list[CIRef] = getattr(self, f"{kind}s")
        return rng.choice(refs)


def refs(ci_type: str, count: int) -> list[CIRef]:
    return [CIRef(type=ci_type, name=f"{ci_type}-{i}", environment="prod") for i in range(count)]


def add(engine: Engine, ref: CIRef, relations: list[tuple[str, CIRef]], criticality: int) -> None:
    """Observe one CI and its relations, exactly as a discovery source's report would."""
    cmdb = engine.state.cmdb
    ci = ObservedCI(**ref.model_dump(), owner="team-bench", criticality=criticality)
    observation = cmdb.observe(SOURCE, SEEN_AT, ci)
    assert observation is not None
    edges = [Relation(type=kind, target=target) for kind, target in relations]
    cmdb.relate(observation.ci_id, SOURCE, SEEN_AT, edges, False)


def service_dependencies(rng: random.Random) -> list[list[int]]:
    """For each service, the services it depends on, in lower tiers (core: in core too).

    Within the tiers it may pick from, a service of rank r is picked with weight 1/(r+1), so
    a few popular services carry much of the estate, as platform services do.
    """
    bounds, start = [], 0
    for _, share, _, _ in TIERS:
        bounds.append((start, start + int(SERVICES * share)))
        start = bounds[-1][1]
    deps: list[list[int]] = []
    for tier, (first, last) in enumerate(bounds):
        fewest, most = TIERS[tier][2:]
        lower = range(bounds[min(tier + 1, len(TIERS) - 1)][0], SERVICES)
        weights = list(accumulate(1 / (rank + 1) for rank in range(len(lower))))
        for service in range(first, last):
            picks = rng.choices(lower, cum_weights=weights, k=rng.randint(fewest, most))
            deps.append(sorted(set(picks) - {service}))
    return deps


def build(n_cis: int, seed: int) -> tuple[Engine, Estate, float]:
    """The estate in a fresh engine's CMDB; returns it and the seconds building took."""
    rng = random.Random(seed)
    engine = Engine(load_policy())
    estate = Estate(refs("service", SERVICES), refs("database", DATABASES), refs("host", HOSTS),
                    refs("cluster", CLUSTERS))  # fmt: skip
    gc.freeze()
    started = time.perf_counter()
    _build_infrastructure(engine, estate, rng)
    service_dbs = _build_services(engine, estate, rng)
    _build_instances(engine, estate, service_dbs, n_cis - _fixed_count(), rng)
    return engine, estate, time.perf_counter() - started


def _fixed_count() -> int:
    return SERVICES + DATABASES + HOSTS + CLUSTERS


def _build_infrastructure(engine: Engine, estate: Estate, rng: random.Random) -> None:
    for cluster in estate.clusters:
        add(engine, cluster, [], 2)
    for host in estate.hosts:
        add(engine, host, [("runs_on", rng.choice(estate.clusters))], 3)
    for database in estate.databases:
        add(engine, database, [("runs_on", rng.choice(estate.hosts))], rng.randint(1, 3))


def _build_services(engine: Engine, estate: Estate, rng: random.Random) -> list[list[CIRef]]:
    service_dbs = [rng.sample(estate.databases, rng.randint(1, 2)) for _ in estate.services]
    for index, deps in enumerate(service_dependencies(rng)):
        relations = [("depends_on", estate.services[dep]) for dep in deps]
        relations += [("depends_on", database) for database in service_dbs[index]]
        add(engine, estate.services[index], relations, rng.randint(1, 4))
    return service_dbs


def _build_instances(
    engine: Engine, estate: Estate, service_dbs: list[list[CIRef]], count: int,
    rng: random.Random,
) -> None:  # fmt: skip
    for i in range(count):
        service = rng.randrange(SERVICES)
        relations = [("part_of", estate.services[service]), ("runs_on", rng.choice(estate.hosts)),
                     ("connects_to", rng.choice(service_dbs[service]))]  # fmt: skip
        ref = CIRef(type="instance", name=f"instance-{i}", environment="prod")
        add(engine, ref, relations, 4)


def random_change(number: int, estate: Estate, rng: random.Random) -> InputEvent:
    kinds = rng.choices(CHANGE_KINDS, CHANGE_WEIGHTS, k=rng.randint(1, 3))
    scope = [estate.pick(kind, rng) for kind in kinds]
    request = ChangeRequested(change_id=f"CHG{number:07d}", cis=scope, rollback_plan="undo",
                              rollback_automated=True, canary=True)  # fmt: skip
    at = CHANGES_AT + timedelta(seconds=number)
    return InputEvent("/itsm/bench", f"chg-{number}", "itsm.change.requested", at, request)


def measure(n_cis: int, changes: int, seed: int) -> dict[str, Any]:
    baseline = rss_bytes()
    engine, estate, build_seconds = build(n_cis, seed)
    gc.collect()
    graph = engine.state.cmdb.graph
    result: dict[str, Any] = {
        "cis": graph.number_of_nodes(), "relations": graph.number_of_edges(),
        "build_seconds": build_seconds, "rss_mib": rss_bytes() / 2**20,
        "rss_growth_mib": (rss_bytes() - baseline) / 2**20,
    }  # fmt: skip
    rng = random.Random(seed + 1)
    events = [random_change(n, estate, rng) for n in range(changes)]
    return result | _traversal(engine, events) | _assessment(engine, events)


def _traversal(engine: Engine, events: list[InputEvent]) -> dict[str, Any]:
    """The bare traversal, unbounded (the whole radius), to show what the limit saves."""
    graph, depth = engine.state.cmdb.graph, engine.policy.graph.blast_radius_depth
    times, sizes = [], []
    for event in events:
        roots = [CIId(ref.ci_id) for ref in event.payload.cis]  # type: ignore[union-attr]
        began = time.perf_counter()
        sizes.append(len(risk.blast_radius(graph, roots, depth)))
        times.append(time.perf_counter() - began)
    return percentiles_ms("blast_radius", times) | {
        "blast_radius_cis_p50": statistics.median(sizes),
        "blast_radius_cis_p99": statistics.quantiles(sizes, n=100, method="inclusive")[98],
        "blast_radius_cis_max": max(sizes),
    }


def _assessment(engine: Engine, events: list[InputEvent]) -> dict[str, Any]:
    """Wall time per assessment, and CPU time (steadier when other processes share the cores)."""
    times, cpu = [], []
    for event in events:
        began, began_cpu = time.perf_counter(), time.process_time()
        findings = engine.apply(event, event.time)
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
        assert findings and findings[0].kind == "change_assessed"
    return percentiles_ms("assessment", times) | percentiles_ms("assessment_cpu", cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cis", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    print_result(measure(args.cis, args.changes, args.seed), args.json)


if __name__ == "__main__":
    main()
