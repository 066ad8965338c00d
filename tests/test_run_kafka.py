"""``cmdb-worker run`` against the real broker: every envelope and producer, and poison messages.

The worker runs as a subprocess on single-partition topics of its own; its findings are read
back as a ``read_committed`` consumer would and compared with ``cmdb-worker replay`` of the very
same lines (same bytes, same headers, same order), both judged by event time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cdevents_samples import cdevent
from tests.events import T0, cloudevent, iso, observed, retired, scan_completed
from tests.worker_process import (
    Message,
    WorkerProcess,
    WorkerTopics,
    findings_of,
    id_kinds,
    kcat_produce,
    produce,
    read_topic,
    replay_lines,
    wait_caught_up,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

K8S, VMWARE, IMPORT = "/discovery/k8s-prod", "/discovery/vmware-dc1", "/discovery/cmdb-import"
CI_JSON = "application/cloudevents+json"
Mode = str  # "structured", "structured+ct" (content-type header), "binary" (ce_ headers)


# ------------------------------------------------------------------------------ envelopes
def as_message(topic: str, key: str, event: dict[str, Any], mode: Mode) -> Message:
    """A CloudEvent dict as a Kafka message in structured or binary mode."""
    if mode == "binary":
        attributes = ("specversion", "id", "source", "type", "time")
        headers = [(f"ce_{name}", str(event[name]).encode()) for name in attributes]
        headers.append(("content-type", b"application/json"))
        return Message(topic, _json(event["data"]), key.encode(), headers)
    headers = [("content-type", CI_JSON.encode())] if mode == "structured+ct" else []
    return Message(topic, _json(event), key.encode(), headers)


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def cd(
    kind: str, form: str, event_id: str, at: datetime, subject: str, content: dict[str, Any],
    custom: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A bare CDEvent (``form`` "0.4": ``context.version``; "0.5+": ``context.specversion``)."""
    event = cdevent(kind, form, event_id=event_id, subject_id=subject, custom=custom)
    event["context"]["timestamp"] = iso(at)
    event["subject"]["content"] = content
    return event


def prod(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"environment": {"id": "prod"}, **(extra or {})}


def depends(name: str) -> dict[str, Any]:
    return {"depends_on": [{"type": "database", "name": name, "environment": "prod"}]}


# ------------------------------------------------------------------------------ the event set
def cicd_messages(topic: str) -> list[tuple[Message, str]]:
    """Pipelines and monitoring, all before the first discovery event (T0), each service once.

    Every deployed service declares a dependency (so no orphan deadline is armed at a time that
    depends on when the worker happens to read this topic).
    """
    t = T0 - timedelta(hours=6)
    deployed = cd("service.deployed", "0.4", "cd-1", t, "cart",
                  prod({"artifactId": "pkg:oci/cart@sha256:a1"}),
                  {**depends("cart-pg"), "owner": "team-cart", "criticality": 2})  # fmt: skip
    upgraded = cd("service.upgraded", "0.5+", "cd-2", t + timedelta(minutes=5), "search",
                  prod({"artifactId": "pkg:oci/search@sha256:b2"}),
                  {**depends("search-es"), "owner": "team-search"})  # fmt: skip
    rolledback = cd("service.rolledback", "0.5+", "cd-3", t + timedelta(minutes=10), "pay",
                    prod({"artifactId": "pkg:oci/pay@sha256:c3"}), depends("pay-pg"))  # fmt: skip
    detected = cd("incident.detected", "0.4", "cd-4", t + timedelta(minutes=30), "inc-1",
                  prod({"service": {"id": "cart"}, "description": "p99 over 800ms"}))  # fmt: skip
    reported = cd("incident.reported", "0.5+", "cd-5", t + timedelta(minutes=40), "inc-2",
                  prod({"service": {"id": "search"}, "description": "502s"}))  # fmt: skip
    wrapped = cd("service.deployed", "0.5+", "cd-6", t + timedelta(minutes=50), "ledger",
                 prod({"artifactId": "pkg:oci/ledger@1"}), depends("ledger-pg"))  # fmt: skip
    staging = cd("service.deployed", "0.4", "cd-7", t + timedelta(hours=1), "shop",
                 {"environment": {"id": "staging"}, "artifactId": "pkg:oci/shop@1"},
                 {"depends_on": [{"type": "database", "name": "shop-db"}]})  # fmt: skip
    pipeline = cd("pipelinerun.finished", "0.5+", "cd-8", t + timedelta(hours=2), "run-9",
                  {"pipelineName": "build-cart", "outcome": "success"})  # fmt: skip
    resolved = cd("incident.resolved", "0.4", "cd-9", t + timedelta(hours=3), "inc-1",
                  prod({"service": {"id": "cart"}}))  # fmt: skip
    removed = cd("service.removed", "0.5+", "cd-10", t + timedelta(hours=4), "shop",
                 {"environment": {"id": "staging"}})  # fmt: skip
    ce_wrapped = cloudevent(
        "dev.cdevents.service.deployed.0.3.0", wrapped, id="ce-cd-6", source="/ci/shop",
        time=t + timedelta(minutes=50),
    )  # fmt: skip
    ce_binary = cloudevent(
        "dev.cdevents.service.deployed.0.2.0", staging, id="ce-cd-7", source="/ci/shop",
        time=t + timedelta(hours=1),
    )  # fmt: skip
    bare = [
        (deployed, "kafka-python"), (upgraded, "kcat"), (rolledback, "kafka-python"),
        (detected, "kafka-python"), (reported, "kcat"),
    ]  # fmt: skip
    messages = [(Message(topic, _json(e), e["subject"]["id"].encode()), via) for e, via in bare]
    messages += [
        (as_message(topic, "ledger", ce_wrapped, "structured+ct"), "kafka-python"),
        (as_message(topic, "shop", ce_binary, "binary"), "kcat"),
    ]
    tail = [(pipeline, "kcat"), (resolved, "kafka-python"), (removed, "kafka-python")]
    return messages + [(Message(topic, _json(e), b"x"), via) for e, via in tail]


