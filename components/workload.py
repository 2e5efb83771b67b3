"""What both targets derive the same way from a workload's spec: labels, environment from links,
health-check commands, content hashes, and where resources lived in the first release."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi

from .conventions import SERVICE_LABEL
from .spec import MAIN_PORT, HealthSpec, ServiceSpec, WorkloadSpec


@dataclass(frozen=True)
class Endpoint:
    """How other workloads reach a service: a host name and its named ports."""

    host: str
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(kw_only=True)
class WorkloadArgs:
    """What a workload's component gets on either target, besides its spec and the target's own values."""

    image: pulumi.Input[str]
    """The image to run: a local image ID on Docker, an immutable reference (repo@sha256:...) on a cluster."""
    labels: Mapping[str, str]
    """The stack's labels; the workload adds its own name."""
    links: Mapping[str, Endpoint] = field(default_factory=dict)
    after: Sequence[pulumi.Resource] = ()
    """What must be done before the workload (re)starts: its image's push, the workloads it depends on."""
    first_release_app: Optional[pulumi.Resource] = None
    """The app whose resources the first release declared in one component per target: they keep their URNs."""


def endpoint(service: ServiceSpec) -> Endpoint:
    """The service name is the host on both targets: a network alias on Docker, a Service resolved
    by cluster DNS on Kubernetes."""
    return Endpoint(host=service.name, ports={p.name: p.port for p in service.ports})


def workload_labels(stack_labels: Mapping[str, str], workload: WorkloadSpec) -> dict[str, str]:
    return {**stack_labels, SERVICE_LABEL: workload.name}


def link_env(links: Mapping[str, Endpoint]) -> dict[str, str]:
    """`links: [redis]` gives REDIS_HOST and REDIS_PORT (the main port), and REDIS_<NAME>_PORT for
    each other named port, e.g. API_METRICS_PORT."""
    env = {}
    for name, target in links.items():
        prefix = name.upper().replace("-", "_")
        env[f"{prefix}_HOST"] = target.host
        for index, (port_name, port) in enumerate(target.ports.items()):
            if index == 0:
                env[f"{prefix}_PORT"] = str(port)
            if port_name != MAIN_PORT:
                env[f"{prefix}_{port_name.upper().replace('-', '_')}_PORT"] = str(port)
    return env


def http_check_command(health: HealthSpec) -> list[str]:
    """An HTTP health check run inside the container, with whichever client the image has."""
    url = f"http://127.0.0.1:{health.port}{health.path}"
    return [
        "CMD-SHELL",
        f"curl -fsS {url} || wget -qO- {url} || "
        f"python3 -c 'import urllib.request; urllib.request.urlopen(\"{url}\", timeout=3)'",
    ]


def files_hash(workload: WorkloadSpec) -> str:
    """Changes whenever a mounted file's path, content or executable bit does: the service rolls with it."""
    digest = hashlib.sha256()
    for file in sorted(workload.files, key=lambda f: f.path):
        # The bit only when set: the hashes of stacks made before it stay as they were (no roll).
        digest.update(f"{file.path}\0{file.content}\0{'x' if file.executable else ''}".encode())
    return digest.hexdigest()[:16]
