"""How far partitioned judgement would spread one event's writes over partition owners.

python -m bench.partitioning [--events N] [--partitions N ...] [--exchanged N] [--json]

Partitioned judgement (docs/architecture.md) would make the owner of an input partition the only
writer of the changelog keys its partitions own. This measures, on today's engine and without
a broker, what that would meet: every event of a stream is applied in order (as ``replay``
does), and each changelog key it changes is given an owner partition the way Kafka's default
partitioner places a key (murmur2 of the owning entity's id): a CI, change or subject by its
id, a team or source by its name, a lesson by its subject, an incident by its service. An event's
*home* is the partition its contract key (``produce``) puts it on.

For each event type and each deadline kind it reports how many owners' keys one application writes,
and which key kinds land on another owner. Under the simplest protocol (the home owner applies the
event and forwards it whole to every other owner whose keys it wrote, each writing only its own),
``owners_per_application`` is the work multiplied and ``N`` over it bounds the speed-up of N
replicas. The aggregates every partition's events add to (a source's reports, a team's DORA totals
and change outcomes) are kept per owner (``<kind>/<owner>/<name>``, written by the owner the engine,
told the partition count, gives the event or change). A deadline has no home: its owner is its
entity's. The engine passes over the stream once per partition count. Then the changelog the first
pass made is applied to a fresh global view, as a standby tails it, for its CPU per record
(``view_us_per_record``, the best of 3 passes; ``_unarmed``: without keeping the CIs' deadlines
armed), which every replica would pay for every record, whoever wrote it; and to a
``bench.lean_view.LeanView`` (``lean_view_us_per_record``), what a replica would need to keep of
other owners' entities.

Then the first ``--exchanged`` events of the stream are judged by that many owners of one
partition each, exchanging operations and changelog records (``worker.partitioned``, the
engine's half of partitioned judgement): ``operations_per_event`` is what one event sends to
other owners, by kind, the traffic an operations topic would carry.

Streams: the curated sample week (``examples/events.jsonl`` with ``examples/policy.yaml``) and
``bench.synthetic`` (~90% discovery, ~9% deploys) under the packaged policy, its services'
relations drawn anew at each observation (heavy edge churn) or stable (a settled estate).
"""

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.lean_view import LeanView
from bench.synthetic import events as synthetic_events
from cmdb_worker.rules.policy import Policy, load_policy
from cmdb_worker.schemas.decode import InvalidEvent
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker import changelog
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine import apply as engine_apply
from cmdb_worker.worker.engine import owners
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.ownership import Ownership
from cmdb_worker.worker.engine.state import State
from cmdb_worker.worker.kafka_clients import ownership
from cmdb_worker.worker.partitioned import Partitioned
from cmdb_worker.worker.processing import process
from cmdb_worker.worker.produce_command import contract_key
from cmdb_worker.worker.replay import message_from_line
from cmdb_worker.worker.settings import Settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BATCH: int = Settings.model_fields["max_poll_records"].default
"""Events per transaction, as ``run`` polls them by default: a key written several times in
one goes to the changelog once."""
Key = tuple[str, str]
"""A changelog key as the engine marks it changed: (kind, entity id)."""


@dataclass
class Spread:
    """What the applications of one event type (or deadline kind) wrote, over owners."""

    applications: int = 0
    owners: int = 0
    """Owners written, the home included, summed over applications."""
    with_foreign: int = 0
    foreign_kinds: Counter[str] = field(default_factory=Counter)

    def add(self, home: int | None, written: set[tuple[str, int]]) -> None:
        foreign = {(kind, owner) for kind, owner in written if owner != home}
        owners = _owner_count(home, written)
        self.applications += 1
        self.owners += owners
        self.with_foreign += owners > 1  # another owner than the home, or (no home) two
        self.foreign_kinds.update(kind for kind, _ in foreign)

    def merge(self, other: "Spread") -> None:
        self.applications += other.applications
        self.owners += other.owners
        self.with_foreign += other.with_foreign
        self.foreign_kinds += other.foreign_kinds

    def figures(self) -> dict[str, Any]:
        return {
            "applications": self.applications,
            "owners_per_application": round(self.owners / max(self.applications, 1), 3),
            "share_writing_another_owner": round(self.with_foreign / max(self.applications, 1), 3),
            "foreign_writes_by_kind": dict(self.foreign_kinds.most_common()),
        }


def _owner_count(home: int | None, written: set[tuple[str, int]]) -> int:
    owners = {owner for _, owner in written}
    return max(len(owners | ({home} if home is not None else set())), 1)


