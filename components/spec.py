"""The app spec and the stack's settings as frozen, typed values.

`components/config/` builds them from raw stack config (and reports every problem at once);
the components take the few of them they need. One `WorkloadSpec` drives both targets: Docker
and Kubernetes read the same fields and differ only where the platforms do.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

import pulumi

from .conventions import DEFAULT_NETWORK

DEFAULT_USER = 10001
MAIN_PORT = "main"
"""The name of the port given by the `port`/`publish` shorthand (and of the first port's URL)."""


ANY_HOST_PORT = 0
"""`publish` value for "any free host port": Docker picks one (the URL says which); on Kubernetes the
Service port is the container port (a NodePort is picked anyway)."""


@dataclass(frozen=True)
class BuildSpec:
    context: str
    dockerfile: str = "Dockerfile"
    target: Optional[str] = None
    args: Mapping[str, str] = field(default_factory=dict)
    platform: Optional[str] = None
    """os/arch[/variant] to build for, e.g. linux/amd64; None: the engine's own."""


@dataclass(frozen=True)
class VolumeSpec:
    """A named volume: a Docker volume `<service>-<name>`, a PVC on Kubernetes. It outlives the
    container; the first release's single volume is named `data`."""

    path: str
    size: str = "1Gi"
    name: str = "data"
    read_only: bool = False


@dataclass(frozen=True)
class PortSpec:
    name: str
    port: int
    publish: Optional[int] = None
    """Host port on Docker (plus the stack's port offset); the Service port on Kubernetes.
    ANY_HOST_PORT (0) publishes on a free host port."""
    protocol: str = "tcp"
    """tcp or udp."""


@dataclass(frozen=True)
class NetworkSpec:
    """A network the app's workloads join (Compose `networks`): a Docker network each, isolated as
    Compose isolates them; on Kubernetes the flat pod network plus a NetworkPolicy per network."""

    name: str
    external: Optional[str] = None
    """The name of an existing Docker network to join instead of creating one (ignored on Kubernetes)."""


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
class AutoscaleSpec:
    """Scaling on load between the service's `replicas` (the floor) and `max_replicas`, on Kubernetes
    (a HorizontalPodAutoscaler); Docker runs the floor."""

    max_replicas: int
    cpu_percent: Optional[int] = 70
    """Average CPU use, in percent of the CPU request, the autoscaler keeps the pods at; None: not by CPU."""
    memory_percent: Optional[int] = None
    """The same for memory, in percent of the memory request (= limit)."""
    scale_down_seconds: Optional[int] = None
    """How long the load must stay low before replicas are removed; None: Kubernetes' default (300)."""


@dataclass(frozen=True)
class FileSpec:
    """A file from the project mounted read-only at `path` in the container."""

    path: str
    source: str
    """Absolute path of the file in the project."""
    content: str
    executable: bool = False
    """Mounted executable (a script a health check runs), as the project's file is."""


SYNC_ACTIONS = ("sync", "sync+restart", "rebuild")
"""What `make dev` does on a save under a sync rule's path (Compose `develop.watch` actions)."""


@dataclass(frozen=True)
class SyncSpec:
    """A live-update rule of `make dev` (Compose `develop.watch`): a save under `path` (in the
    service's build context) is copied to `target` in the running containers (`sync`), then the
    container restarted (`sync+restart`), or rebuilds and rolls the service (`rebuild`)."""

    path: str
    """A directory or file of the build context, as the program sees it (relative to the project)."""
    target: Optional[str] = None
    """The absolute path in the container `path` is copied to (None for `rebuild`)."""
    action: str = "sync"
    ignore: tuple[str, ...] = ()
    """Glob patterns, relative to `path`, of files a save of which does nothing (fnmatch; a pattern
    matching a directory covers what is in it)."""

    def output(self, base_dir: str) -> dict:
        """The rule as the stack exports it for `make dev` (devtools/live.py reads it back)."""
        path = os.path.relpath(self.path, base_dir)
        return {"path": path, "target": self.target, "action": self.action, "ignore": list(self.ignore)}

    def covers(self, relative: str) -> Optional[str]:
        """The path of `relative` (a file, relative to the project) inside the rule's `path` ("" for
        `path` itself), or None when it is not under `path` or is ignored."""
        root, relative = os.path.normpath(self.path), os.path.normpath(relative)
        if root == ".":
            inside = relative
        elif relative == root:
            inside = ""
        elif relative.startswith(root + "/"):
            inside = relative[len(root) + 1 :]
        else:
            return None
        parts = inside.split("/") if inside else []
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        patterns = [pattern.rstrip("/") for pattern in self.ignore]  # `node_modules/`: a directory, as in Compose
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in (*prefixes, *parts)):
            return None
        return inside

    def container_path(self, inside: str) -> str:
        """Where a file at `inside` (as `covers` gives it) goes in the container."""
        return os.path.join(self.target or "/", inside) if inside else (self.target or "/")


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
    labels: Mapping[str, str] = field(default_factory=dict)
    """The user's own labels: Docker labels, Kubernetes annotations (values need not be label-safe)."""
    networks: tuple[str, ...] = ()
    """Names of the app's networks the workload joins; empty: the app's default network."""
    working_dir: Optional[str] = None
    tty: bool = False
    stdin_open: bool = False
    init: bool = False
    """Run an init process as PID 1 that reaps zombies and passes signals on (Docker --init; on
    Kubernetes the pod's shared process namespace, whose pause process is PID 1)."""
    extra_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Host name -> IP addresses added to /etc/hosts (Docker --add-host, Kubernetes hostAliases)."""
    sysctls: Mapping[str, str] = field(default_factory=dict)
    """Namespaced kernel parameters (Docker --sysctl, pod securityContext.sysctls)."""
    ulimits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Resource limit name -> (soft, hard) (Docker --ulimit; no Kubernetes equivalent)."""
    shm_size_mb: Optional[int] = None
    """Size of /dev/shm in MiB (Docker --shm-size, a memory-backed emptyDir on Kubernetes)."""
    tmpfs: tuple[str, ...] = ()
    """Writable in-memory paths (Docker --tmpfs, memory-backed emptyDirs), besides /tmp."""
    ephemeral: tuple[str, ...] = ()
    """Writable scratch paths that live as long as the container (Docker anonymous volumes, emptyDirs)."""
    stop_signal: Optional[str] = None
    """The signal that asks the process to stop, e.g. SIGQUIT; None: the image's (SIGTERM)."""
    stop_grace_period: Optional[int] = None
    """Seconds between the stop signal and SIGKILL; None: the target's default (Docker 10, Kubernetes 30)."""

    @property
    def secret_keys(self) -> set[str]:
        return set(self.secret_env.values()) | {f.key for f in self.secret_files}

    @property
    def joined_networks(self) -> tuple[str, ...]:
        """The app networks it joins: those it names, or the default one."""
        return self.networks or (DEFAULT_NETWORK,)


