"""What both targets derive the same way from a ServiceSpec: labels, environment, health checks."""

from __future__ import annotations

from typing import Mapping

from .config import ServiceSpec, StackConfig

SERVICE_LABEL = "app.kubernetes.io/name"


def service_labels(stack_labels: Mapping[str, str], service: ServiceSpec) -> dict[str, str]:
    return {**stack_labels, SERVICE_LABEL: service.name}


def link_env(config: StackConfig, service: ServiceSpec) -> dict[str, str]:
    """`links: [redis]` gives REDIS_HOST and REDIS_PORT. The host is the service name on both
    targets: a network alias on Docker, a Service resolved by cluster DNS on Kubernetes."""
    env = {}
    for link in service.links:
        prefix = link.upper().replace("-", "_")
        env[f"{prefix}_HOST"] = link
        env[f"{prefix}_PORT"] = str(config.service(link).port)
    return env


def http_check_command(service: ServiceSpec) -> list[str]:
    """An HTTP health check run inside the container, with whichever client the image has."""
    url = f"http://127.0.0.1:{service.port}{service.health_path}"
    return [
        "CMD-SHELL",
        f"curl -fsS {url} || wget -qO- {url} || "
        f"python3 -c 'import urllib.request; urllib.request.urlopen(\"{url}\", timeout=3)'",
    ]
