"""The app spec and the stack's settings as frozen, typed values.

`components/config.py` builds them from raw stack config (and reports every problem at once);
the components take the few of them they need. One `WorkloadSpec` drives both targets: Docker
and Kubernetes read the same fields and differ only where the platforms do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

import pulumi

DEFAULT_USER = 10001
MAIN_PORT = "main"
"""The name of the port given by the `port`/`publish` shorthand (and of the first port's URL)."""


@dataclass(frozen=True)
class BuildSpec:
    context: str
    dockerfile: str = "Dockerfile"
    target: Optional[str] = None
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeSpec:
    path: str
    size: str = "1Gi"


@dataclass(frozen=True)
class PortSpec:
    name: str
    port: int
    publish: Optional[int] = None
    """Host port on Docker (plus the stack's port offset); the Service port on Kubernetes."""


@dataclass(frozen=True)
class HealthSpec:
    """An HTTP GET of `path` on port `port`, or a command run in the container."""

    path: Optional[str] = None
    port: Optional[int] = None
    command: tuple[str, ...] = ()
    interval: int = 2
    timeout: int = 3
    retries: int = 3
    start_period: int = 2


@dataclass(frozen=True)
class FileSpec:
    """A file from the project mounted read-only at `path` in the container."""

    path: str
    source: str
    """Absolute path of the file in the project."""
    content: str


@dataclass(frozen=True)
class SecretFileSpec:
    path: str
    key: str
    """The secret config key whose value the file holds."""


@dataclass(frozen=True)
class WorkloadSpec:
    """What runs in a container: shared by services and jobs."""

    name: str
    build: Optional[BuildSpec] = None
    image: Optional[str] = None
    command: Optional[tuple[str, ...]] = None
    """Replaces the image's ENTRYPOINT (Compose `entrypoint`, Kubernetes `command`)."""
    args: Optional[tuple[str, ...]] = None
    """Replaces the image's CMD (Compose `command`, Kubernetes `args`)."""
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    """Environment variable -> secret config key."""
    secret_files: tuple[SecretFileSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    links: tuple[str, ...] = ()
    depends_on: Mapping[str, str] = field(default_factory=dict)
    """Service or job name -> `started`, `healthy` or `completed`."""
    user: Optional[tuple[int, int]] = (DEFAULT_USER, DEFAULT_USER)
    """(uid, gid), or None to run as the image's own user."""
    read_only: bool = True
    capabilities: tuple[str, ...] = ()
    """Added on top of dropping all of them."""
    cpu: float = 0.5
    cpu_request: float = 0.05
    memory_mb: int = 128

    @property
    def secret_keys(self) -> set[str]:
        return set(self.secret_env.values()) | {f.key for f in self.secret_files}


@dataclass(frozen=True)
class ServiceSpec(WorkloadSpec):
    """A long-running service: ports (none for a worker), replicas, a volume, a health check."""

    ports: tuple[PortSpec, ...] = ()
    replicas: int = 1
    volume: Optional[VolumeSpec] = None
    health: Optional[HealthSpec] = None

    @property
    def stateful(self) -> bool:
        return self.volume is not None

    @property
    def main_port(self) -> Optional[PortSpec]:
        return self.ports[0] if self.ports else None

    @property
    def published(self) -> tuple[PortSpec, ...]:
        return tuple(p for p in self.ports if p.publish is not None)


@dataclass(frozen=True)
class JobSpec(WorkloadSpec):
    """A task run to completion (a migration) before the services that depend on it (re)start."""

    timeout: int = 300


@dataclass(frozen=True)
class AppSpec:
    """Services and jobs, ordered so that each comes after what it links to or depends on."""

    workloads: tuple[WorkloadSpec, ...]

    @property
    def services(self) -> tuple[ServiceSpec, ...]:
        return tuple(w for w in self.workloads if isinstance(w, ServiceSpec))

    @property
    def jobs(self) -> tuple[JobSpec, ...]:
        return tuple(w for w in self.workloads if isinstance(w, JobSpec))

    def service(self, name: str) -> ServiceSpec:
        return next(s for s in self.services if s.name == name)

    @property
    def secret_keys(self) -> list[str]:
        return sorted({key for workload in self.workloads for key in workload.secret_keys})


@dataclass(frozen=True)
class Registry:
    server: str
    username: str
    password: pulumi.Input[str]

    @property
    def url(self) -> str:
        """Docker's rule: a registry on the loopback host speaks plain HTTP, any other one HTTPS."""
        host = self.server.rsplit(":", 1)[0] if self.server.count(":") == 1 else self.server
        return ("http://" if host in ("localhost", "127.0.0.1") else "https://") + self.server


@dataclass(frozen=True)
class ImageSources:
    """Where each workload's image comes from: built (and pushed), pinned, or another stack's."""

    repository: str
    push: bool = False
    registry: Optional[Registry] = None
    pinned: Mapping[str, str] = field(default_factory=dict)
    images_from: Optional[str] = None


@dataclass(frozen=True)
class DockerSettings:
    host: Optional[str] = None
    port_offset: int = 0


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    service_type: str = "NodePort"
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    storage_class: Optional[str] = None
    node_host: str = "127.0.0.1"


TargetSettings = Union[DockerSettings, KubernetesSettings]
