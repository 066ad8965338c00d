"""Scale: N CIs and ~3N relations built through the real ``Engine`` (``Cmdb`` + deadlines).

    python -m bench.scale [--cis 1000000] [--json]
    python -m bench.scale --footprint [--cis 20000]


Measures, on one freshly built state (run it in a fresh process for honest memory figures):
build time; resident memory (whole process, and the growth from building); a staleness tick
with nothing due (per tick, over many ticks); a tick with 1% of the CIs falling due (a few
successive 1% slices); blast radius per change (``rules.risk.blast_radius`` at the policy's
depth, from random CIs): p50 and p99.

The graph: domains of 1000 CIs, tiered application -> service -> database -> host ->
load_balancer; each CI of the first four tiers depends on 3 CIs of the next tier in its domain,
and ~1% of host dependencies go to one of 100 shared platform CIs (cross-domain). Every CI is
applied as a ``cmdb.ci.observed`` event (already decoded: JSON decoding is the throughput
benchmark's business) via ``Engine.apply``, so the identity memory, deadline heap, strong
identifier and per-source indexes are all populated as in production.
"""

import argparse
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from cmdb_worker.rules import risk
from cmdb_worker.rules.policy import Policy, load_policy
from cmdb_worker.schemas.ci import CIRef, ObservedCI, Relation
from cmdb_worker.schemas.events import CIObserved, InputEvent
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.engine.apply import Engine

START = datetime(2026, 11, 1, tzinfo=UTC)
SPREAD = timedelta(hours=1)
"""Observations are spread over this long, so no staleness deadline falls due while building."""
DOMAIN = 1000
TIERS = (("application", 400), ("service", 300), ("database", 200), ("host", 90),
         ("load_balancer", 10))  # fmt: skip
FAN_OUT = 3
PLATFORM = 100
SOURCES = ("/discovery/k8s-prod", "/discovery/vmware", "/discovery/aws")


def bench_policy() -> Policy:
    """The packaged policy with discovery sources that never fall silent: the ticks measured here
    are CIs going stale, which CIs of a silent source do not (they become unverified instead)."""
    policy = load_policy()
    sources = policy.sources.model_copy(update={"silence_after": timedelta(days=3650)})
    return policy.model_copy(update={"sources": sources})


def _tier_of(index: int) -> tuple[int, int]:
    """(tier, position in tier) of the CI at ``index`` within its domain."""
    for tier, (_, size) in enumerate(TIERS):
        if index < size:
            return tier, index
        index -= size
    raise ValueError(index)


def _tier_start(tier: int) -> int:
    return sum(size for _, size in TIERS[:tier])


def _name(domain: int, index: int) -> str:
    return f"d{domain}-{index}"


def _ref(domain: int, index: int) -> CIRef:
    tier, _ = _tier_of(index)
    return CIRef(type=TIERS[tier][0], name=_name(domain, index), environment="prod")


def ci_id(domain: int, index: int) -> CIId:
    tier, _ = _tier_of(index)
    return CIId(f"{TIERS[tier][0]}/{_name(domain, index)}@prod")


