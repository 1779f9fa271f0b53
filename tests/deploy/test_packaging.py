"""The Dockerfile and the Kubernetes manifests, checked offline: linted, schema-validated,
and holding what a Kubernetes deployment of modelswap needs."""

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

from modelswap.core.delivery.policy import Policy
from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is installed by the test extra (pip install -e '.[test]')"
    return found


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    out = subprocess.run([tool("kubectl"), "kustomize", str(ROOT / "k8s")], capture_output=True, text=True, check=True)
    return {doc["kind"]: doc for doc in yaml.safe_load_all(out.stdout) if doc}


def test_dockerfile_passes_hadolint_at_warning_level() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "warning", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_modelswap_serve_as_non_root_with_models_volume_and_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim AS build$", text, re.M) and text.count("FROM ") == 2
    assert re.search(r"^USER 10001", text, re.M)
    assert 'VOLUME ["/models"]' in text and "PROMETHEUS_MULTIPROC_DIR=/tmp/metrics" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["modelswap", "serve"]' in text
    assert "pip install --no-cache-dir --prefix=/install ." in text  # dependencies from pyproject.toml


def test_kustomize_output_passes_strict_schema_validation(tmp_path: Path) -> None:
    out = subprocess.run([tool("kubectl"), "kustomize", str(ROOT / "k8s")], capture_output=True, text=True, check=True)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(out.stdout)
    check = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(rendered), str(ROOT / "k8s" / "secret.example.yaml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_deployment_probes_mounts_and_security(manifests: dict[str, dict[str, Any]]) -> None:
    deploy = manifests["Deployment"]["spec"]
    assert deploy["replicas"] == 3 and deploy["strategy"]["type"] == "RollingUpdate"
    pod = deploy["template"]["spec"]
    annotations = deploy["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"]
        == manifests["PersistentVolumeClaim"]["metadata"]["name"]
    )
    assert "emptyDir" in volumes[mounts["/tmp"]] and "emptyDir" in volumes[mounts["/tmp/metrics"]]
    env = {e["name"]: e.get("value") for e in container["env"]}
    token_file = Path(env["MODELSWAP_ADMIN_TOKEN_FILE"])
    assert "secret" in volumes[mounts[str(token_file.parent)]]
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics" and env["MODELSWAP_ROOT"] == "/models"
    assert float(env["MODELSWAP_POLL_INTERVAL"]) <= 1.0  # the poll carries deploys between pods


def test_volume_pdb_service_and_retraining_cronjob(manifests: dict[str, dict[str, Any]]) -> None:
    assert manifests["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert manifests["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    assert manifests["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    job = manifests["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert container["command"][-1].endswith("scripts/retrain.py") and "--deploy-if-better" not in container["args"]
    assert any(m["mountPath"] == "/models" for m in container["volumeMounts"])
    # the retrain publishes and sets the shipped policy, which decides what goes live
    policy_file = Path(container["args"][container["args"].index("--policy") + 1])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    config_map = next(v for v in job["volumes"] if v["name"] == mounts[str(policy_file.parent)])["configMap"]["name"]
    assert config_map == manifests["ConfigMap"]["metadata"]["name"]
    rules = json.loads(manifests["ConfigMap"]["data"][policy_file.name])
    policy = Policy.from_dict(container["args"][0], rules)
    assert policy.gate and policy.shadow and policy.on_alert and policy.rollout["steps"][-1] == 100
    assert job["securityContext"]["runAsNonRoot"] is True
    assert manifests["CronJob"]["spec"]["concurrencyPolicy"] == "Forbid"


def test_alertmanager_config_and_alert_rules_pass_their_own_checkers_and_route_drift_to_the_webhook(
    manifests: dict[str, dict[str, Any]],
) -> None:
    monitoring = ROOT / "k8s" / "monitoring"
    for args in (["amtool", "check-config", monitoring / "alertmanager.yaml"],
                 ["promtool", "check", "rules", monitoring / "alerts.yaml"]):  # fmt: skip
        assert shutil.which(str(args[0])), "scripts/test installs Debian's prometheus and prometheus-alertmanager"
        result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((monitoring / "alertmanager.yaml").read_text())
    (route,) = config["route"]["routes"]
    (hook,) = next(r for r in config["receivers"] if r["name"] == route["receiver"])["webhook_configs"]
    service = manifests["Service"]["metadata"]["name"]
    assert re.fullmatch(rf"http://{service}\.[a-z-]+\.svc/v1/alertmanager", hook["url"])
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    shipped = json.loads((ROOT / "k8s" / "policy.json").read_text())
    for name in shipped["on_alert"]["alerts"]:
        assert name in route["matchers"][0]


def test_alerts_and_dashboard_use_real_metrics_and_point_at_the_runbook() -> None:
    from prometheus_client import CollectorRegistry

    from modelswap.core.metrics import Metrics
    from modelswap.core.monitoring.gauges import MonitorCollector

    registry = CollectorRegistry()
    Metrics(registry)
    registry.register(MonitorCollector(lambda: [], lambda model: {}, ttl=1))  # the monitoring gauges
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    known = {m.name + suffix for m in registry.collect() for suffix in suffixes[m.type]}
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {
        "#" + re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
        for h in re.findall(r"^## (.+)$", runbook, re.M)
    }
    rules = yaml.safe_load((ROOT / "k8s" / "monitoring" / "alerts.yaml").read_text())["groups"][0]["rules"]
    dashboard = json.loads((ROOT / "k8s" / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [r["expr"] for r in rules] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for expr in exprs:
        for metric in re.findall(r"modelswap_[a-z_]+", expr):
            assert metric in known, f"{metric} in {expr!r} is not a metric modelswap exports"
    for rule in rules:
        assert "#" + rule["annotations"]["runbook"].split("#", 1)[1] in anchors, rule["alert"]
