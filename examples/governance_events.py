"""The change-governance week of the example estate, for ``examples/generate.py``.

The story, in event time:

- Mon 16 - Tue 17: team-storefront finishes five checkout-web changes, two failed: its later
  changes carry ``team_failure_rate``.
- Tue 17: CHG0030412, a DB migration of payments-pg with no rollback plan and no canary, is
  requested: critical, routed to CAB, ``change_missing_rollback``. CHG0030420, a standard
  search-api scale-up from the listed ``scale-replicas`` template with an automated rollback and
  a canary, is pre-approved (fast track, no approval event) and deployed within its window (the
  deploy comes as a binary-mode CloudEvent carrying a CDEvent) under its change.
- Wed 18: CAB approves CHG0030412; CHG0030431 (ledger-pg credentials, manual rollback) goes to
  CAB, is approved and completes.
- Wed 19, 22:00: CHG0030412 is implemented (``rollback_missing`` lesson) and its pipeline deploys
  payments-api; 30 minutes later checkout-web, two hops downstream of payments-pg, has an
  incident: ``incident_correlated`` names that deploy and change first, and
  ``change_caused_incident`` is filed. The deploy is rolled back (a CDEvents 0.4 event) and the
  change fails. Meanwhile search-api has its third incident in two days: ``repeat_incidents``.
- Fri 20: a search-es reindex is requested while search-api, which depends on it, is stale:
  ``stale_dependents``.
- Thu 20 - Sat 21: ledger@prod is deployed with no change, then under CHG0030445 inside its
  window (fine) and hours after it (``outside_change_window``: one lesson, two occurrences);
  search-api is deployed under the ledger change (``change_out_of_scope``); a staging deploy
  without a change is fine; the Release Manager takes LL-0001 In Progress with a due date that
  then passes (``lesson_overdue``). Two edits refer to a change and a lesson that do not exist:
  both are dead-lettered with their reason.
- Sat 21 - Sun 22: the weekend freeze (``examples/policy.yaml``): a change planned into it goes
  to CAB, a second one overlapping it on the database the first depends on conflicts, a deploy
  without a change is refused, an emergency hotfix is allowed.

Lesson ids follow filing order, so the edit of LL-0001 assumes no lesson is filed before the
rollback_missing one on the 19th (true of the discovery events of ``generate.py``).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from examples.generate import cloudevent, ref

ITSM, ARGO, JENKINS, PAGERDUTY = (
    "/itsm/servicenow", "/pipelines/argocd-prod", "/pipelines/jenkins", "/monitoring/pagerduty",
)  # fmt: skip
Event = dict[str, Any]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def change(event_id: str, kind: str, when: datetime, **data: Any) -> Event:
    return cloudevent(event_id, ITSM, f"itsm.change.{kind}", when, data)


def cdevent(
    kind: str, event_id: str, source: str, when: datetime, subject: Event,
    custom: Event | None = None, legacy: bool = False,
) -> Event:  # fmt: skip
    """A bare CDEvent: 0.5+ (``context.specversion``), or the 0.4 form (``context.version``)."""
    version = {"version": "0.4.1"} if legacy else {"specversion": "0.5.0"}
    context = {"id": event_id, "source": source, "type": f"dev.cdevents.{kind}.0.2.0",
               "timestamp": _iso(when), **version}  # fmt: skip
    return {"context": context, "subject": subject} | ({"customData": custom} if custom else {})


def service_event(
    predicate: str, event_id: str, service: str, when: datetime, artifact: str,
    environment: str = "prod", source: str = ARGO, legacy: bool = False, **custom: Any,
) -> Event:  # fmt: skip
    content = {"environment": {"id": environment}, "artifactId": artifact}
    subject = {"id": service, "content": content} | ({"type": "service"} if legacy else {})
    return cdevent(f"service.{predicate}", event_id, source, when, subject, custom or None, legacy)


def incident(
    predicate: str, incident_id: str, event_id: str, service: str, when: datetime, what: str,
    legacy: bool = False,
) -> Event:  # fmt: skip
    content = {"environment": {"id": "prod"}, "service": {"id": service}, "description": what}
    subject = {"id": incident_id, "content": content}
    return cdevent(f"incident.{predicate}", event_id, PAGERDUTY, when, subject, legacy=legacy)


def binary_mode(event: Event, key: str) -> Event:
    """The CDEvent as the data of a binary-mode CloudEvent: attributes in ``ce_`` headers."""
    context = event["context"]
    headers = {"ce_specversion": "1.0", "ce_id": context["id"], "ce_source": context["source"],
               "ce_type": context["type"], "ce_time": context["timestamp"],
               "content-type": "application/json"}  # fmt: skip
    return {"key": key, "headers": headers, "value": event}


def lesson_update(event_id: str, when: datetime, lesson_id: str, **fields: Any) -> Event:
    return cloudevent(event_id, "/portal/lessons", "cmdb.lesson.updated", when,
                      {"lesson_id": lesson_id, **fields})  # fmt: skip


PG, SEARCH, LEDGER_PG, PAYMENTS_API, LEDGER, CHECKOUT = (
    ref("database", "payments-pg", "prod"), ref("service", "search-api", "prod"),
    ref("database", "ledger-pg", "prod"), ref("service", "payments-api", "prod"),
    ref("service", "ledger", "prod"), ref("service", "checkout-web", "prod"),
)  # fmt: skip
SEARCH_ES = ref("database", "search-es", "prod")
SAFE = {"rollback_plan": "helm rollback", "rollback_automated": True, "canary": True,
        "db_migration": False}  # fmt: skip


def planned(start: datetime, end: datetime) -> Event:
    return {"planned_start": _iso(start), "planned_end": _iso(end)}


def risky_migration() -> list[Event]:
    """CHG0030412: requested, approved, implemented, deployed, rolled back."""
    return [
        change("chg-evt-881", "requested", at(17, 9), change_id="CHG0030412", type="normal",
               title="Upgrade payments-pg to 16", cis=[PG, PAYMENTS_API], owner="team-payments",
               requested_by="alice", planned_start=_iso(at(19, 22)), planned_end=_iso(at(19, 23)),
               rollback_plan=None, rollback_automated=False, canary=False, db_migration=True,
               state="requested"),
        change("chg-evt-902", "updated", at(18, 15), change_id="CHG0030412", state="approved"),
        change("chg-evt-940", "updated", at(19, 22), change_id="CHG0030412", state="implementing"),
        service_event("deployed", "argo-7731", "payments-api", at(19, 22, 10),
                      "pkg:oci/payments-api@sha256:9f1c2e", change_id="CHG0030412",
                      owner="team-payments", criticality=1, depends_on=[PG]),
        service_event("rolledback", "jenkins-5120", "payments-api", at(19, 22, 55),
                      "pkg:oci/payments-api@sha256:41b7aa", source=JENKINS, legacy=True,
                      change_id="CHG0030412"),
        change("chg-evt-951", "updated", at(19, 23, 5), change_id="CHG0030412",
               state="rolled_back"),
    ]  # fmt: skip


def safe_changes() -> list[Event]:
    """CHG0030420 (standard, pre-approved, deployed) and CHG0030431 (manual rollback, CAB)."""
    search_deploy = service_event(
        "deployed",
        "argo-7702",
        "search-api",
        at(17, 11),
        "pkg:oci/search-api@sha256:77e0d4",
        change_id="CHG0030420",
    )
    return [
        change("chg-evt-884", "requested", at(17, 10), change_id="CHG0030420", type="standard",
               template="scale-replicas", title="Scale search-api from 4 to 6 replicas",
               cis=[SEARCH], owner="team-search", requested_by="bob",
               rollback_plan="kubectl rollout undo deploy/search-api", rollback_automated=True,
               canary=True, db_migration=False, state="requested",
               **planned(at(17, 10, 30), at(17, 12))),
        binary_mode(search_deploy, key="service/search-api@prod"),
        change("chg-evt-889", "updated", at(17, 11, 30), change_id="CHG0030420", state="completed"),
        change("chg-evt-895", "requested", at(18, 9), change_id="CHG0030431", type="normal",
               title="Rotate ledger-pg credentials", cis=[LEDGER_PG], owner="team-dba",
               requested_by="carol", rollback_plan="restore the previous secret version by hand",
               rollback_automated=False, canary=False, state="requested"),
        change("chg-evt-905", "updated", at(18, 16), change_id="CHG0030431", state="approved"),
        change("chg-evt-911", "updated", at(18, 19), change_id="CHG0030431", state="completed"),
    ]  # fmt: skip


def incidents() -> list[Event]:
    """checkout-web after the migration; search-api three times during its outage."""
    third = incident("detected", "INC-2013", "pd-8840", "search-api", at(20, 6, 5),
                     "search-api p99 latency above 2s")  # fmt: skip
    return [
        incident("detected", "INC-2042", "pd-8817", "checkout-web", at(19, 22, 40),
                 "checkout-web 5xx rate above 5%"),
        incident("resolved", "INC-2042", "pd-8823", "checkout-web", at(19, 23, 20),
                 "checkout-web 5xx rate back under 0.1%"),
        incident("detected", "INC-2011", "pd-8790", "search-api", at(19, 3, 10),
                 "search-api returns 503"),
        incident("reported", "INC-2012", "pd-8801", "search-api", at(19, 15, 40),
                 "customers report empty search results", legacy=True),
        cloudevent("pd-8840", PAGERDUTY, third["context"]["type"], at(20, 6, 5), third),
    ]  # fmt: skip


def other_deploys() -> list[Event]:
    """ledger@prod with no change, then under CHG0030445: inside its window (fine), after it
    (``outside_change_window``); search-api under the ledger change (``change_out_of_scope``);
    notifications in staging without a change (fine)."""
    return [
        service_event("deployed", "argo-7790", "ledger", at(20, 14),
                      "pkg:oci/ledger@sha256:0c9d11"),
        change("chg-evt-930", "requested", at(20, 15), change_id="CHG0030445", type="normal",
               title="Release ledger 2.4", cis=[LEDGER], owner="team-finance-it",
               requested_by="dave", **SAFE, **planned(at(21, 9), at(21, 10))),
        change("chg-evt-933", "updated", at(20, 16), change_id="CHG0030445", state="approved"),
        service_event("upgraded", "argo-7815", "ledger", at(21, 9, 30),
                      "pkg:oci/ledger@sha256:5e2a90", change_id="CHG0030445"),
        service_event("deployed", "argo-7818", "search-api", at(21, 9, 40),
                      "pkg:oci/search-api@sha256:1d77c0", change_id="CHG0030445"),
        service_event("upgraded", "argo-7822", "ledger", at(21, 13),
                      "pkg:oci/ledger@sha256:6f3b12", change_id="CHG0030445"),
        service_event("deployed", "argo-7795", "notifications", at(20, 11),
                      "pkg:oci/notifications@sha256:aa01f3", environment="staging"),
    ]  # fmt: skip


def storefront_history() -> list[Event]:
    """Mon 16 - Tue 17: team-storefront finishes five checkout-web changes, two of them failed,
    so its changes carry ``team_failure_rate`` (40% is above the policy's 20%)."""
    events = []
    for number, outcome in enumerate(["completed", "failed", "completed", "failed", "completed"]):
        change_id, when = f"CHG00302{number:02d}", at(16, 9 + 2 * number)
        events += [
            change(f"chg-evt-7{number:02d}", "requested", when, change_id=change_id,
                   type="normal", title=f"checkout-web release 7.{number}", cis=[CHECKOUT],
                   owner="team-storefront", requested_by="grace", **SAFE,
                   **planned(when, when + timedelta(hours=1))),
            change(f"chg-evt-7{number:02d}b", "updated", when + timedelta(hours=1),
                   change_id=change_id, state=outcome),
        ]  # fmt: skip
    return events


def reindex_while_stale() -> list[Event]:
    """Fri 20: a search-es reindex is requested while search-api, which depends on it, is stale
    (its discovery stopped overnight): ``stale_dependents``."""
    return [
        change("chg-evt-921", "requested", at(20, 9), change_id="CHG0030438", type="normal",
               title="Reindex search-es", cis=[SEARCH_ES], owner="team-search",
               requested_by="bob", **SAFE, **planned(at(20, 20), at(20, 21))),
    ]  # fmt: skip


def weekend_freeze() -> list[Event]:
    """The weekend freeze of ``examples/policy.yaml`` (Sat 21 18:00 to Mon 23 06:00, prod).

    CHG0030450 (a payments-api flag rollout) is planned into it: ``in_freeze_window``, CAB; a
    deploy under it while it is still only requested is refused (``change_not_approved`` and
    ``in_freeze_window``), and so is a deploy under a change id nobody knows (``unknown_change``).
    CHG0030455 (payments-pg tuning, which payments-api depends on) overlaps it and is requested
    later: ``conflicting_change`` and ``change_conflict``. checkout-web is deployed in the freeze
    with no change (``no_change`` and ``in_freeze_window``), then hot-fixed under an approved
    emergency change, which a freeze allows.
    """
    return [
        change("chg-evt-970", "requested", at(21, 10), change_id="CHG0030450", type="normal",
               title="Roll out the instant-payouts flag", cis=[PAYMENTS_API],
               owner="team-payments", requested_by="erin", **SAFE,
               **planned(at(22, 2), at(22, 3))),
        change("chg-evt-974", "requested", at(21, 11), change_id="CHG0030455", type="normal",
               title="Tune payments-pg autovacuum", cis=[PG], owner="team-dba",
               requested_by="frank", **SAFE, **planned(at(22, 2, 30), at(22, 3, 30))),
        service_event("deployed", "argo-7840", "checkout-web", at(22, 1),
                      "pkg:oci/checkout-web@sha256:be41c9"),
        change("chg-evt-981", "requested", at(22, 1, 20), change_id="CHG0030460",
               type="emergency", title="Hotfix checkout-web cart totals", cis=[CHECKOUT],
               owner="team-storefront", requested_by="grace", **SAFE,
               **planned(at(22, 1, 30), at(22, 2, 30))),
        change("chg-evt-983", "updated", at(22, 1, 25), change_id="CHG0030460", state="approved"),
        service_event("deployed", "argo-7846", "checkout-web", at(22, 1, 40),
                      "pkg:oci/checkout-web@sha256:c07e55", change_id="CHG0030460"),
        service_event("deployed", "argo-7851", "payments-api", at(22, 2, 10),
                      "pkg:oci/payments-api@sha256:2a9e04", change_id="CHG0030450"),
        service_event("deployed", "argo-7855", "ledger", at(22, 9),
                      "pkg:oci/ledger@sha256:77aa31", change_id="CHG0030499"),
    ]  # fmt: skip


def people() -> list[Event]:
    """A person's edit of the register, and two edits that refer to nothing (dead letters)."""
    return [
        lesson_update("lesson-edit-17", at(20, 10), "LL-0001", status="In Progress",
                      owner="Release Manager", due="2026-11-21"),
        lesson_update("lesson-edit-18", at(20, 10, 5), "LL-0999", status="Done"),
        change("chg-evt-960", "updated", at(21, 8), change_id="CHG0099999", state="approved"),
    ]  # fmt: skip


def governance_events() -> list[Event]:
    """Every governance line of the example week; ``generate.py`` sorts them by event time."""
    return [
        *storefront_history(), *risky_migration(), *safe_changes(), *reindex_while_stale(),
        *incidents(), *other_deploys(), *weekend_freeze(), *people(),
    ]  # fmt: skip