def observations(n_cis: int, seed: int = 11, fan_out: int = FAN_OUT) -> Iterator[InputEvent]:
    """``n_cis`` decoded observations, bottom tier first (targets exist before their users)."""
    rng = random.Random(seed)
    domains = max(1, n_cis // DOMAIN)
    platform = [CIRef(type="load_balancer", name=f"platform-{i}", environment="prod")
                for i in range(PLATFORM)]  # fmt: skip
    order = [(tier, d) for tier in reversed(range(len(TIERS))) for d in range(domains)]
    total = domains * DOMAIN + PLATFORM
    step = SPREAD / total
    i = 0
    for ref in platform:
        yield _event(i, ref, [], rng, step)
        i += 1
    for tier, domain in order:
        start, size = _tier_start(tier), TIERS[tier][1]
        for index in range(start, start + size):
            relations: list[Relation] = []
            if tier + 1 < len(TIERS):
                nxt, nxt_size = _tier_start(tier + 1), TIERS[tier + 1][1]
                targets = rng.sample(range(nxt, nxt + nxt_size), min(fan_out, nxt_size))
                relations = [Relation(type="depends_on", target=_ref(domain, t)) for t in targets]
                if TIERS[tier][0] == "host" and rng.random() < 0.01:
                    relations.append(Relation(type="runs_on", target=rng.choice(platform)))
            yield _event(i, _ref(domain, index), relations, rng, step)
            i += 1


def _event(i: int, ref: CIRef, relations: list[Relation], rng: random.Random,
           step: timedelta) -> InputEvent:  # fmt: skip
    tier_owner = None if i % 50 == 0 else f"team-{i % 400}"
    ci = ObservedCI(type=ref.type, name=ref.name, environment=ref.environment, owner=tier_owner,
                    criticality=1 + i % 4, identifiers={"k8s_uid": f"uid-{i}"})  # fmt: skip
    payload = CIObserved(ci=ci, relations=relations, relations_complete=True)
    return InputEvent(rng.choice(SOURCES), f"obs-{i}", "cmdb.ci.observed", START + step * i,
                      payload)  # fmt: skip


def build(
    n_cis: int, seed: int = 11, identities: bool = False, fan_out: int = FAN_OUT
) -> tuple[Engine, float]:
    """An engine holding ``n_cis`` (+100 platform) CIs; returns it and the seconds it took.

    What changed since the last changelog write (the dirty CIs, the applied identities) is taken
    as the runner's per-batch changelog write takes it, unless ``identities``.
    """
    engine = Engine(bench_policy())
    events = observations(n_cis, seed, fan_out)
    gc.freeze()  # long-lived objects: keep the cyclic GC from rescanning the graph
    started = time.perf_counter()
    for event in events:
        engine.apply(event, event.time)
    seconds = time.perf_counter() - started
    if not identities:
        engine.applied.take_changes()
        engine.state.cmdb.take_dirty()
    return engine, seconds


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def percentiles_ms(name: str, seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``seconds``, in milliseconds, keyed ``<name>_p50_ms`` and so on."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {f"{name}_p50_ms": cuts[49] * 1e3, f"{name}_p99_ms": cuts[98] * 1e3,
            f"{name}_max_ms": max(seconds) * 1e3}  # fmt: skip


def print_result(result: dict[str, Any], as_json: bool) -> None:
    """One JSON object, or one aligned ``key value`` line per figure."""
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:24} {value:,.3f}" if isinstance(value, float) else f"{key:24} {value}")


def _deadline_quantile(engine: Engine, fraction: float) -> datetime:
    """The moment by which ``fraction`` of the currently armed deadlines have passed."""
    ats = sorted(engine.state.deadlines._current.values())
    at = ats[min(len(ats) - 1, int(len(ats) * fraction))]
    return datetime.fromtimestamp(at, UTC) + timedelta(microseconds=1)


