"""Policy loading: the default is valid, and a bad policy is refused naming the key."""

from datetime import timedelta

import pytest

from cmdb_worker.rules.policy import PolicyError, load_policy, overlay, parse_policy
from tests.events import at, observed
from tests.restarts import Run


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
        ({"sources": {"silence_after": "soon"}}, "sources.silence_after"),
        ({"sources": {"by_source": {"/discovery/x": "2x"}}}, "sources.by_source./discovery/x"),
        ({"identification": {"precedence": {"colour": ["/a"]}}}, "identification.precedence"),
        ({"hygiene": {"phantom_grace": "0m"}}, "hygiene.phantom_grace"),
        ({"history": {"retention": "0d"}}, "history.retention"),
        ({"history": {"retention": 30}}, "history.retention"),
        ({"history": {"max_entries_per_subject": 0}}, "history.max_entries_per_subject"),
        ({"history": {"max_entries_per_subject": "many"}}, "history.max_entries_per_subject"),
        ({"history": {"edge_retention": "forever"}}, "history.edge_retention"),
        ({"history": {"retension": "30d"}}, "history.retension"),
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


def test_a_policy_file_overlays_the_packaged_policy(tmp_path):
    """Restating one packaged key changes that key only: per-type max ages and every other
    section keep their packaged values."""
    path = tmp_path / "p.yaml"
    path.write_text("staleness:\n  default: 3d\n")
    packaged, overlaid = load_policy(), load_policy(path)
    assert overlaid.staleness.default == timedelta(days=3)
    assert overlaid.staleness.by_type == packaged.staleness.by_type
    assert (
        overlaid.model_dump()
        == packaged.model_copy(update={"staleness": overlaid.staleness}).model_dump()
    )


def test_an_overlay_replaces_lists_and_merges_maps():
    """A list in the overlay replaces the packaged list; a map is merged key by key."""
    merged = overlay(
        {"a": {"keep": 1, "list": [1, 2], "deep": {"x": 1, "y": 2}}},
        {"a": {"list": [3], "deep": {"y": 9}}},
    )
    assert merged == {"a": {"keep": 1, "list": [3], "deep": {"x": 1, "y": 9}}}


def test_a_bad_key_in_an_overlay_is_refused_naming_the_file_and_key(tmp_path):
    """An unknown key in the overlay is refused with the overlay file's name and the dotted key."""
    path = tmp_path / "mine.yaml"
    path.write_text("sources:\n  silence_afterr: 2h\n")
    with pytest.raises(PolicyError, match=r"mine\.yaml.*sources\.silence_afterr"):
        load_policy(path)


def test_a_missing_policy_file_is_refused(tmp_path):
    """A policy file that is named but missing is refused with its name."""
    with pytest.raises(PolicyError, match=r"absent\.yaml"):
        load_policy(tmp_path / "absent.yaml")


@pytest.mark.parametrize("rebuild", [False, True], ids=["live", "rebuilt"])
def test_an_overlaid_policy_judges_by_the_packaged_per_type_ages(tmp_path, rebuild):
    """Under an overlay that restates only staleness.default, a service still goes stale after
    its packaged 1d, live and after a changelog rebuild."""
    path = tmp_path / "p.yaml"
    path.write_text("staleness:\n  default: 3d\n")
    run = Run(rebuild, load_policy(path))
    run.feed(observed("api", owner="t", relations=[("depends_on", "database/pg@prod")]))
    run.restart()
    stale = run.keep_alive(at(days=1, hours=1), "/discovery/a")
    assert [f.subject for f in stale if f.kind == "ci_stale"] == ["service/api@prod"]