def change_messages(topic: str) -> list[tuple[Message, str]]:
    """Two change requests and an update on CIs nothing else touches, before T0."""
    t = T0 - timedelta(hours=5)
    risky = {
        "change_id": "CHG-1", "type": "normal", "title": "Migrate legacy-db",
        "cis": [{"type": "database", "name": "legacy-db", "environment": "prod"}],
        "owner": "team-legacy", "requested_by": "alice", "rollback_plan": None,
        "rollback_automated": False, "canary": False, "db_migration": True, "state": "requested",
    }  # fmt: skip
    safe = risky | {
        "change_id": "CHG-2", "type": "standard", "title": "Scale batch",
        "cis": [{"type": "service", "name": "batch", "environment": "dev"}],
        "rollback_plan": "helm rollback", "rollback_automated": True, "canary": True,
        "db_migration": False,
    }  # fmt: skip
    update = {"change_id": "CHG-2", "canary": False, "state": "approved"}
    events = [
        (cloudevent("itsm.change.requested", risky, id="chg-e1", source="/itsm/sn", time=t),
         "structured", "kafka-python"),
        (cloudevent("itsm.change.requested", safe, id="chg-e2", source="/itsm/sn",
                    time=t + timedelta(minutes=10)), "binary", "kafka-python"),
        (cloudevent("itsm.change.updated", update, id="chg-e3", source="/itsm/sn",
                    time=t + timedelta(minutes=20)), "binary", "kcat"),
    ]  # fmt: skip
    return [
        (as_message(topic, event["data"]["change_id"], event, mode), via)
        for event, mode, via in events
    ]


def discovery_events() -> list[dict[str, Any]]:
    """Two days of discovery, time-ordered: merges, a retirement, a scan, stale and fresh CIs."""
    hosts = [f"node-{n}.example.net" for n in range(1, 5)]
    events = [
        observed(host, ci_type="host", environment=None, source=VMWARE, time=T0,
                 owner="team-infra", id=f"vm-{host}-0",
                 identifiers={"fqdn": host, "serial_number": f"SN-{n}"})
        for n, host in enumerate(hosts, start=1)
    ]  # fmt: skip
    events += [
        observed("db-main", ci_type="database", owner="dba", source=K8S, id="db-main-0",
                 time=T0 + timedelta(minutes=1), relations=[("runs_on", f"host/{hosts[0]}")],
                 complete=True),
        observed("db-lonely", ci_type="database", owner="dba", source=K8S, id="db-lonely-0",
                 time=T0 + timedelta(minutes=1)),
    ]  # fmt: skip
    events += [service(i, T0 + timedelta(minutes=2), hosts) for i in range(10)]
    events.append(
        observed("node-1-renamed.example.net", ci_type="host", environment=None, source=IMPORT,
                 time=T0 + timedelta(minutes=10), id="import-1", owner="team-infra",
                 identifiers={"serial_number": "SN-1"})
    )  # fmt: skip
    for hour in range(1, 41):
        events += hourly(hour, hosts)
    return events


