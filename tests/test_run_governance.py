"""Change governance through ``cmdb-worker run`` on a real broker, across a restart.

The sample week under its policy (a freeze, templates) goes to one input partition in two
halves; the worker is killed with -9 between them and restarted, so everything after the cut
(the conflict with a change from before it, deploys judged against changes as they stood, the
team failure rate from earlier outcomes) is judged from state rebuilt from ``cmdb.state``.
"""

from collections.abc import Callable
from pathlib import Path

import pytest

from cmdb_worker.worker.replay import message_from_line
from tests.worker_process import (
    Message,
    WorkerProcess,
    WorkerTopics,
    findings_of,
    produce,
    read_topic,
    replay_lines,
    wait_caught_up,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CUT = "chg-evt-974"
"""The request of CHG0030455, which conflicts with a change requested before the restart."""


def sample_messages(topic: str) -> list[Message]:
    lines = (EXAMPLES / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [
        Message(topic, message.value, message.key, message.headers)
        for message in map(message_from_line, lines)
    ]


def test_governance_week_across_a_restart_equals_its_replay(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path,
    worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:  # fmt: skip
    """Findings of run, killed and restarted mid-week, equal one replay's: same ids, once each,
    and every governance finding and reason among them."""
    topics = WorkerTopics(unique_name)
    topics.create(kafka_bootstrap)
    messages = sample_messages(topics.discovery)
    cut = next(n for n, m in enumerate(messages) if CUT.encode() in m.value)
    policy = EXAMPLES / "policy.yaml"
    clean = replay_lines([m.replay_line() for m in messages], tmp_path / "clean", policy)
    env = worker_env(kafka_bootstrap, topics, policy=str(policy), max_poll_records=10)

    produce(kafka_bootstrap, messages[:cut])
    first = worker(env).wait_ready()
    wait_caught_up(kafka_bootstrap, env["CMDB_WORKER_GROUP_ID"], topics.inputs, worker=first)
    first.kill()
    before_restart = len(read_topic(kafka_bootstrap, topics.findings))
    produce(kafka_bootstrap, messages[cut:])
    second = worker(env).wait_ready()
    wait_caught_up(kafka_bootstrap, env["CMDB_WORKER_GROUP_ID"], topics.inputs, worker=second)

    findings = findings_of(read_topic(kafka_bootstrap, topics.findings))
    ids = [finding["id"] for finding in findings]
    assert len(ids) == len(set(ids)) == len(clean.findings)
    assert set(ids) == {finding["id"] for finding in clean.findings}
    after_restart = {finding["data"]["kind"] for finding in findings[before_restart:]}
    assert {"change_conflict", "deploy_unauthorized", "change_assessed"} <= after_restart
    reasons = {r["code"] for f in findings for r in f["data"]["reasons"]}
    assert {
        "conflicting_change", "team_failure_rate", "in_freeze_window", "change_out_of_scope",
        "outside_change_window", "stale_dependents",
    } <= reasons  # fmt: skip
