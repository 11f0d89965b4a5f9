"""deploy/kubernetes: the manifests are valid Kubernetes resources (kubernetes-validate against the API's schemas),
and the custom resources, which it has no schema for, are checked for what matters: the PrometheusRule holds the
same rules promtool tests, the ScaledObject's query is PromQL that Prometheus accepts, and the selectors meet."""

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.deploy import stack
from tests.helpers import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
RULES = ROOT / "deploy" / "prometheus" / "rules"


def _resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    found: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        found.extend(document for document in yaml.safe_load_all((KUBERNETES / name).read_text()) if document)
    return found


def _one(kind: str, name: str) -> dict[str, Any]:
    (resource,) = [r for r in _resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return resource


def test_kustomization_lists_every_manifest_in_the_folder():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    manifests = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_the_core_resources_are_valid_for_kubernetes():
    validate = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert validate, "kubernetes-validate is missing: `make test` installs it (the dev extra)"
    files = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    result = subprocess.run([validate, "--strict", *files], cwd=KUBERNETES, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for kind in ("deployment/servometer", "service/servometer", "poddisruptionbudget/servometer"):
        assert f"passed for resource {kind}" in result.stdout


def test_the_deployment_probes_readiness_and_liveness_and_runs_as_non_root():
    pod = _one("Deployment", "servometer")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # Readiness through gRPC's health service, on the port the server is told to serve gRPC on.
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["readinessProbe"]["grpc"]["port"] == int(env["SERVOMETER_GRPC_PORT"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["grpc"] == int(env["SERVOMETER_GRPC_PORT"])
    service_ports = {port["name"]: port for port in _one("Service", "servometer")["spec"]["ports"]}
    assert service_ports["grpc"]["targetPort"] == "grpc"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert pod["securityContext"]["runAsNonRoot"] is True
    redis = _one("Service", "servometer-redis")
    assert env["SERVOMETER_REDIS_URL"] == f"redis://{redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}/0"
    drain = float(env["SERVOMETER_DRAIN_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] > drain + 5  # the preStop sleep, then the drain
    # Every replica signs feedback ids with the same secret, from the Secret the README says to create.
    (secret,) = [item for item in container["env"] if item["name"] == "SERVOMETER_FEEDBACK_SECRET"]
    assert secret["valueFrom"]["secretKeyRef"] == {
        "name": "servometer-secrets", "key": "feedback-secret", "optional": True
    }  # fmt: skip


def test_the_selectors_meet_service_monitor_budget_and_scaler_find_the_gateway():
    labels = _one("Deployment", "servometer")["spec"]["template"]["metadata"]["labels"]
    service = _one("Service", "servometer")
    assert service["spec"]["selector"].items() <= labels.items()
    assert _one("PodDisruptionBudget", "servometer")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    monitor = _one("ServiceMonitor", "servometer")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert monitor["endpoints"][0]["path"] == "/metrics"
    target = _one("ScaledObject", "servometer")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "servometer")


def test_the_prometheus_rule_is_generated_from_the_same_rules_files():
    result = subprocess.run(
        [sys.executable, "deploy/kubernetes/generate_prometheusrule.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    groups = [group for path in sorted(RULES.glob("*.yml")) for group in yaml.safe_load(path.read_text())["groups"]]
    assert _one("PrometheusRule", "servometer")["spec"]["groups"] == groups


def test_promtool_accepts_the_prometheus_rule(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": _one("PrometheusRule", "servometer")["spec"]["groups"]}))
    result = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_autoscaler_query_reads_a_servometer_metric_that_prometheus_accepts(monitored):
    (trigger,) = _one("ScaledObject", "servometer")["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    assert "servometer_requests_in_flight" in query or "servometer_queue_depth" in query
    response = httpx.get(f"http://{monitored.prometheus}/api/v1/query", params={"query": query}, timeout=10)
    assert response.status_code == 200, response.text  # a query Prometheus cannot parse is a 400
    # Without the namespace label a Kubernetes scrape adds, the same query finds the gateway's series.
    local = query.replace('namespace="servometer", ', "")
    deadline = time.monotonic() + 30
    while not (found := stack.query(monitored.prometheus, local)) and time.monotonic() < deadline:
        time.sleep(0.5)  # the first scrape
    assert found, local
