"""Policy loading: the default is valid, and a bad policy is refused naming the key."""

from datetime import timedelta

import pytest

from rules.policy import PolicyError, load_policy, parse_policy


def test_default_policy_loads_with_the_contract_keys():
    """The packaged policy has the fixed keys of the contract with their defaults."""
    policy = load_policy()
    assert policy.staleness.max_age("service") == timedelta(days=1)
    assert policy.staleness.max_age("host") == timedelta(days=3)
    assert policy.staleness.max_age("unknown-type") == timedelta(days=7)
    assert policy.identification.strong_identifiers == [
        "serial_number",
        "k8s_uid",
        "fqdn",
        "cloud_resource_id",
    ]
    assert policy.governance.governed_environments == ["prod", "production"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("P7D", timedelta(days=7)),
        ("PT1H30M", timedelta(minutes=90)),
    ],
)
def test_durations_accept_shorthand_and_iso_8601(text, expected):
    """Durations may be written 30m, 12h, 7d, 2w or in ISO 8601."""
    assert parse_policy({"staleness": {"default": text}}).staleness.default == expected


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"staleness": {"by_type": {"host": "3x"}}}, "staleness.by_type.host"),
        ({"staleness": {"default": 5}}, "staleness.default"),
        ({"staleness": {"default": "0m"}}, "staleness.default"),
        ({"stalenes": {}}, "stalenes"),
        ({"identification": {"strong_identifiers": "fqdn"}}, "identification.strong_identifiers"),
        ({"graph": {"blast_radius_depth": 0}}, "graph.blast_radius_depth"),
        ({"governance": {"governed_environmnets": ["prod"]}}, "governance.governed_environmnets"),
    ],
)
def test_bad_policy_is_refused_naming_the_key(document, key):
    """Each bad value or unknown key is refused with an error that names its dotted path."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(document, "p.yaml")
    assert key in str(caught.value)
    assert str(caught.value).startswith("policy p.yaml: ")


def test_unreadable_policy_file_is_refused(tmp_path):
    """A policy file that is not YAML is refused with the file's name."""
    path = tmp_path / "broken.yaml"
    path.write_text("staleness: [unclosed\n")
    with pytest.raises(PolicyError, match=r"broken\.yaml"):
        load_policy(path)


def test_policy_types_are_lower_cased():
    """Types in by_type match CI types, which are lower-cased."""
    policy = parse_policy({"staleness": {"by_type": {"Host": "1h"}}})
    assert policy.staleness.max_age("host") == timedelta(hours=1)
