"""The deployment files: the image's Dockerfile passes its linter, the compose files parse and name
only files that exist, the Grafana dashboard and the alerts query only metrics voxserve exports,
Prometheus's files pass promtool (alert unit tests included), and the Helm chart renders for each
of its values files into resources Kubernetes' schemas accept."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.core import CounterMetricFamily

from voxserve.config import Settings
from voxserve.metrics import Metrics, PoolCollector, RuntimeCollector

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "voxserve"
BIN = Path(sys.executable).parent  # hadolint comes with the test extra
HELM = str(BIN / "helm")  # the test extra's helm-binary
KUBERNETES = "1.30.0"
PROMETHEUS_OWN = {"up"}  # series Prometheus itself makes


def exported_series() -> set[str]:
    """Every series name voxserve's /metrics can hold, whatever has happened so far."""
    metrics = Metrics()
    metrics.registry.register(PoolCollector([]))
    metrics.registry.register(RuntimeCollector(dict, list))
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("", "_count", "_sum")}
    names: set[str] = set()
    for family in metrics.registry.collect():
        if family.type == "counter" or isinstance(family, CounterMetricFamily):
            names.add(family.name + "_total")
        else:
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def queried_series(expression: str) -> set[str]:
    """The series names a PromQL expression reads (voxserve's, and Prometheus's own)."""
    return set(re.findall(r"\bvoxserve_[a-z_]+", expression)) | (
        set(re.findall(r"\b[a-z_]+(?=\{)", expression)) & PROMETHEUS_OWN
    )


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "voxserve.json").read_text())
    exported = exported_series()
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(queries) >= 25
    for query in queries:
        named = queried_series(query)
        assert named and named <= exported, f"{query!r} names {named - exported}"
    shown = set().union(*map(queried_series, queries))
    # every family an operator needs has a panel
    needed = """http_requests_total time_to_first_audio_seconds_bucket real_time_factor_bucket
        characters_total
        jobs job_queue_wait_seconds_bucket worker_healthy instance_healthy instance_in_flight instance_limit
        cache_lookups_total rate_limit_refusals_total event_loop_lag_window_seconds job_storage_bytes"""
    for family in needed.split():
        assert f"voxserve_{family}" in shown, family


def test_every_alert_names_an_exported_metric() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    exported = exported_series() | PROMETHEUS_OWN
    for rule in rules:
        named = queried_series(rule["expr"])
        assert named and named <= exported, f"{rule['alert']}: {named - exported}"
    alerts = {rule["alert"] for rule in rules}
    assert {
        "VoxserveNoHealthyInstance",
        "VoxserveQueueWaitGrowing",
        "VoxserveErrorRatio",
        "VoxserveJobStorageNearlyFull",
    } <= alerts


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by `make test`")
@pytest.mark.parametrize(
    "check",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
)
def test_prometheus_files_pass_promtool(check: list[str]) -> None:
    done = subprocess.run(
        ["promtool", *check], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_passes_hadolint_and_runs_as_no_root() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    linted = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    text = dockerfile.read_text()
    assert re.search(r"^USER 10001$", text, re.M) and "HEALTHCHECK" in text
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):  # not another stage's files
        for name in source.split():
            assert (ROOT / name).exists(), f"COPY {name}: no such file in the build context"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "src" not in ignored and ".venv" in ignored


def compose_files() -> list[Path]:
    return sorted((DEPLOY / "compose").glob("*.yaml"))


@pytest.mark.parametrize("path", compose_files(), ids=lambda path: path.name)
def test_compose_files_parse_and_reference_only_existing_files(path: Path) -> None:
    compose = yaml.safe_load(path.read_text())
    services: dict[str, Any] = compose["services"]
    volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build:
            context = (path.parent / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (path.parent / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in volumes, f"{name}: volume {source} is not declared"
        for needed in service.get("depends_on", []):
            assert needed in services, f"{name} depends on unknown {needed}"


def test_the_cluster_compose_splits_gateways_from_workers() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "cluster.yaml").read_text())
    services = compose["services"]
    assert services["gateway"]["environment"]["VOXSERVE_JOBS__WORKERS"] == "0"
    assert services["worker"]["command"][0] == "worker"
    assert services["gateway"]["environment"]["VOXSERVE_STORAGE__URL"] == "/srv/voxserve-artifacts"
    nginx = (DEPLOY / "compose" / "nginx.conf").read_text()
    assert "proxy_buffering off" in nginx and "proxy_read_timeout 300s" in nginx


def chart_values() -> list[Path]:
    return sorted(CHART.glob("values*.yaml"))


@pytest.mark.parametrize("values", chart_values(), ids=lambda path: path.name)
def test_the_helm_chart_renders_into_valid_kubernetes_resources(values: Path) -> None:
    rendered = subprocess.run(
        [HELM, "template", "tts", str(CHART), "-f", str(values)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    resources = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    for resource in resources:
        kubernetes_validate.validate(resource, KUBERNETES, strict=True)  # raises on any schema error
    kinds = {(r["kind"], r["metadata"]["name"]): r for r in resources}
    gateway = kinds[("Deployment", "tts-voxserve-gateway")]["spec"]["template"]["spec"]
    probes = gateway["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["securityContext"]["runAsNonRoot"] is True
    assert ("PodDisruptionBudget", "tts-voxserve-gateway") in kinds
    env = {e["name"]: e.get("value") for e in probes["env"]}
    assert "*" not in json.loads(env["VOXSERVE_AUTH__ALLOWED_HOSTS"]), "the hosts answered are named"
    assert "VOXSERVE_AUTH__PUBLIC_METRICS" not in env, "metrics need a key, or the metrics port"
    assert "--metrics-port=9100" in probes["args"]
    service_ports = {p["name"] for p in kinds[("Service", "tts-voxserve")]["spec"]["ports"]}
    assert service_ports == {"http"}, "the metrics port is not behind the Service"
    if values.name == "values.yaml":
        ingress = kinds[("Ingress", "tts-voxserve")]["metadata"]["annotations"]
        assert ingress["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "300"
        assert ingress["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
        assert ("HorizontalPodAutoscaler", "tts-voxserve-gateway") in kinds
        assert ("StatefulSet", "tts-voxserve-redis") in kinds
    if values.name == "values-gpu-cluster.yaml":
        worker = kinds[("StatefulSet", "tts-voxserve-worker")]["spec"]["template"]["spec"]
        assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert worker["containers"][1]["resources"]["limits"]["nvidia.com/gpu"] == 1
        worker_env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
        assert worker_env["VOXSERVE_STORAGE__URL"] == "s3://tts-audio/prod"
        (own,) = Settings(engines=json.loads(worker_env["VOXSERVE_ENGINES"]), embedded=False).engines
        assert own.kind == "cosyvoice" and own.urls == ["http://127.0.0.1:50000"], "a worker drives its own"
        (every,) = Settings(engines=json.loads(env["VOXSERVE_ENGINES"]), embedded=False).engines
        assert every.urls == [f"http://tts-voxserve-worker-{n}.tts-voxserve-worker:50000" for n in range(4)]
        headless = kinds[("Service", "tts-voxserve-worker")]["spec"]
        assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
