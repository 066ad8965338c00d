"""The README tells the truth: it links documents that exist, and its policy claim holds."""

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from cmdb_worker.rules.policy import Policy, load_policy

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_local_link_and_named_doc_in_the_readme_exists() -> None:
    """Every relative link and every *.md file the README names is in the repository, and the
    architecture page it links covers layers, data flow, state, exactly-once and scaling."""
    linked = re.findall(r"\]\((?!https?:)([^)#]+)\)", README)
    named = re.findall(r"`?([\w./-]+\.md)`?", README)
    missing = sorted(path for path in {*linked, *named} if not (ROOT / path).exists())
    assert "docs/architecture.md" in linked and missing == []
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for section in ("## Layers", "## Data flow", "## State", "## Exactly-once", "## Scaling"):
        assert section in architecture


def _values(policy: Policy) -> dict[str, Any]:
    """The policy's values, less the lists that live only in rules/policy.yaml: per-type max
    ages and standard-change templates."""
    document: dict[str, Any] = policy.model_dump()
    document["staleness"].pop("by_type")
    document["governance"].pop("standard_templates")
    return document


def test_the_policy_models_defaults_are_the_packaged_policy() -> None:
    """The defaults written in rules/policy.py equal rules/policy.yaml, so no threshold lives
    in code with a value of its own (the README's claim)."""
    assert _values(Policy()) == _values(load_policy())
    assert load_policy().staleness.by_type["service"] == timedelta(days=1)