def service(i: int, at: datetime, hosts: list[str], host: str | None = None) -> dict[str, Any]:
    """Service ``svc-i``: depends on db-main, runs on a host; svc-3 and svc-7 have no owner."""
    owner = {} if i in (3, 7) else {"owner": f"team-{i}"}
    relations = [("depends_on", "database/db-main@prod"),
                 ("runs_on", f"host/{host or hosts[i % 4]}")]  # fmt: skip
    return observed(f"svc-{i}", source=K8S, time=at, id=f"svc-{i}-{iso(at)}",
                    relations=relations, complete=True, criticality=1 + i % 4, **owner)  # fmt: skip


def hourly(hour: int, hosts: list[str]) -> list[dict[str, Any]]:
    """svc-0..5 every hour (svc-6 once more at hour 30); hosts 1-2 every 6 h, host 3 until 12."""
    at = T0 + timedelta(hours=hour)
    moved = hosts[0] if hour > 20 else None  # node-4 is retired at hour 20
    names = [*range(6), *([6] if hour == 30 else [])]
    events = [service(i, at, hosts, moved if i == 3 else None) for i in names]
    if hour % 6 == 0:
        events += [
            observed(host, ci_type="host", environment=None, source=VMWARE, time=at,
                     owner="team-infra", id=f"vm-{host}-{hour}")
            for host in hosts[: 3 if hour <= 12 else 2]
        ]  # fmt: skip
    if hour == 20:
        events.append(retired("host", hosts[3], time=at + timedelta(minutes=1), id="retire-n4"))
    if hour == 36:
        events.append(
            scan_completed(started=T0 + timedelta(hours=30), time=at + timedelta(minutes=2),
                           source=VMWARE, types=["host"], id="scan-36")
        )  # fmt: skip
    return events


def discovery_messages(topic: str) -> list[tuple[Message, str]]:
    """Each discovery event in one of three envelopes; hours 10-14 written by kcat."""
    modes: list[Mode] = ["structured", "binary", "structured+ct"]
    messages = []
    for n, event in enumerate(discovery_events()):
        key = event["data"]["ci"]["name"] if "ci" in event["data"] else "scan"
        hour = (datetime.fromisoformat(event["time"]) - T0) / timedelta(hours=1)
        via = "kcat" if 10 <= hour < 15 else "kafka-python"
        messages.append((as_message(topic, key, event, modes[n % 3]), via))
    return messages


def send_in_order(bootstrap: str, messages: list[tuple[Message, str]]) -> None:
    """Produce with kafka-python or kcat, run by run, so each partition keeps the given order."""
    run: list[Message] = []
    via = ""
    for message, producer in [*messages, (None, "")]:
        if producer != via and run:
            (kcat_produce if via == "kcat" else produce)(bootstrap, run)
            run = []
        via = producer
        if message is not None:
            run.append(message)


