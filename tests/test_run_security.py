"""``cmdb-worker run`` on the SCRAM-SHA-512 (SASL_PLAINTEXT) listener: right and wrong password."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.events import observed
from tests.kafka_broker import ScramBroker
from tests.worker_process import (
    Message,
    WorkerProcess,
    WorkerTopics,
    findings_of,
    produce,
    read_topic,
    wait_caught_up,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def client_config(scram: ScramBroker) -> dict[str, Any]:
    """kafka-python options that authenticate as the SCRAM user (bootstrap given separately)."""
    return {k: v for k, v in scram.client_config().items() if k != "bootstrap_servers"}


def scram_env(scram: ScramBroker, topics: WorkerTopics, password: str) -> dict[str, str]:
    return worker_env(
        scram.bootstrap, topics, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=scram.mechanism, sasl_username=scram.username, sasl_password=password,
        connect_timeout_seconds=5,
    )  # fmt: skip


def test_worker_authenticates_with_scram_sha_512_and_processes_events(
    kafka_scram: ScramBroker, unique_name: str, worker: Callable[..., WorkerProcess]
) -> None:
    """With SCRAM-SHA-512 credentials the worker becomes ready on the SASL listener, applies an
    event and commits its finding there, and never prints the password."""
    assert kafka_scram.mechanism == "SCRAM-SHA-512"
    config = client_config(kafka_scram)
    topics = WorkerTopics(unique_name)
    topics.create(kafka_scram.bootstrap, **config)
    running = worker(scram_env(kafka_scram, topics, kafka_scram.password)).wait_ready()

    event = observed("secured-api", id="secured-1")
    value = json.dumps(event).encode()
    produce(kafka_scram.bootstrap, [Message(topics.discovery, value, b"k")], **config)
    group = f"{unique_name}-group"
    wait_caught_up(kafka_scram.bootstrap, group, topics.inputs, worker=running, **config)

    assert running.get_json("/api/cis/service/secured-api@prod")[0] == 200
    findings = findings_of(read_topic(kafka_scram.bootstrap, topics.findings, **config))
    assert [(f["data"]["kind"], f["subject"]) for f in findings] == [
        ("ci_no_owner", "service/secured-api@prod")
    ]
    assert running.terminate(30)[0] == 0
    assert kafka_scram.password not in running.output()


def test_wrong_password_fails_at_start_with_a_clear_message_and_no_secret(
    kafka_scram: ScramBroker, unique_name: str, worker: Callable[..., WorkerProcess]
) -> None:
    """With a wrong SCRAM password the worker exits non-zero within its connect timeout, saying
    it cannot connect or authenticate to that cluster as that user and that authentication
    failed, and the password appears nowhere in its output."""
    wrong = f"not-the-password-{uuid.uuid4().hex}"
    topics = WorkerTopics(unique_name)
    started = time.monotonic()
    failing = worker(scram_env(kafka_scram, topics, wrong))

    code = failing.wait_exit(timeout=60)
    output = failing.output()
    assert code != 0, output
    assert time.monotonic() - started < 45, "the 5 s connect timeout must bound the start"
    refusal = (
        f"cannot connect or authenticate to Kafka at {kafka_scram.bootstrap} as user "
        f"'{kafka_scram.username}' (SASL_PLAINTEXT/SCRAM-SHA-512) within 5s: authentication failed"
    )
    assert f"cmdb-worker: {refusal}" in output, "a plain line on stderr"
    assert any(refusal in str(e.get("error")) for e in failing.log_events()), "and a JSON log line"
    assert wrong not in output
    assert not any(e.get("event") == "state_rebuilt" for e in failing.log_events())
