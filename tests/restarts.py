"""A run of the engine that can restart from its own changelog, so each trust test is proven
live and after a rebuild alike (``run`` fixture: ``live`` and ``rebuilt``)."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from cmdb_worker.rules.policy import Policy, load_policy
from cmdb_worker.schemas.findings import Finding
from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.engine.ownership import ONE_OWNER, Ownership
from tests.events import T0, heartbeats, to_input


class Run:
    """Feeds events as replay does (each as of its own time), writing the changelog as it goes."""

    def __init__(
        self, rebuild: bool, policy: Policy | None = None, ownership: Ownership = ONE_OWNER
    ) -> None:
        self.rebuild = rebuild
        self.policy = policy or load_policy()
        self.ownership = ownership
        self.engine = Engine(self.policy, ownership)
        self.entries: list[changelog.Entry] = []

    def feed(self, *messages: dict[str, Any]) -> list[Finding]:
        findings: list[Finding] = []
        for event in map(to_input, messages):
            findings += self.engine.apply(event, event.time) or []
        self.entries += changelog.changed_entries(self.engine)
        return findings

    def tick(self, now: datetime) -> list[Finding]:
        findings = self.engine.tick(now)
        self.entries += changelog.changed_entries(self.engine)
        return findings

    def keep_alive(self, until: datetime, *sources: str, since: datetime = T0) -> list[Finding]:
        """Heartbeats of every source in ``sources`` up to ``until``, in time order."""
        beats = [beat for one in sources for beat in heartbeats(until, since=since, source=one)]
        return self.feed(*sorted(beats, key=lambda beat: str(beat["time"])))

    def restart(self) -> None:
        """In a ``rebuilt`` run, replace the engine by one rebuilt from the changelog."""
        if self.rebuild:
            self.engine = Engine(self.policy, self.ownership)
            changelog.rebuild(self.engine, self.entries)


@pytest.fixture(params=[False, True], ids=["live", "rebuilt"])
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    yield Run(request.param)


def of_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [finding for finding in findings if finding.kind == kind]
