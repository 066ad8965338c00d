"""One message through the engine (``worker.processing``): what moves an event clock. A replica
restarted from the changelog resumes its clock at the newest applied event, so an event its
handler refused (dead-lettered, not remembered) must not have moved the clock either."""

import json

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.worker.clock import EventClock
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.processing import process
from tests.events import at, observed
from tests.governance_helpers import lesson_updated


def test_only_an_applied_event_moves_an_event_clock() -> None:
    engine, clock = Engine(load_policy()), EventClock()
    process(engine, json.dumps(observed("api", time=at(hours=1))).encode(), [], clock)
    refused = lesson_updated("LL-0009", id="edit", time=at(hours=5), status="Done")
    outcome = process(engine, json.dumps(refused).encode(), [], clock)
    assert outcome.invalid is not None and outcome.invalid.code == "unknown_lesson"
    assert process(engine, b"{not json", [], clock).invalid is not None
    assert clock.now() == at(hours=1) == engine.applied.last_applied_at
    process(engine, json.dumps(observed("web", time=at(hours=2))).encode(), [], clock)
    assert clock.now() == at(hours=2)
