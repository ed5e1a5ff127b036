"""The Helm chart's pods run as processes on this machine, as a kubelet would run them.

No Kubernetes runs here, so this takes the chart's rendered manifests and starts each pod's
containers with their own command, arguments and environment (the image's ``ENV`` included,
read from ``deploy/Dockerfile``), then runs their probes as the kubelet does. What a cluster gives
a pod is given the nearest way:

- **its own address**: each pod gets a loopback address of its own (127.0.0.2, 127.0.0.3, ...)
  and keeps the chart's ports. Inside a pod, ``127.0.0.1`` and ``0.0.0.0`` are the pod itself:
  they become its address (the only rewrite of a pod's own settings).
- **cluster DNS**: the names the chart writes (a worker pod's stable name under its headless
  Service, an external Redis, an S3 endpoint) are replaced by the address that stands for them.
- **volumes**: each mount path becomes a directory of the pod's (an ``emptyDir``) or one the
  caller fills (a ConfigMap of recordings); ``envFrom`` secrets come from the caller.

Images become programs: ``voxserve`` runs this checkout's ``voxserve`` command; an engine
server's image runs a stand-in that follows its upstream server (``harness.servers``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "voxserve"
BIN = Path(sys.executable).parent
#: An image's entry point as a command line on this machine (its arguments follow), by its name.
Image = Callable[[str], list[str]]


def render(values: Path, sets: Mapping[str, str], release: str = "tts") -> list[dict[str, Any]]:
    """``helm template`` of the chart with a values file and ``--set`` overrides."""
    overrides = [f"--set={key}={value}" for key, value in sets.items()]
    done = subprocess.run(
        [str(BIN / "helm"), "template", release, str(CHART), "-f", str(values), *overrides],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def image_name(image: str) -> str:
    """``registry.example.com/voxserve:0.1.0`` → ``voxserve``: what the image is, wherever it is pushed."""
    return image.rsplit("/", 1)[-1].split(":")[0]


def image_env() -> dict[str, str]:
    """The ``ENV`` the image sets for every container (``deploy/Dockerfile``'s last stage)."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    return dict(re.findall(r"^\s+(VOXSERVE_\w+)=(\S+)", dockerfile, re.M))


@dataclass
class Pod:
    """One pod of a workload: its name, the address it has here, its spec and running containers."""

    name: str
    address: str
    spec: dict[str, Any]
    directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def container(self, name: str) -> dict[str, Any]:
        return next(c for c in self.spec["containers"] if c["name"] == name)

    def port(self, container: dict[str, Any], port: int | str) -> int:
        """A probe's port: a number, or the name of one of the container's ports."""
        if isinstance(port, int):
            return port
        return int(next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port))

    def url(self, port: int) -> str:
        return f"http://{self.address}:{port}"

    def stop(self, container: str) -> None:
        process = self.processes.pop(container)
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def pods_of(resources: list[dict[str, Any]], root: Path, first_address: int = 2) -> list[Pod]:
    """The pods the Deployments and StatefulSets ask for, named as Kubernetes names them (a
    StatefulSet's by ordinal), each with an address of its own."""
    pods: list[Pod] = []
    for resource in resources:
        if resource["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name = resource["metadata"]["name"]
        for ordinal in range(int(resource["spec"].get("replicas", 1))):
            pod = f"{name}-{ordinal}"
            address = f"127.0.0.{first_address + len(pods)}"
            pods.append(Pod(pod, address, resource["spec"]["template"]["spec"], root / pod))
    return pods


@dataclass
class Cluster:
    """What the cluster around the pods provides: DNS names and secrets, and the images."""

    images: Mapping[str, Image]
    names: dict[str, str] = field(default_factory=dict)  # "host" or "host:port" → "address[:port]"
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    config_maps: Mapping[str, Path] = field(default_factory=dict)  # a ConfigMap's files, as a directory

    def localize(self, text: str, pod: Pod, mounts: Mapping[str, Path]) -> str:
        """A setting or argument as this pod here sees it: its own address for 127.0.0.1 and
        0.0.0.0, the cluster's names resolved, mount paths as the pod's directories."""
        text = re.sub(r"\b(127\.0\.0\.1|0\.0\.0\.0)\b", pod.address, text)
        for name, address in sorted(self.names.items(), key=lambda item: -len(item[0])):
            text = text.replace(name, address)
        for path, directory in mounts.items():
            text = text.replace(path, str(directory))
        return text

    def mounts(self, pod: Pod, container: dict[str, Any]) -> dict[str, Path]:
        volumes = {volume["name"]: volume for volume in pod.spec.get("volumes", [])}
        mounts = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                mounts[mount["mountPath"]] = self.config_maps[volume["configMap"]["name"]]
            else:  # emptyDir, or a claim: the pod's own directory
                mounts[mount["mountPath"]] = pod.directory / mount["name"]
                mounts[mount["mountPath"]].mkdir(parents=True, exist_ok=True)
        return mounts

    def environment(self, pod: Pod, container: dict[str, Any], mounts: Mapping[str, Path]) -> dict[str, str]:
        env = dict(image_env()) if image_name(container["image"]) == "voxserve" else {}
        for source in container.get("envFrom", []):
            env.update(self.secrets[source["secretRef"]["name"]])
        for variable in container.get("env", []):
            if "valueFrom" in variable:
                key = variable["valueFrom"]["secretKeyRef"]
                env[variable["name"]] = self.secrets[key["name"]][key["key"]]
            else:
                env[variable["name"]] = variable["value"]
        return {name: self.localize(value, pod, mounts) for name, value in env.items()}

    def start(self, pod: Pod) -> None:
        """Every container of the pod, each logging to ``<pod directory>/<container>.log``."""
        pod.directory.mkdir(parents=True, exist_ok=True)
        inherited = {name: value for name, value in os.environ.items() if not name.startswith("VOXSERVE_")}
        for container in pod.spec["containers"]:
            mounts = self.mounts(pod, container)
            entry = self.images[image_name(container["image"])](pod.address)
            args = [self.localize(arg, pod, mounts) for arg in container.get("args", [])]
            env = {**inherited, **self.environment(pod, container, mounts)}
            with open(pod.directory / f"{container['name']}.log", "ab") as log:
                pod.processes[container["name"]] = subprocess.Popen(
                    [*entry, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
                )

    def stop(self, pod: Pod) -> None:
        for name in list(pod.processes):
            pod.stop(name)


def probe(pod: Pod, container: dict[str, Any], spec: dict[str, Any]) -> bool:
    """One probe as the kubelet runs it: an HTTP GET to the pod's address (2xx/3xx passes; the
    Host header is that address), or a TCP connect."""
    timeout = float(spec.get("timeoutSeconds", 1))
    if "httpGet" in spec:
        get = spec["httpGet"]
        try:
            answer = httpx.get(pod.url(pod.port(container, get["port"])) + get["path"], timeout=timeout)
        except httpx.HTTPError:
            return False
        return 200 <= answer.status_code < 400
    if "tcpSocket" in spec:
        try:
            with socket.create_connection(
                (pod.address, pod.port(container, spec["tcpSocket"]["port"])), timeout
            ):
                return True
        except OSError:
            return False
    raise ValueError(f"probe {spec} is not run here")


def wait_ready(pods: list[Pod], timeout: float = 120) -> None:
    """Until every container passes its startup and readiness probes (a container without one is
    ready once started); fails with the pod's log when a container exits or time runs out."""
    deadline = time.monotonic() + timeout
    for pod in pods:
        for container in pod.spec["containers"]:
            for kind in ("startupProbe", "readinessProbe"):
                spec = container.get(kind)
                while spec is not None and not probe(pod, container, spec):
                    process = pod.processes[container["name"]]
                    log = (pod.directory / f"{container['name']}.log").read_text(errors="replace")[-3000:]
                    if process.poll() is not None:
                        raise RuntimeError(f"{pod.name}/{container['name']} exited:\n{log}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{pod.name}/{container['name']} never passed its {kind}:\n{log}")
                    time.sleep(0.2)


@contextmanager
def running(cluster: Cluster, pods: list[Pod]) -> Iterator[list[Pod]]:
    """The pods started, and stopped (SIGTERM, as Kubernetes stops them) at the end."""
    try:
        for pod in pods:
            cluster.start(pod)
        yield pods
    finally:
        for pod in pods:
            cluster.stop(pod)
