"""Kubernetes manifests: `kubectl kustomize deploy/k8s` renders what a hardened deployment needs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
DEFAULT_POLICY = ROOT / "rules" / "policy.yaml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
WITH_MONITORING = ROOT / "deploy" / "k8s-with-monitoring"
OPERATOR_API = "monitoring.coreos.com/v1"
RELEASE_LABEL = ("release", "kube-prometheus-stack")
SHUTDOWN_GRACE_ENV = "CMDB_WORKER_SHUTDOWN_GRACE_SECONDS"

Doc = dict[str, Any]


def kustomize(directory: Path) -> list[Doc]:
    """The documents `kubectl kustomize <directory>` renders, offline."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: it renders deploy/k8s (apt-get install kubectl)")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[Doc]:
    """The base, deploy/k8s: what any cluster can apply."""
    return kustomize(K8S)


@pytest.fixture(scope="module")
def monitored() -> list[Doc]:
    """deploy/k8s-with-monitoring: the base plus the Prometheus Operator component."""
    return kustomize(WITH_MONITORING)


def one(docs: list[Doc], kind: str) -> Doc:
    matches = [doc for doc in docs if doc["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module")
def pod_spec(rendered: list[Doc]) -> Doc:
    """The Deployment's pod spec."""
    spec: Doc = one(rendered, "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod_spec: Doc) -> Doc:
    """The worker container."""
    containers: list[Doc] = pod_spec["containers"]
    assert [c["name"] for c in containers] == ["cmdb-worker"]
    return containers[0]


def env_value(container: Doc, name: str) -> str:
    values = [e["value"] for e in container.get("env", []) if e["name"] == name and "value" in e]
    assert values, f"{name} not set"
    return str(values[0])


def test_every_namespaced_object_is_in_cmdb(rendered: list[Doc]) -> None:
    """Every rendered object lives in namespace cmdb, which is itself part of the tree."""
    namespaced = [doc for doc in rendered if doc["kind"] != "Namespace"]
    assert all(doc["metadata"]["namespace"] == "cmdb" for doc in namespaced)
    assert one(rendered, "Namespace")["metadata"]["name"] == "cmdb"


def test_container_runs_image_with_run(container: Doc) -> None:
    """The container runs cmdb-worker:0.1.0 with args ["run"] and exposes port 9108 as http."""
    assert container["image"] == "cmdb-worker:0.1.0"
    assert container["args"] == ["run"]
    assert {"name": "http", "containerPort": 9108, "protocol": "TCP"} in container["ports"]


def test_pod_security_context_is_restricted(pod_spec: Doc) -> None:
    """The pod runs as non-root uid 10001 with the RuntimeDefault seccomp profile."""
    security = pod_spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_security_context_is_hardened(container: Doc) -> None:
    """The container is non-root, read-only root fs, no privilege escalation, drops ALL caps."""
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]


def test_tmp_is_a_writable_emptydir(pod_spec: Doc, container: Doc) -> None:
    """/tmp is an emptyDir, since the root filesystem is read-only."""
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_probes_use_healthz_and_readyz_on_http(container: Doc) -> None:
    """Liveness probes /healthz and readiness /readyz, both on the port named http (9108)."""
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names["http"] == 9108


def test_startup_probe_budget_is_the_one_its_comment_states(container: Doc) -> None:
    """The start-up budget the deployment's comment promises is periodSeconds x failureThreshold,
    and /healthz (live through a rebuild) is what the start-up and liveness probes ask."""
    text = (K8S / "deployment.yaml").read_text(encoding="utf-8")
    stated = re.search(r"start-up budget of (\d+) x (\d+)s = (\d+)s", text)
    assert stated is not None, "the start-up probe's comment states no budget"
    startup = container["startupProbe"]
    real = (startup["failureThreshold"], startup["periodSeconds"])
    assert (int(stated[1]), int(stated[2])) == real
    assert int(stated[3]) == real[0] * real[1]
    assert startup["httpGet"]["path"] == container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_memory_limit_reaches_the_worker(container: Doc) -> None:
    """CMDB_WORKER_MEMORY_LIMIT_BYTES comes from the container's own limits.memory."""
    refs = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    field = refs["CMDB_WORKER_MEMORY_LIMIT_BYTES"]["resourceFieldRef"]
    assert field == {"containerName": "cmdb-worker", "resource": "limits.memory"}


def test_configmap_states_the_replication_factor(rendered: list[Doc]) -> None:
    """The ConfigMap sets the replication of the topics the worker creates (3)."""
    configmaps = [d for d in rendered if d["metadata"]["name"].startswith("cmdb-worker-config")]
    assert configmaps[0]["data"]["CMDB_WORKER_REPLICATION_FACTOR"] == "3"


def test_termination_grace_exceeds_shutdown_grace(pod_spec: Doc, container: Doc) -> None:
    """Kubernetes waits longer than the worker's own shutdown grace before it SIGKILLs."""
    shutdown_grace = int(env_value(container, SHUTDOWN_GRACE_ENV))
    assert shutdown_grace == 20
    assert pod_spec["terminationGracePeriodSeconds"] > shutdown_grace


def test_resources_have_requests_and_memory_limit(container: Doc) -> None:
    """CPU and memory requests and a memory limit are set."""
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


MEBI = {"Mi": 2**20, "Gi": 2**30}


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity in Mi or Gi, in MiB."""
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * MEBI[unit] / 2**20


def test_memory_request_and_limit_cover_the_measured_million_ci_figures(container: Doc) -> None:
    """The memory request holds the resident size measured at 1M CIs, the limit the rebuild's
    peak, and the steady size stays under the 90% at which CMDBWorkerMemoryNearLimit fires."""
    text = (K8S / "deployment.yaml").read_text(encoding="utf-8")
    figures = r"(\d[\d,]*) MiB resident once rebuilt[^0-9]+(\d[\d,]*) MiB at the peak"
    stated = re.search(figures, re.sub(r"\s*\n\s*#\s*", " ", text))  # comment lines joined
    assert stated is not None, "the resources' comment states no measured figures"
    steady, peak = (float(figure.replace(",", "")) for figure in stated.groups())
    resources = container["resources"]
    request, limit = (mebibytes(resources[k]["memory"]) for k in ("requests", "limits"))
    assert request >= steady
    assert limit >= peak
    assert steady <= 0.9 * limit


def test_settings_come_from_configmap_and_secret(rendered: list[Doc], container: Doc) -> None:
    """Env comes from the generated ConfigMap and SASL credentials from the unrendered Secret."""
    config_name = container["envFrom"][0]["configMapRef"]["name"]
    configmaps = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "ConfigMap"}
    assert "CMDB_WORKER_BOOTSTRAP_SERVERS" in configmaps[config_name]["data"]
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for key in ("CMDB_WORKER_SASL_USERNAME", "CMDB_WORKER_SASL_PASSWORD"):
        assert secret_refs[key] == {"name": "cmdb-worker-kafka", "key": key}
    assert not [doc for doc in rendered if doc["kind"] == "Secret"]


def test_secret_example_matches_the_references() -> None:
    """secret.example.yaml names the Secret and keys the Deployment reads."""
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text(encoding="utf-8"))
    assert example["metadata"]["name"] == "cmdb-worker-kafka"
    assert set(example["stringData"]) == {"CMDB_WORKER_SASL_USERNAME", "CMDB_WORKER_SASL_PASSWORD"}


def test_policy_configmap_is_mounted_where_the_env_points(
    rendered: list[Doc], pod_spec: Doc, container: Doc
) -> None:
    """The generated policy ConfigMap holds deploy/k8s/policy.yaml at CMDB_WORKER_POLICY's path."""
    assert env_value(container, "CMDB_WORKER_POLICY") == "/etc/cmdb-worker/policy.yaml"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/cmdb-worker")
    volume = next(v for v in pod_spec["volumes"] if v["name"] == mount["name"])
    configmaps = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "ConfigMap"}
    policy = configmaps[volume["configMap"]["name"]]
    assert policy["metadata"]["name"].startswith("cmdb-worker-policy-")
    assert policy["data"]["policy.yaml"] == (K8S / "policy.yaml").read_text(encoding="utf-8")