@dataclass
class Tally:
    """The spreads for one number of partitions, by event type and by deadline kind."""

    partitions: int
    events: defaultdict[str, Spread] = field(default_factory=lambda: defaultdict(Spread))
    owner: Ownership = field(init=False)
    deadlines: defaultdict[str, Spread] = field(default_factory=lambda: defaultdict(Spread))

    def __post_init__(self) -> None:
        self.owner = ownership(self.partitions)

    def home(self, routed: str | None) -> int | None:
        return self.owner.partition_of(routed) if routed else None

    def figures(self) -> dict[str, Any]:
        every = Spread()
        for spread in self.events.values():
            every.merge(spread)
        return {
            "events": every.figures(),
            "by_event_type": {name: s.figures() for name, s in sorted(self.events.items())},
            "by_deadline_kind": {name: s.figures() for name, s in sorted(self.deadlines.items())},
        }


class Survey:
    """Applies a stream to an engine told ``partitions`` owner partitions and attributes each
    changed key to its owner partition."""

    def __init__(self, policy: Policy, partitions: int) -> None:
        self.tally = Tally(partitions)
        self.engine = _Ticking(policy, self, self.tally.owner)
        self._fired: set[Key] = set()
        """Keys only a tick wrote during the event being applied (not the event's)."""
        self._batch: set[Key] = set()
        self._applied = 0
        self.changelog: list[changelog.Entry] = []
        self._handlers = dict(engine_apply.DEADLINE_HANDLERS)

    def run(self, lines: Iterable[str]) -> None:
        """Apply every line, its deadline handlers wrapped to see what each firing writes."""
        wrapped = {kind: self._observed(kind) for kind in self._handlers}
        engine_apply.DEADLINE_HANDLERS.update(wrapped)
        try:
            clock = EventClock()
            for line in lines:
                self._apply(line, clock)
            self._write_batch()
        finally:
            engine_apply.DEADLINE_HANDLERS.update(self._handlers)

    def _apply(self, line: str, clock: EventClock) -> None:
        try:
            message = message_from_line(line)
        except InvalidEvent:
            return  # dead-lettered by whichever owner reads it: no state written
        outcome = process(self.engine, message.value, message.headers, clock)
        event = outcome.event
        if event is None or outcome.duplicate:
            return  # dead-lettered, or applied already
        written = self.engine.state.take_dirty()
        self._batch |= written
        routed = message.key or contract_key(event)
        key = routed.decode() if routed else None
        owned = self._owners(written - self._fired)
        self.tally.events[event.type].add(self.tally.home(key), owned)
        self._fired = set()
        self._applied += 1
        if self._applied % BATCH == 0:
            self._write_batch()

    def _write_batch(self) -> None:
        """The changelog records a batch's transaction would carry: a key once, as it ends."""
        self.engine.state.dirty |= self._batch
        self._batch = set()
        self.changelog += changelog.changed_entries(self.engine)

    def _owners(self, written: set[Key]) -> set[tuple[str, int]]:
        """(kind, owner partition) of each changed key."""
        state = self.engine.state
        keys = {(kind, owners.key_owner(state, kind, entity_id)) for kind, entity_id in written}
        return {(kind, owner) for kind, owner in keys if owner is not None}

    def _observed(self, kind: DeadlineKind) -> engine_apply.DeadlineHandler:
        handler = self._handlers[kind]

        def fire(state: State, key: str, fired: DeadlineKind, now: Any) -> Any:
            before = state.take_dirty()
            findings = handler(state, key, fired, now)
            written = state.take_dirty()
            entity = owners.DEADLINE_ENTITIES[fired](state, key)
            self.tally.deadlines[fired].add(self.tally.home(entity), self._owners(written))
            state.dirty |= before | written  # put back: the tick tells them from the event's
            return findings

        return fire

    def ticked(self, before: set[Key], after: set[Key]) -> None:
        """A tick wrote ``after`` (its firings', and their findings' timelines), the event
        being applied ``before`` it: what only the tick wrote is not the event's."""
        self._fired |= after - before

    def view_seconds_per_record(self, armed: bool, repetitions: int = 3) -> float:
        """CPU seconds a global view spends per changelog record the stream made (the best of
        ``repetitions`` passes), keeping every CI's deadlines armed as it goes (``armed``, as a
        standby does) or none of them."""
        return min(self._view_pass(armed) for _ in range(repetitions))

    def lean_view_seconds_per_record(self, repetitions: int = 3) -> float:
        """The same for a ``LeanView`` (what a replica would keep of other owners' entities)."""
        return min(self._lean_view_pass() for _ in range(repetitions))

    def _lean_view_pass(self) -> float:
        started = time.process_time()
        LeanView().apply(self.changelog)
        return (time.process_time() - started) / max(len(self.changelog), 1)

    def _view_pass(self, armed: bool) -> float:
        standby = changelog.Restoring(Engine(self.engine.policy, self.engine.state.ownership))
        if armed:
            standby.finish()  # from then on deadlines are kept armed as records arrive
        started = time.process_time()
        for key, value in self.changelog:
            standby.put(key, value)
        return (time.process_time() - started) / max(len(self.changelog), 1)

    def report(self) -> dict[str, Any]:
        applied = max(self._applied, 1)
        return {
            "changelog_records_per_event": round(len(self.changelog) / applied, 3),
            "view_us_per_record": round(self.view_seconds_per_record(armed=True) * 1e6, 1),
            "view_us_per_record_unarmed": round(self.view_seconds_per_record(armed=False) * 1e6, 1),
            "lean_view_us_per_record": round(self.lean_view_seconds_per_record() * 1e6, 1),
        }