@dataclass(frozen=True)
class ServiceSpec(WorkloadSpec):
    """A long-running service: ports (none for a worker), replicas, a volume, a health check."""

    ports: tuple[PortSpec, ...] = ()
    replicas: int = 1
    volumes: tuple[VolumeSpec, ...] = ()
    health: Optional[HealthSpec] = None
    aliases: tuple[str, ...] = ()
    """More DNS names the service answers to on the app's networks (Docker network aliases,
    Kubernetes Services of those names), e.g. a Compose container_name other services use."""
    restart: str = "unless-stopped"
    """Docker's restart policy: always, unless-stopped, on-failure or no. Kubernetes always restarts."""
    autoscale: Optional[AutoscaleSpec] = None
    """Scale on load from `replicas` up to its maximum (Kubernetes); None: a fixed `replicas`."""
    sync: tuple[SyncSpec, ...] = ()
    """`make dev`'s live-update rules, in order; the deployed stack ignores them."""

    @property
    def stateful(self) -> bool:
        """Holds state on a writable volume: one replica, replaced (not rolled) on update."""
        return any(not volume.read_only for volume in self.volumes)

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
class RouteSpec:
    """An HTTP route of the app's one entry point: requests for `host` (any host when None) under
    `path` go to `service`'s port `port`. A router container serves them on Docker (over the
    service's replicas), an Ingress on Kubernetes; both speak https."""

    service: str
    port: str = MAIN_PORT
    """The name of one of the service's ports."""
    path: str = "/"
    """A path prefix; the longest matching prefix wins."""
    host: Optional[str] = None
    tls_secret: Optional[str] = None
    """Kubernetes: the user's TLS Secret for `host` (else the platform's certificate serves it)."""


@dataclass(frozen=True)
class AppSpec:
    """Services and jobs, ordered so that each comes after what it links to or depends on."""

    workloads: tuple[WorkloadSpec, ...]
    networks: tuple[NetworkSpec, ...] = ()
    """The networks workloads name in `networks`; none: one default network for all."""
    routes: tuple[RouteSpec, ...] = ()
    """The entry point's HTTP routes; none: each service is reached on its own published port."""

    @property
    def services(self) -> tuple[ServiceSpec, ...]:
        return tuple(w for w in self.workloads if isinstance(w, ServiceSpec))

    @property
    def jobs(self) -> tuple[JobSpec, ...]:
        return tuple(w for w in self.workloads if isinstance(w, JobSpec))

    def service(self, name: str) -> ServiceSpec:
        return next(s for s in self.services if s.name == name)

    @property
    def routed_services(self) -> list[ServiceSpec]:
        """The services some route leads to, each once, in the routes' order."""
        return [self.service(name) for name in dict.fromkeys(route.service for route in self.routes)]

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
    base_images: Mapping[str, str] = field(default_factory=dict)
    """Stand-ins for the images Dockerfiles build FROM: public name -> a local image tagged under that
    name in the building engine, so a Dockerfile builds unchanged where nothing can be pulled."""


ROUTER_PORT = 9443
"""The router's https host port on Docker (plus the stack's port offset), when the app has routes (the
cluster's entry point holds 8443)."""


@dataclass(frozen=True)
class DockerSettings:
    host: Optional[str] = None
    port_offset: int = 0
    router_port: int = ROUTER_PORT
    """The host port (plus `port_offset`) the router serves the app's routes on, over https."""


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    service_type: str = "NodePort"
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    storage_class: Optional[str] = None
    node_host: str = "127.0.0.1"
    ingress_class: str = "cloudservice"
    """The IngressClass of the app's routes: the cluster's entry point (`make cluster` runs one)."""
    https_port: int = 8443
    """The entry point's https port, for the routes' URLs (versions.env CLUSTER_HTTPS_PORT)."""
    route_domain: str = "apps.localhost"
    """The entry point is shared by every stack: a route without host is served on
    `<namespace>.<route_domain>`, which the platform's certificate covers."""

    @property
    def default_host(self) -> str:
        return f"{self.namespace}.{self.route_domain}"


TargetSettings = Union[DockerSettings, KubernetesSettings]