def measure(n_cis: int, ticks: int = 20_000, due_slices: int = 3, changes: int = 2000,
            seed: int = 11) -> dict[str, Any]:  # fmt: skip
    baseline = rss_bytes()
    engine, build_seconds = build(n_cis, seed)
    gc.collect()
    graph = engine.state.cmdb.graph
    rss = rss_bytes()
    result: dict[str, Any] = {
        "cis": graph.number_of_nodes(), "relations": graph.number_of_edges(),
        "deadlines": len(engine.state.deadlines), "build_seconds": build_seconds,
        "rss_mib": rss / 2**20, "rss_growth_mib": (rss - baseline) / 2**20,
    }  # fmt: skip

    idle = START + SPREAD  # every observation is in, no deadline has passed
    started = time.perf_counter()
    for _ in range(ticks):
        assert not engine.tick(idle)
    result["idle_tick_us"] = (time.perf_counter() - started) / ticks * 1e6

    depth = engine.policy.graph.blast_radius_depth
    rng = random.Random(seed)
    nodes = list(graph)
    roots = [rng.choice(nodes) for _ in range(changes)]
    times, sizes = [], []
    for root in roots:
        began = time.perf_counter()
        sizes.append(len(risk.blast_radius(graph, [root], depth)))
        times.append(time.perf_counter() - began)
    result |= percentiles_ms("blast_radius", times) | {
        "blast_radius_p50_cis": statistics.median(sizes),
        "blast_radius_p99_cis": statistics.quantiles(sizes, n=100)[98],
    }

    due_times, due_counts = [], []
    for _ in range(due_slices):
        now = _deadline_quantile(engine, 0.01)  # the next 1% of the armed deadlines
        began = time.perf_counter()
        findings = engine.tick(now)  # each CI falling due goes stale: one ci_stale finding
        due_times.append(time.perf_counter() - began)
        due_counts.append(len(findings))
    result |= {"due_tick_ms": statistics.median(due_times) * 1e3,
               "due_tick_cis": statistics.median(due_counts),
               "due_tick_fraction": statistics.median(due_counts) / result["cis"]}  # fmt: skip
    return result


WARM_UP_CIS = 100


def footprint(n_cis: int, seed: int = 11) -> dict[str, Any]:
    """Bytes the state holds (tracemalloc) per CI at the usual mix, and per relation: the
    difference between fan-outs of 3 and 2 (same CIs, same deadlines) over the extra edges;
    then where they go (``sys.getsizeof`` of what each part alone holds, per CI). A small build
    first, untraced, so that modules imported and caches filled on first use are not counted."""
    build(WARM_UP_CIS, seed)
    full, engine = _traced(n_cis, seed, FAN_OUT)
    fewer, fewer_engine = _traced(n_cis, seed, FAN_OUT - 1)
    full_edges, fewer_edges = (e.state.cmdb.graph.number_of_edges() for e in (engine, fewer_engine))
    n = n_cis + PLATFORM
    parts = {f"of which {part}": size / n for part, size in breakdown(engine).items()}
    return {"cis": n, "relations": full_edges, "bytes_per_ci": full / n,
            "bytes_per_relation": (full - fewer) / (full_edges - fewer_edges), **parts}  # fmt: skip


def _traced(n_cis: int, seed: int, fan_out: int) -> tuple[int, Engine]:
    """Bytes traced once the state is built (and collected), and the engine."""
    gc.collect()
    tracemalloc.start()
    engine, _ = build(n_cis, seed, fan_out=fan_out)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return traced, engine


def breakdown(engine: Engine) -> dict[str, int]:
    """Bytes per part of the state, each object counted once, in the first part reaching it
    (records own their strings and times; edge data the times no record holds)."""
    cmdb, graph = engine.state.cmdb, engine.state.cmdb.graph
    deadlines = engine.state.deadlines
    parts = {
        "records": list(cmdb.records()),
        "edge data": [data for _, _, data in graph.edges(data=True)],
        "networkx adjacency": [graph._node, graph._succ, graph._pred],
        "deadlines": [deadlines._heap, deadlines._current],
        "indexes": [cmdb.strong_ids, cmdb.by_source, cmdb.aliases, cmdb.retired],
        "identities": [engine.applied._known, engine.applied._kept],
    }
    seen: set[int] = set()
    return {part: _deep_size(roots, seen) for part, roots in parts.items()}


def _deep_size(roots: list[Any], seen: set[int]) -> int:
    total, stack = 0, list(roots)
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        stack.extend(gc.get_referents(item))
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cis", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--footprint", action="store_true", help="tracemalloc bytes per CI and per relation"
    )
    args = parser.parse_args(argv)
    if args.footprint:
        print_result(footprint(args.cis), args.json)
    else:
        print_result(measure(args.cis, ticks=args.ticks, changes=args.changes), args.json)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
