"""Deploy authorisation: a deploy in a governed environment needs a change that covers it.

Every check below that fails is one reason in a single ``deploy_unauthorized`` finding, so the
finding says everything that was wrong at once. The change is judged as it stood when the deploy
happened (its version in force at the deploy's time), its CIs resolved through aliases and
strong-identifier merges by the worker. A change authorises deploys while ``approved`` or
``implementing``; a pre-approved standard change also while still ``requested``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cmdb_worker.rules import windows
from cmdb_worker.rules.findings import make_finding
from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.changes import ChangeVersion, DeployEntry
from cmdb_worker.schemas.events import ChangeState
from cmdb_worker.schemas.findings import Finding, Reason

DeployCheck = Literal[
    "no_change", "unknown_change", "change_not_approved", "change_out_of_scope",
    "outside_change_window", "in_freeze_window",
]  # fmt: skip
AUTHORISING_STATES = frozenset({"approved", "implementing"})


@dataclass(frozen=True)
class DeployFacts:
    """A deploy and its linked change, as the worker resolved them for the checks."""

    deploy: DeployEntry
    environment: str | None
    change: ChangeVersion | None
    """The linked change as it stood at the deploy's time; None if unknown or not linked."""
    change_cis: frozenset[str]
    """The linked change's CIs, resolved through aliases and merges."""


def _reason(code: DeployCheck, detail: str) -> Reason:
    return Reason(code=code, detail=detail)


def _linked(policy: Policy, facts: DeployFacts) -> Reason | None:
    if facts.deploy.change_id is None:
        return _reason("no_change", "no change linked (customData.change_id)")
    if facts.change is None:
        return _reason("unknown_change", f"linked change {facts.deploy.change_id} is unknown")
    return None


def _approved(policy: Policy, facts: DeployFacts) -> Reason | None:
    change = facts.change
    if change is None or authorises(change):
        return None
    return _reason(
        "change_not_approved",
        f"change {facts.deploy.change_id} was {change.state} at the deploy, not approved",
    )


def authorises(change: ChangeVersion) -> bool:
    return authorising_state(change.state, change.preapproved)


def authorising_state(state: ChangeState, preapproved: bool) -> bool:
    """Approved or implementing; a pre-approved standard change also while requested."""
    return state in AUTHORISING_STATES or (preapproved and state == "requested")


def _in_scope(policy: Policy, facts: DeployFacts) -> Reason | None:
    if facts.change is None or facts.deploy.service in facts.change_cis:
        return None
    covered = ", ".join(sorted(facts.change_cis)) or "no CIs"
    return _reason(
        "change_out_of_scope",
        f"{facts.deploy.service} is not among the CIs of change {facts.deploy.change_id}: "
        f"{covered}",
    )


def _in_window(policy: Policy, facts: DeployFacts) -> Reason | None:
    change = facts.change
    if change is None or windows.within_planned_window(policy, change, facts.deploy.at):
        return None
    window = windows.planned_window(change)
    assert window is not None
    return _reason(
        "outside_change_window",
        f"deployed {facts.deploy.at.isoformat()}, outside change {facts.deploy.change_id}'s "
        f"window {window[0].isoformat()} to {window[1].isoformat()} "
        f"(slack {policy.governance.window_slack})",
    )


def _not_frozen(policy: Policy, facts: DeployFacts) -> Reason | None:
    if facts.change is not None and facts.change.type == "emergency":
        return None
    frozen = windows.freezes_at(policy, facts.environment, facts.deploy.at)
    if not frozen:
        return None
    return _reason(
        "in_freeze_window",
        f"deployed during freeze {windows.describe(frozen[0])} without an emergency change",
    )


DeployRule = Callable[[Policy, DeployFacts], Reason | None]
CHECKS: list[DeployRule] = [_linked, _approved, _in_scope, _in_window, _not_frozen]


def unauthorized_reasons(policy: Policy, facts: DeployFacts) -> list[Reason]:
    """Every check the deploy fails; an empty list means it is authorised."""
    return [reason for check in CHECKS if (reason := check(policy, facts))]


def deploy_unauthorized(
    deploy: DeployEntry, reasons: list[Reason], environment: str | None, now: datetime
) -> Finding:
    return make_finding(
        "deploy_unauthorized", deploy.service, "critical", now, deploy.event_id, reasons,
        environment=environment, change_id=deploy.change_id, artifact_id=deploy.artifact_id,
        deploy_event=deploy.event_id, deployed_at=deploy.at,
    )  # fmt: skip
