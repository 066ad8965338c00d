"""Wire the long-running worker together: metrics, HTTP, the Kafka loop, and a clean exit."""

import sys

from kafka.errors import KafkaError, KafkaTimeoutError
from prometheus_client import CollectorRegistry

from cmdb_worker.rules.policy import Policy
from cmdb_worker.worker.api import Api
from cmdb_worker.worker.http import StatusServer, liveness
from cmdb_worker.worker.kafka_clients import TopicError, any_broker_listening
from cmdb_worker.worker.logs import get_logger
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.runner import Runner
from cmdb_worker.worker.settings import ENV_PREFIX, Settings

log = get_logger("cmdb_worker.service")


def serve(settings: Settings, policy: Policy) -> int:
    """Run until SIGTERM; 0 on a clean stop, 1 when Kafka fails (let the orchestrator restart),
    2 when an existing topic is unfit (restarting would not help)."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    if settings.memory_limit_bytes:
        metrics.set_memory_limit(settings.memory_limit_bytes)
    runner = Runner(settings, policy, metrics)
    runner.install_signal_handlers()
    server = StatusServer(
        settings.http_host, settings.http_port, registry,
        Api(runner.engine, runner.lock, runner.clock.now),
        liveness(lambda: runner.last_progress, settings.liveness_timeout_seconds),
        lambda: runner.ready,
    ).start()  # fmt: skip
    log.info(
        "started",
        http_port=server.port,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        security_protocol=settings.security_protocol,
    )
    try:
        runner.run()
    except TopicError as error:
        log.error("refused_at_start", error=str(error))
        print(f"cmdb-worker: {error}", file=sys.stderr)
        return 2
    except KafkaError as error:
        if runner.rebuilt:
            log.error("kafka_failed", error=repr(error))
        else:
            _cannot_connect(settings, error)
        return 1
    finally:
        server.stop()
    return 0


def _cannot_connect(settings: Settings, error: KafkaError) -> None:
    """Start-up never reached a usable cluster: say where, as whom and how (never the password)."""
    user = f" as user {settings.sasl_username!r}" if settings.sasl_username else ""
    how = "/".join(filter(None, [settings.security_protocol, settings.sasl_mechanism]))
    message = (
        f"cannot connect or authenticate to Kafka at {settings.bootstrap_servers}{user} ({how}) "
        f"within {settings.connect_timeout_seconds:g}s: {_likely_cause(settings, error)}{error}"
    )
    log.error("kafka_unreachable", error=message)
    print(f"cmdb-worker: {message}", file=sys.stderr)


def _likely_cause(settings: Settings, error: KafkaError) -> str:
    """kafka-python may see the broker hang up instead of its SASL error: tell the two apart."""
    if not isinstance(error, KafkaTimeoutError):  # it got in; the error says what went wrong
        return ""
    if not any_broker_listening(settings):
        return "no broker is listening there; "
    if settings.security_protocol.startswith("SASL"):
        return (
            "authentication failed (the broker accepts connections but not these credentials: "
            f"check {ENV_PREFIX}SASL_USERNAME, {ENV_PREFIX}SASL_PASSWORD and "
            f"{ENV_PREFIX}SASL_MECHANISM); "
        )
    return ""