# ------------------------------------------------------------------------------ tests
def test_every_envelope_and_producer_yields_the_replay_findings(
    kafka_bootstrap: str, unique_name: str, worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """CloudEvents (structured and binary), bare and wrapped CDEvents 0.4 and 0.5+, sent by
    kafka-python and by kcat (``-H`` for binary mode), yield exactly the findings (ids and kinds)
    of a replay of the same lines, judged by event time; the result can't depend on how the
    worker interleaves topics, because every order-sensitive event is on the one discovery
    partition and pipeline and ITSM events, earlier than all of discovery, touch other CIs."""
    topics = WorkerTopics(unique_name)
    topics.create(kafka_bootstrap)
    running = worker(worker_env(kafka_bootstrap, topics)).wait_ready()

    messages = [
        *cicd_messages(topics.cicd), *change_messages(topics.changes),
        *discovery_messages(topics.discovery),
    ]  # fmt: skip
    assert {via for _, via in messages} == {"kafka-python", "kcat"}
    send_in_order(kafka_bootstrap, messages)
    wait_caught_up(kafka_bootstrap, f"{unique_name}-group", topics.inputs, worker=running)

    expected = replay_lines([m.replay_line() for m, _ in messages], tmp_path / "replay")
    got = findings_of(read_topic(kafka_bootstrap, topics.findings))
    assert expected.dead_letters == []
    assert read_topic(kafka_bootstrap, topics.dlq) == []
    assert {kind for _, kind in id_kinds(got)} >= {
        "ci_no_owner", "ci_orphan", "ci_duplicate_merged", "relation_dangling", "ci_stale",
        "ci_stale_resolved", "ci_missing_from_scan", "deploy_unauthorized", "deploy_rolled_back",
        "incident_correlated", "change_assessed", "change_missing_rollback", "lesson_filed",
    }  # fmt: skip
    assert id_kinds(got) == id_kinds(expected.findings)
    assert len(got) == len(expected.findings)


POISON_REASONS = {b"poison-not-json": "not_json", b"poison-schema": "missing_field",
                  b"poison-garbage": "not_json"}  # fmt: skip


def poison_and_good(topic: str) -> list[Message]:
    """Good observations with three poison messages between them, all on one partition."""

    def good(name: str, minute: int) -> Message:
        event = observed(name, time=T0 + timedelta(minutes=minute), id=f"good-{name}")
        return Message(topic, _json(event), f"service/{name}@prod".encode())

    no_ci = observed("broken", id="bad-1")
    del no_ci["data"]["ci"]
    return [
        good("alpha", 0),
        Message(topic, b"{oops, not json", b"poison-not-json", [("trace-id", b"t-1")]),
        good("beta", 1),
        Message(topic, _json(no_ci), b"poison-schema", [("content-type", CI_JSON.encode())]),
        good("gamma", 2),
        Message(topic, os.urandom(1_000_000), b"poison-garbage"),
        good("delta", 3),
    ]


def test_poison_messages_go_to_the_dlq_untouched_and_the_partition_moves_on(
    kafka_bootstrap: str, unique_name: str, worker: Callable[..., WorkerProcess]
) -> None:
    """Non-JSON, wrongly shaped JSON and 1 MB of random bytes land in the DLQ with their key,
    value and headers untouched plus headers naming the reason, topic, partition and offset,
    and the good events after them on the same partition are applied."""
    topics = WorkerTopics(unique_name)
    topics.create(kafka_bootstrap)
    messages = poison_and_good(topics.discovery)
    produce(kafka_bootstrap, messages)
    running = worker(worker_env(kafka_bootstrap, topics)).wait_ready()
    wait_caught_up(kafka_bootstrap, f"{unique_name}-group", topics.inputs, worker=running)

    letters = read_topic(kafka_bootstrap, topics.dlq)
    poison = {offset: m for offset, m in enumerate(messages) if m.key in POISON_REASONS}
    assert [letter.key for letter in letters] == [m.key for m in poison.values()]
    for letter, (offset, original) in zip(letters, poison.items(), strict=True):
        assert letter.value == original.value
        headers = dict(letter.headers)
        assert letter.headers[: len(original.headers)] == original.headers
        assert headers["cmdb_dlq_reason"].decode().startswith(POISON_REASONS[original.key] + ":")
        assert headers["cmdb_dlq_topic"].decode() == topics.discovery
        assert headers["cmdb_dlq_partition"] == b"0"
        assert headers["cmdb_dlq_offset"] == str(offset).encode()

    for name in ("alpha", "beta", "gamma", "delta"):
        status, document = running.get_json(f"/api/cis/service/{name}@prod")
        assert status == 200 and document["id"] == f"service/{name}@prod"
    findings = findings_of(read_topic(kafka_bootstrap, topics.findings))
    no_owner = {f["subject"] for f in findings if f["data"]["kind"] == "ci_no_owner"}
    assert no_owner == {f"service/{name}@prod" for name in ("alpha", "beta", "gamma", "delta")}
    assert dead_letters_counted(running) == {"not_json": 2, "missing_field": 1}


def dead_letters_counted(running: WorkerProcess) -> dict[str, int]:
    status, body = running.get("/metrics")
    assert status == 200
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "cmdb_worker_dead_letters_total" and sample.value:
                counts[sample.labels["reason"]] = int(sample.value)
    return counts
