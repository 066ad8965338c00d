"""The DORA four keys on a hand-checked week: deployments, lead time (through customData.change_id
and change.merged), change failures and time to restore; never counted twice, by a redelivery
or across a restart."""

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cmdb_worker.worker.engine.ownership import home_key
from cmdb_worker.worker.kafka_clients import ownership
from cmdb_worker.worker.metrics import Metrics
from cmdb_worker.worker.status import refresh_state_gauges
from tests.events import at, observed, to_input
from tests.governance_helpers import cdevent, change_requested, change_updated, deploy, incident
from tests.restarts import Run

API = "service/payments-api@prod"
PAYMENTS = {"team": "team-payments"}


def merged(change: str, *, id: str, hours: float, **custom: Any) -> dict[str, Any]:
    """A CDEvents change.merged of source change ``change``."""
    content = {"repository": {"id": "shop/payments"}}
    return cdevent("change.merged", change, content, id=id, time=at(hours), custom=custom)


def first_half() -> list[dict[str, Any]]:
    """CHG1 (team-a) requested at 0h, approved at 1h, deployed at 3h and 5h."""
    return [
        observed("payments-api", owner="team-payments", time=at(0)),
        change_requested("CHG1", API, time=at(0), rollback_plan="helm rollback"),
        change_updated("CHG1", time=at(1), state="approved"),
        deploy("payments-api", id="d1", time=at(3), change_id="CHG1"),  # lead time 3h
        deploy("payments-api", id="d2", time=at(5), change_id="CHG1"),  # not its first deploy
    ]


def second_half() -> list[dict[str, Any]]:
    """A merged pull request deployed 30 min later, two rollbacks, an incident of 45 minutes."""
    return [
        deploy("payments-api", id="d2", time=at(5), change_id="CHG1"),  # redelivered
        merged("pr-7", id="m1", hours=6),
        deploy("payments-api", id="d3", time=at(6.5), change_id="pr-7"),  # lead time 30m
        deploy("payments-api", id="d4", time=at(7), predicate="rolledback", change_id="CHG1"),
        change_updated("CHG1", time=at(7.5), state="rolled_back"),  # CHG1 already failed
        deploy("payments-api", id="d5", time=at(8), predicate="rolledback"),  # no change
        incident("inc-1", "payments-api", id="i1", time=at(9)),
        incident("inc-1", "payments-api", id="i2", time=at(9.75), predicate="resolved"),
        incident("inc-1", "payments-api", id="i2", time=at(9.75), predicate="resolved"),
        incident("inc-1", "payments-api", id="i3", time=at(10), predicate="resolved"),  # again
        deploy("checkout", id="d6", time=at(11), environment="staging"),  # no owner known
    ]


def scraped(run: Run) -> CollectorRegistry:
    registry = CollectorRegistry()
    refresh_state_gauges(run.engine, Metrics(registry), at(12))
    return registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"cmdb_worker_{name}", labels)


@pytest.fixture
def week(run: Run) -> CollectorRegistry:
    """The whole sequence, with a restart (in the rebuilt run) between the halves."""
    run.feed(*first_half())
    run.restart()
    run.feed(*second_half())
    run.restart()
    return scraped(run)


def test_deployments_count_each_deploy_once_by_service_environment_and_team(week):
    """Three deploys of payments-api (d2 redelivered, rollbacks not deploys), one of checkout."""
    assert value(week, "deployments_total", service="payments-api", environment="prod",
                 team="team-payments") == 3  # fmt: skip
    assert value(week, "deployments_total", service="checkout", environment="staging",
                 team="none") == 1  # fmt: skip


def test_lead_time_runs_from_request_or_merge_to_the_first_linked_deploy(week):
    """CHG1: 3h from requested to d1 (d2 not counted); pr-7: 30 min from merged to d3."""
    assert value(week, "change_lead_time_seconds_count", **PAYMENTS) == 2
    assert value(week, "change_lead_time_seconds_sum", **PAYMENTS) == 3 * 3600 + 1800
    assert value(week, "change_lead_time_seconds_bucket", le="1800.0", **PAYMENTS) == 1
    assert value(week, "change_lead_time_seconds_bucket", le="7200.0", **PAYMENTS) == 1
    assert value(week, "change_lead_time_seconds_bucket", le="14400.0", **PAYMENTS) == 2
    assert value(week, "change_lead_time_seconds_bucket", le="+Inf", **PAYMENTS) == 2


def test_change_failures_count_a_failed_change_once_and_a_bare_rollback(week):
    """CHG1 fails by rollback (its later rolled_back state adds nothing), and a rollback with no
    change counts too: both for the team owning the service, not CHG1's owner team-a."""
    assert value(week, "change_failures_total", **PAYMENTS) == 2
    assert value(week, "change_failures_total", team="team-a") is None