class _Ticking(Engine):
    """The engine, telling the survey what each tick wrote."""

    def __init__(self, policy: Policy, survey: Survey, owners: Ownership) -> None:
        super().__init__(policy, owners)
        self.survey = survey

    def tick(self, now: datetime) -> list[Finding]:
        before = self.state.take_dirty()
        findings = super().tick(now)
        after = self.state.take_dirty()
        self.survey.ticked(before, after)
        self.state.dirty |= before | after
        return findings


def operations(lines: Iterable[str], policy: Policy, partitions: int) -> dict[str, Any]:
    """The stream judged by ``partitions`` owners of one partition each, exchanging operations
    (``worker.partitioned``): what crosses from one owner to another, per event judged."""
    owners = Partitioned(policy, ownership(partitions), [[p] for p in range(partitions)])
    for line in lines:
        owners.feed(line.encode())
    judged = max(owners.fed - len(owners.refused), 1)
    return {
        "events": judged,
        "operations_per_event": round(owners.operations.total() / judged, 4),
        "operations_by_kind": dict(owners.operations.most_common()),
        "foreign_writes_by_kind": dict(
            Counter(key.partition("/")[0] for key in owners.foreign_writes).most_common()
        ),
    }


def survey(
    lines: Iterable[str], policy: Policy, partitions: Iterable[int], exchanged: int = 0
) -> dict[str, Any]:
    """One pass per partition count; the changelog and global view figures of the first; and
    for each count, the operations the first ``exchanged`` events send between owners."""
    stream, runners = list(lines), [Survey(policy, n) for n in partitions]
    for runner in runners:
        runner.run(stream)
    tallies = {
        str(runner.tally.partitions): runner.tally.figures()
        | {"operations": operations(stream[:exchanged], policy, runner.tally.partitions)}
        for runner in runners
    }
    return runners[0].report() | {"partitions": tallies}


def streams(events: int) -> Iterator[tuple[str, list[str], Policy]]:
    sample = (EXAMPLES / "events.jsonl").read_text().splitlines()
    yield "sample week", sample, load_policy(EXAMPLES / "policy.yaml")
    yield f"synthetic {events:,}", list(synthetic_events(events)), load_policy()
    stable = list(synthetic_events(events, stable=True))
    yield f"synthetic {events:,}, stable relations", stable, load_policy()


def _print(name: str, result: dict[str, Any]) -> None:
    records, view = result["changelog_records_per_event"], result["view_us_per_record"]
    print(f"\n{name}: {records} changelog records per event, each {view} µs of CPU to apply on"
          f" every replica's global view ({result['view_us_per_record_unarmed']} µs without"
          f" arming deadlines): {records * view:.0f} µs per event; a lean view"
          f" {result['lean_view_us_per_record']} µs per record,"
          f" {records * result['lean_view_us_per_record']:.0f} µs per event")  # fmt: skip
    for n, tally in result["partitions"].items():
        total, sent = tally["events"], tally["operations"]
        owners = total["owners_per_application"]
        kinds = ", ".join(f"{k} {v:,}" for k, v in sent["operations_by_kind"].items())
        print(f"  {n} partitions: {total['applications']:,} events applied;"
              f" {total['share_writing_another_owner']:.0%} write another owner's keys;"
              f" {owners} owners per event (speed-up bound {int(n) / owners:.2f}x);"
              f" {sent['operations_per_event']} operations to another owner per event"
              f" over the first {sent['events']:,} ({kinds}); keys still written by a"
              f" non-owner: {sent['foreign_writes_by_kind'] or 'none'}")  # fmt: skip
        for section in ("by_event_type", "by_deadline_kind"):
            for kind, figures in tally[section].items():
                kinds = ", ".join(
                    f"{k} {v:,}" for k, v in figures["foreign_writes_by_kind"].items()
                )
                print(f"    {kind}: {figures['applications']:,},"
                      f" {figures['owners_per_application']} owners each,"
                      f" {figures['share_writing_another_owner']:.0%} foreign"
                      f"{': ' + kinds if kinds else ''}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="synthetic stream's size")
    parser.add_argument(
        "--partitions", type=int, nargs="+", default=[6], help="owner counts to survey"
    )
    parser.add_argument(
        "--exchanged", type=int, default=20_000,
        help="events of each stream judged by owners exchanging operations",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args()
    results = {
        name: survey(lines, policy, args.partitions, args.exchanged)
        for name, lines, policy in streams(args.events)
    }
    if args.json:
        print(json.dumps(results))
        return
    for name, result in results.items():
        _print(name, result)


if __name__ == "__main__":
    main()