def test_deployed_policy_is_the_default_policy() -> None:
    """deploy/k8s/policy.yaml is byte-for-byte rules/policy.yaml (copy it after editing either)."""
    deployed = (K8S / "policy.yaml").read_bytes()
    assert deployed == DEFAULT_POLICY.read_bytes(), "run: cp rules/policy.yaml deploy/k8s/"


def test_three_replicas_rolled_one_at_a_time(rendered: list[Doc]) -> None:
    """Three replicas (an active and two hot standbys), updated one pod at a time without a
    surge, spread over nodes where it can."""
    spec = one(rendered, "Deployment")["spec"]
    assert spec["replicas"] == 3
    rolling = {"maxUnavailable": 1, "maxSurge": 0}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": rolling}
    spread = spec["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"


def test_the_base_needs_no_operator_crds(rendered: list[Doc]) -> None:
    """deploy/k8s holds no Prometheus Operator object, so clusters without its CRDs apply it."""
    assert [d["kind"] for d in rendered if d["apiVersion"] == OPERATOR_API] == []


def test_the_component_adds_monitor_and_rules_for_kube_prometheus_stack(
    rendered: list[Doc], monitored: list[Doc]
) -> None:
    """With the component: the base unchanged plus a ServiceMonitor and a PrometheusRule, in the
    worker's namespace, labelled with the `release` kube-prometheus-stack selects on."""
    added = [d for d in monitored if d["apiVersion"] == OPERATOR_API]
    assert sorted(d["kind"] for d in added) == ["PrometheusRule", "ServiceMonitor"]
    assert len(monitored) == len(rendered) + 2
    for doc in added:
        assert doc["metadata"]["namespace"] == "cmdb"
        assert RELEASE_LABEL in doc["metadata"]["labels"].items()


def test_prometheusrule_groups_equal_alerts_yaml(monitored: list[Doc]) -> None:
    """The PrometheusRule deploys exactly the rule groups promtool tests in alerts.yaml."""
    alerts = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    rule = one(monitored, "PrometheusRule")
    assert rule["spec"]["groups"] == alerts["groups"]


def test_rendered_rules_are_current() -> None:
    """alerts.yaml and the component's prometheusrule.yaml are what render.py makes of
    alerts.in.yaml and config.yaml (run `make monitoring` after editing either)."""
    script = ROOT / "deploy" / "prometheus" / "render.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_service_exposes_http_9108(rendered: list[Doc]) -> None:
    """The Service exposes port 9108 named http and selects the worker pods."""
    spec = one(rendered, "Service")["spec"]
    assert {"name": "http", "port": 9108, "targetPort": "http", "protocol": "TCP"} in spec["ports"]
    assert spec["selector"] == {"app.kubernetes.io/name": "cmdb-worker"}


def test_servicemonitor_scrapes_metrics_every_30s(monitored: list[Doc]) -> None:
    """The ServiceMonitor scrapes /metrics on port http every 30s from the worker's Service."""
    monitor = one(monitored, "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "30s")
    service_labels = one(monitored, "Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()


def test_pdb_keeps_two_replicas(rendered: list[Doc]) -> None:
    """The PodDisruptionBudget keeps two of the three worker pods through voluntary disruptions
    (an active and a standby to take over) and selects the worker pods."""
    pdb = one(rendered, "PodDisruptionBudget")["spec"]
    assert pdb == {"minAvailable": 2, "selector": pdb["selector"]}
    assert pdb["selector"]["matchLabels"] == {"app.kubernetes.io/name": "cmdb-worker"}


def test_networkpolicy_limits_ingress_to_9108_and_egress_to_kafka_and_dns(
    rendered: list[Doc],
) -> None:
    """Ingress is only TCP 9108; egress only Kafka (9092-9094) and DNS (53)."""
    spec = one(rendered, "NetworkPolicy")["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    ingress = {(p["protocol"], p["port"]) for rule in spec["ingress"] for p in rule["ports"]}
    egress = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]}
    assert ingress == {("TCP", 9108)}
    kafka = {("TCP", 9092), ("TCP", 9093), ("TCP", 9094)}
    assert egress == kafka | {("UDP", 53), ("TCP", 53)}


def test_service_account_mounts_no_token(rendered: list[Doc], pod_spec: Doc) -> None:
    """The pod uses its own ServiceAccount and no API token is mounted."""
    account = one(rendered, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert pod_spec["serviceAccountName"] == account["metadata"]["name"]
    assert pod_spec["automountServiceAccountToken"] is False


def test_service_links_cannot_pollute_settings(pod_spec: Doc) -> None:
    """Service env links are off, so a Service named cmdb-worker injects no CMDB_WORKER_* vars."""
    assert pod_spec["enableServiceLinks"] is False