def test_a_failed_change_that_names_no_known_service_counts_for_its_owner(run: Run):
    """A change on a CI the CMDB does not know fails (state failed): its owner team-a counts it."""
    run.feed(change_requested("CHG2", "database/unknown@prod", time=at(0)),
             change_updated("CHG2", time=at(1), state="failed"))  # fmt: skip
    run.restart()
    run.feed(change_updated("CHG2", time=at(1), state="failed"))  # a redelivery
    assert value(scraped(run), "change_failures_total", team="team-a") == 1


def test_time_to_restore_runs_from_detected_to_the_first_resolved(week):
    """inc-1: detected 9h, resolved 9h45: 2700 s; a redelivery and a second resolve add nothing."""
    assert value(week, "time_to_restore_seconds_count", **PAYMENTS) == 1
    assert value(week, "time_to_restore_seconds_sum", **PAYMENTS) == 2700
    assert value(week, "time_to_restore_seconds_bucket", le="1800.0", **PAYMENTS) == 0
    assert value(week, "time_to_restore_seconds_bucket", le="3600.0", **PAYMENTS) == 1


def test_a_merge_linked_to_a_change_id_starts_its_lead_time(run: Run):
    """change.merged with customData.change_id: a deploy naming that id measures from the merge."""
    run.feed(observed("payments-api", owner="team-payments", time=at(0)),
             merged("pr-9", id="m9", hours=1, change_id="REL-42"),
             merged("pr-9", id="m9b", hours=2, change_id="REL-42"))  # fmt: skip
    run.restart()
    run.feed(deploy("payments-api", id="d9", time=at(5), change_id="REL-42"))
    registry = scraped(run)
    assert value(registry, "change_lead_time_seconds_sum", **PAYMENTS) == 4 * 3600
    assert run.engine.state.merged_changes == {}  # forgotten once deployed


def test_repeated_refreshes_expose_the_same_totals(run: Run):
    """The exposed counts are the state's: refreshing again does not add to them."""
    run.feed(*first_half())
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for _ in range(3):
        refresh_state_gauges(run.engine, metrics, at(12))
    assert value(registry, "deployments_total", service="payments-api", environment="prod",
                 team="team-payments") == 2  # fmt: skip


DORA_FAMILIES = ("deployments", "change_lead_time_seconds", "change_failures",
                 "time_to_restore_seconds")  # fmt: skip
OWNERS = ownership(3)


def _dora_samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        if family.name.removeprefix("cmdb_worker_") in DORA_FAMILIES
        for sample in family.samples
    }


def spread_week() -> list[dict[str, Any]]:
    """The week, and team-payments' other services deployed: its events on every partition."""
    services = [f"svc-{n}" for n in range(6)]
    others = [observed(name, owner="team-payments", time=at(11)) for name in services]
    deploys = [deploy(name, id=f"x{n}", time=at(11.5)) for n, name in enumerate(services)]
    return first_half() + second_half() + others + deploys


def test_each_owner_partition_keeps_its_own_totals_and_a_scrape_sums_them():
    """With 3 owner partitions each event adds to its own partition's totals for the team
    (``dora_team/<partition>/<team>``: the deploy's service, the change's id), and what is
    scraped equals one owner's totals of the same events."""
    spread, one = Run(False, ownership=OWNERS), Run(False)
    for message in spread_week():
        spread.feed(message)
        one.feed(message)
        home = OWNERS.partition_of(home_key(to_input(message)) or "")
        written = [key for key, _ in spread.entries if key.startswith("dora_team/")]
        assert all(key.startswith(f"dora_team/{home}/") for key in written), (message, written)
        spread.entries = []
    partials = [key for key in spread.engine.state.dora if key.endswith("/team-payments")]
    assert len(partials) == 3
    assert _dora_samples(scraped(spread)) == _dora_samples(scraped(one))
    assert value(scraped(spread), "deployments_total", service="svc-0", environment="prod",
                 team="team-payments") == 1  # fmt: skip


def test_totals_from_before_owner_partitions_are_added_to():
    """A ``dora_team/<team>`` record written before owner partitions, read back, keeps
    counting: the new deploys add to it on the scrape."""
    run = Run(True, ownership=OWNERS)
    earlier = {"team": "team-payments", "deployments": {"prod|payments-api": 5}}
    run.entries = [("dora_team/team-payments", json.dumps(earlier).encode())]
    run.restart()
    run.feed(*first_half())
    assert value(scraped(run), "deployments_total", service="payments-api", environment="prod",
                 team="team-payments") == 5 + 2  # fmt: skip
