"""Alert rules: promtool accepts and unit-tests them, and every alert is documented and covered."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from cmdb_worker.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROM_DIR / "alerts.yaml"
TEMPLATE = PROM_DIR / "alerts.in.yaml"
RENDER = PROM_DIR / "render.py"
CONFIG = yaml.safe_load((PROM_DIR / "config.yaml").read_text(encoding="utf-8"))
ALERTS_TEST = PROM_DIR / "alerts_test.yaml"
RUNBOOKS = PROM_DIR / "runbooks"
DASHBOARD = ROOT / "deploy" / "grafana" / "cmdb-worker-dashboard.json"
FETCH_SCRIPT = ROOT / "deploy" / "local" / "prometheus.sh"
RUNBOOK_BASE = CONFIG["runbook_base_url"].rstrip("/") + "/"
METRIC_NAME = re.compile(r"\bcmdb_worker_[a-z0-9_]+")


def load_alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


ALERT_RULES = load_alerts()
ALERT_IDS = [rule["alert"] for rule in ALERT_RULES]


def run_fetch_script() -> list[str]:
    result = subprocess.run(
        ["bash", str(FETCH_SCRIPT)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.fixture(scope="module")
def promtool() -> Path:
    """The promtool binary unpacked by deploy/local/prometheus.sh."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.fail("promtool comes from Debian's prometheus package; needs apt-get and dpkg")
    path = Path(run_fetch_script()[0])
    assert path.name == "promtool" and path.is_file()
    return path


def run_promtool(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, cwd=PROM_DIR, timeout=120
    )


def exported_metric_names() -> set[str]:
    """Every sample name a Metrics instance can export."""
    registry = CollectorRegistry()
    Metrics(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


@pytest.mark.prometheus
def test_promtool_check_rules_accepts_alerts(promtool: Path) -> None:
    """promtool check rules --lint=all finds alerts.yaml valid, lint errors fatal."""
    result = run_promtool(promtool, "check", "rules", "--lint=all", "--lint-fatal", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_promtool_unit_tests_pass(promtool: Path) -> None:
    """promtool test rules passes every case in alerts_test.yaml."""
    result = run_promtool(promtool, "test", "rules", ALERTS_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_fetch_script_is_idempotent(promtool: Path) -> None:
    """A second run of prometheus.sh reuses the unpacked tree and prints the same two paths."""
    before = promtool.stat().st_mtime_ns
    paths = run_fetch_script()
    assert [Path(p).name for p in paths] == ["promtool", "prometheus"]
    assert Path(paths[0]) == promtool and Path(paths[1]).is_file()
    assert promtool.stat().st_mtime_ns == before


@pytest.mark.prometheus
def test_dashboard_queries_are_valid_promql(promtool: Path, tmp_path: Path) -> None:
    """Every Grafana panel query parses as PromQL (checked as recording rules by promtool)."""
    exprs = [re.sub(r"\$__(rate_interval|range)", "5m", e) for e in dashboard_exprs()]
    rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    rules_file = tmp_path / "dashboard_rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool(promtool, "check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", ALERT_RULES, ids=ALERT_IDS)
def test_alert_is_fully_annotated(rule: dict[str, Any]) -> None:
    """Each alert has for:, severity warning or critical, summary, description and runbook_url."""
    assert rule.get("for"), "missing for:"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}{rule['alert']}.md"


@pytest.mark.parametrize("rule", ALERT_RULES, ids=ALERT_IDS)
def test_alert_summary_is_static(rule: dict[str, Any]) -> None:
    """Summaries are static text (they group and dedupe well); templated detail goes in the
    description, as monitoring-mixins do."""
    assert "{{" not in rule["annotations"]["summary"]


def test_no_job_is_hard_coded_in_the_template() -> None:
    """Every series an alert expression reads goes through ${selector}; no job="..." literal."""
    groups = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))["groups"]
    exprs = [str(rule["expr"]) for group in groups for rule in group["rules"]]
    series = r"\b(?:up|process_[a-z_]+|cmdb_worker_[a-z0-9_]+)(\{[^}]*\})?"
    selectors = [found for expr in exprs for found in re.findall(series, expr)]
    assert len(selectors) >= len(exprs) and all(s.startswith("{${selector}") for s in selectors)
    assert not any("job=" in expr for expr in exprs)


