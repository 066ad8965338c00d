"""The hygiene side of the example week that tests trust (CONTRACT 9.5-9.7), for ``generate.py``.

The story, in event time:

- Mon 16 - Thu 20 00:00: a second Kubernetes collector, ``/discovery/k8s-prod-us``, reports four
  US services every two hours; one of them depends on ``fraud-score``, which no source ever
  observes: a ``ci_phantom`` a day after it is first named.
- Wed 18: a spreadsheet import (``/import/cmdb-spreadsheet``, unlisted in the policy's
  precedence) says payments-api is owned by a team that left and has criticality 4: neither value
  is taken, and two ``ci_attribute_conflict`` findings name both sources' values and the winner.
- Thu 20 06:00: the US collector has been silent for 6 h: one ``source_silent`` and one lesson
  for team-platform-us; on Fri 21 its services pass their max age but are unverified, not stale.
- Fri 21 06:00: it reports again (``source_recovered``), but no longer ``reports-us``, which goes
  stale one max age after the recovery (Sat 22 06:00), not at once.

Everything here happens after the rollback_missing lesson of the 19th, so it keeps LL-0001.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from examples.generate import cloudevent, depends_on, ref

K8S_US, SPREADSHEET = "/discovery/k8s-prod-us", "/import/cmdb-spreadsheet"
US_SERVICES = ["storefront-us", "checkout-us", "search-us", "reports-us"]
REPORTING = [
    (datetime(2026, 11, 16, 0, 20, tzinfo=UTC), datetime(2026, 11, 20, 0, 0, tzinfo=UTC)),
    (datetime(2026, 11, 21, 6, 0, tzinfo=UTC), datetime(2026, 11, 22, 12, 0, tzinfo=UTC)),
]
"""When the US collector reports: until it dies, and again after it is restarted."""
Event = dict[str, Any]


def us_collector() -> Iterator[Event]:
    for period, (start, end) in enumerate(REPORTING):
        at, n = start, 0
        while at <= end:
            yield from (_us_service(name, at, f"{period}-{n:03d}") for name in _reported(period))
            at, n = at + timedelta(hours=2), n + 1


def _reported(period: int) -> list[str]:
    """After the restart, the collector no longer reports reports-us."""
    return US_SERVICES if period == 0 else US_SERVICES[:-1]


def _us_service(name: str, at: datetime, n: str) -> Event:
    ci = ref("service", name, "prod") | {"owner": "team-us", "criticality": 2}
    targets = [ref("service", "payments-api", "prod")]
    if name == "checkout-us":
        targets.append(ref("service", "fraud-score", "prod"))  # nobody observes it: a phantom
    data = {"ci": ci, "relations": depends_on(*targets), "relations_complete": True}
    return cloudevent(f"k8s-us-{name}-{n}", K8S_US, "cmdb.ci.observed", at, data)


def spreadsheet_import() -> Event:
    stale_facts = {"owner": "team-payments-legacy", "criticality": 4}
    ci = ref("service", "payments-api", "prod") | stale_facts
    at = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    return cloudevent("sheet-2026-11-18-001", SPREADSHEET, "cmdb.ci.observed", at, {"ci": ci})


def hygiene_events() -> list[Event]:
    return [*us_collector(), spreadsheet_import()]
