"""A policy for governance tests: the packaged one with a freeze window and standard templates."""

from typing import Any

import yaml

from cmdb_worker.rules.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from tests.events import iso

FREEZE = {"name": "peak", "start": "2026-11-25T00:00:00Z", "end": "2026-11-27T00:00:00Z"}
"""Two days, five days after ``T0`` (2026-11-20 10:00)."""


def policy_with(**sections: dict[str, Any]) -> Policy:
    """The packaged policy with the keys given per section replaced."""
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    for section, keys in sections.items():
        document[section] = {**document.get(section, {}), **keys}
    return parse_policy(document)


def governance_policy(**keys: Any) -> Policy:
    """A freeze on prod (``FREEZE``) and the packaged standard templates."""
    return policy_with(governance={"freeze_windows": [FREEZE], **keys})


def window(start: Any, end: Any) -> dict[str, str]:
    return {"planned_start": iso(start), "planned_end": iso(end)}
