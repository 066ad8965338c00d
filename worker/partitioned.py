"""Partitioned judgement in one process: owners of a stream's partitions judging it together, as
partitioned replicas would with global views that never lag (or, with ``view_lag``, that lag
by a number of events). The reference the operations are proven against
(``tests/test_partitioned.py``: the same findings as one engine) and measured with
(``bench/partitioning.py``), without a broker.

Each event goes to the engine owning its home partition (``ownership.home_key``). After it, and
until nothing moves: every operation handed over is received by its entity's owner, every
changelog record an engine writes is put into every other engine's view (a ``Restoring`` kept
armed, as a standby tails ``cmdb.state``), and the deadlines due fire one at a time in their
common order, whichever engine holds them, as the wall clock would have them fall due one
after another. An event whose CI another owner holds (an alias, a strong identifier) is
forwarded whole to it by its home (``Rehomed``). Each record should be of a key its writer owns
(``owners.key_owner``): that is what partitioned ownership promises; ``foreign_writes`` lists
those that are not.
"""

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.decode import InvalidEvent, decode
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker import changelog
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine import owners
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.ownership import Ownership, home_key


class Partitioned:
    """``len(groups)`` engines, engine ``i`` owning the partitions in ``groups[i]``."""

    def __init__(
        self,
        policy: Policy,
        ownership: Ownership,
        groups: list[list[int]],
        deliveries: int = 1,
        view_lag: int = 0,
    ) -> None:
        self.ownership = ownership
        self.deliveries = deliveries
        """How often each operation is delivered: a redelivery must change nothing."""
        self.view_lag = view_lag
        """How many further events are judged before the records an engine writes reach the
        other engines' views (0: none; they arrive before any operation sent with them is
        delivered). Operations are never late."""
        self.in_flight: list[tuple[int, int, list[changelog.Entry]]] = []
        """(events fed when due, writer, records) not yet in the other views: they arrive
        before the next event after that."""
        self.engines = [Engine(policy, ownership.owning(group)) for group in groups]
        self.views = [changelog.Restoring(engine) for engine in self.engines]
        for view in self.views:
            view.finish()  # armed: each record applied keeps its CIs' deadlines armed
        self.clock = EventClock()
        self.fed = 0
        """Events fed, refused ones included."""
        self.refused: list[tuple[int, str]] = []
        """(place in the stream, reason code) of each event refused."""
        self.foreign_writes: list[str] = []
        """Changelog keys written by an engine that does not own them."""
        self.operations: Counter[str] = Counter()
        """Operations handed from one engine to another, by kind."""

    def owner_of(self, entity: str) -> Engine:
        """The engine owning ``entity``'s partition."""
        partition = self.ownership.partition_of(entity)
        return next(e for e in self.engines if partition in (e.state.ownership.owned or ()))

    def feed(self, value: bytes) -> list[Finding]:
        """The findings one event (a message's value) causes, on whichever owners they
        arise."""
        self.fed += 1
        self._arrive(lambda fed_when_due: fed_when_due < self.fed)
        try:
            event = decode(value)
            now = self.clock.at(event.time)
            findings = self.owner_of(home_key(event) or event.source).judge(event, now) or []
        except InvalidEvent as invalid:  # dead-lettered, as ``process`` does
            self.refused.append((self.fed, invalid.code))
            return []
        self.clock.now(event.time)
        return findings + self._settle(now)

    def _settle(self, now: datetime) -> list[Finding]:
        """Exchange until nothing moves, then fire the deadlines due, one at a time in their
        common order (as they would fall due by the wall clock), exchanging after each."""
        findings: list[Finding] = []
        while True:
            while self._exchange():
                findings += self._received(now)
            due = [(entry, engine) for engine in self.engines
                   if (entry := engine.state.deadlines.next_due(now)) is not None]  # fmt: skip
            if not due:
                return findings
            _, earliest = min(due, key=lambda pair: pair[0])
            findings += earliest.fire_next(now) or []

    def _received(self, now: datetime) -> list[Finding]:
        """Deliver the operations handed over so far (each after its sender's records, which
        ``_exchange`` put in every view); those applying them hands over wait for the next
        exchange."""
        findings: list[Finding] = []
        handed = [operation for engine in self.engines for operation in engine.take_outgoing()]
        for operation in handed:
            self.operations[operation.kind] += 1
            owner = self.owner_of(operation.entity)
            for _ in range(self.deliveries):
                findings += owner.receive(operation, now)
        return findings

    def _exchange(self) -> bool:
        """Send every engine's new records towards the others' views (there at once without
        lag); whether anything moved."""
        moved = any(engine.outgoing for engine in self.engines)
        for writer, engine in enumerate(self.engines):
            entries = changelog.changed_entries(engine)
            for key, _ in entries:
                self._check_owned(engine, key)
            self.in_flight.append((self.fed + self.view_lag, writer, entries))
            moved |= bool(entries)
        if not self.view_lag:
            self.catch_up()
        return moved

    def catch_up(self) -> None:
        """Every record written so far reaches every view (the views' lag has passed)."""
        self._arrive(lambda _: True)

    def _arrive(self, due: Callable[[int], bool]) -> None:
        """Put the records in flight that are ``due`` into the other engines' views."""
        arriving = [flight for flight in self.in_flight if due(flight[0])]
        self.in_flight = [flight for flight in self.in_flight if not due(flight[0])]
        for _, writer, entries in arriving:
            for reader, view in enumerate(self.views):
                if reader != writer:
                    for key, value in entries:
                        view.put(key, value)

    def _check_owned(self, engine: Engine, key: str) -> None:
        kind, _, entity_id = key.partition("/")
        owner = owners.key_owner(engine.state, kind, entity_id)
        if owner is not None and owner not in (engine.state.ownership.owned or ()):
            self.foreign_writes.append(key)