def test_selector_and_runbook_base_are_set_in_one_place(tmp_path: Path) -> None:
    """render.py with another selector and runbook base URL puts them in every expression and
    every runbook_url of both outputs."""
    args = ["--selector", 'job="prod-cmdb"', "--runbook-base-url", "https://runbooks.test/cmdb/"]
    result = subprocess.run(
        [sys.executable, str(RENDER), *args, "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for name in ("alerts.yaml", "prometheusrule.yaml"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert 'job="cmdb-worker"' not in text and text.count('job="prod-cmdb"') >= len(ALERT_IDS)
        for alert in ALERT_IDS:
            assert f"runbook_url: https://runbooks.test/cmdb/{alert}.md" in text


@pytest.mark.parametrize("rule", ALERT_RULES, ids=ALERT_IDS)
def test_alert_has_runbook_file(rule: dict[str, Any]) -> None:
    """Each alert's runbook exists and covers meaning, impact, diagnosis and remediation."""
    text = (RUNBOOKS / f"{rule['alert']}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {rule['alert']}")
    for section in ("## Meaning", "## Impact", "## Diagnosis", "## Remediation"):
        assert section in text


def test_every_runbook_belongs_to_an_alert() -> None:
    """No runbook is left behind for an alert that no longer exists."""
    assert {p.stem for p in RUNBOOKS.glob("*.md")} == set(ALERT_IDS)


def test_required_alerts_are_defined() -> None:
    """The alerts the contract and operations rely on are all present."""
    required = {
        "CMDBWorkerStaleCIs", "CMDBWorkerStaleCriticalCI", "CMDBWorkerRiskyChangeWithoutRollback",
        "CMDBWorkerUnauthorizedDeploys", "CMDBWorkerLessonsOverdue",
        "CMDBWorkerDeadLettersGrowing", "CMDBWorkerConsumerLagGrowing", "CMDBWorkerDown",
        "CMDBWorkerAbsent", "CMDBWorkerNotReady", "CMDBWorkerStalled",
    }  # fmt: skip
    assert required <= set(ALERT_IDS)
    assert len(ALERT_IDS) == len(set(ALERT_IDS))


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    """alerts_test.yaml has, for every alert, a case where it fires and one where it must not."""
    cases = [
        case
        for test in yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert set(ALERT_IDS) <= firing
    assert set(ALERT_IDS) <= quiet


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def test_alerts_and_dashboard_only_use_exported_metrics() -> None:
    """Every cmdb_worker_* name in the alerts and the dashboard is a sample Metrics exports."""
    exported = exported_metric_names()
    alert_exprs = [str(rule["expr"]) for rule in ALERT_RULES]
    used = {name for e in alert_exprs + dashboard_exprs() for name in METRIC_NAME.findall(e)}
    assert used and used <= exported, sorted(used - exported)


def test_dashboard_uses_the_datasource_variable() -> None:
    """Every dashboard panel queries the ${DS_PROMETHEUS} datasource variable."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    queried = [p for p in dashboard["panels"] if p.get("targets")]
    assert queried and all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in queried)


def test_dashboard_filters_every_query_by_job_and_instance_variables() -> None:
    """The dashboard has job and instance variables (from the datasource) and every series a
    panel reads is filtered by both; no job is hard-coded."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${DS_PROMETHEUS}"
    # raw series and recording rules over them (``owner_team:cmdb_worker_cis:fresh_ratio``)
    series = r"(?<![\w:])(?:up|cmdb_worker_[a-z0-9_]+|[a-z_]+:cmdb_worker_[a-z0-9_:]+)(\{[^}]*\})?"
    selectors = [found for expr in dashboard_exprs() for found in re.findall(series, expr)]
    assert selectors and all(
        s.startswith('{job=~"$job", instance=~"$instance"') for s in selectors
    ), selectors
