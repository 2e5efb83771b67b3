"""DockerService and DockerJob: `docker run` for one service or one task, declared.

A service is `replicas` containers on the app's networks, reachable by its name (a DNS alias), hardened
(non-root, read-only root, all capabilities dropped unless some are added back, no-new-privileges,
CPU and memory limits), restarted by the engine and health-checked; its named volumes keep its state
across container replacements (each made writable for its user first). A job is a container run once
to its exit, again whenever its image or spec changes. `up` waits for each: a readiness check
(components/readiness.py) follows the service until it runs (and is healthy) and the job until it
exited 0, and fails fast and clearly otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_docker as docker

from .conventions import DEFAULT_READY_TIMEOUT, FILES_HASH, SECRETS_DIR, SECRETS_REVISION
from .docker_files import carried_files
from .network import docker_labels
from .readiness import CheckArgs, DockerWorkload, JobCheck, RolloutCheck
from .spec import ANY_HOST_PORT, HealthSpec, JobSpec, PortSpec, ServiceSpec, VolumeSpec, WorkloadSpec
from .upgrades import DOCKER_COMPONENT, target_child
from .workload import WorkloadArgs, files_hash, http_check_command, link_env, workload_labels


@dataclass(kw_only=True)
class DockerWorkloadArgs(WorkloadArgs):
    networks: Sequence[pulumi.Input[str]]
    """The Docker networks the workload joins, by name."""
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Secret config key -> value, for the keys the workload uses."""
    host: Optional[str] = None
    """The Docker host the container runs on (the provider's), which its readiness check reads."""


@dataclass(kw_only=True)
class DockerServiceArgs(DockerWorkloadArgs):
    spec: ServiceSpec
    port_offset: int = 0
    ready_timeout: int = DEFAULT_READY_TIMEOUT


@dataclass(kw_only=True)
class DockerJobArgs(DockerWorkloadArgs):
    spec: JobSpec


def _secret_files(
    parent: pulumi.Resource, name: str, spec: WorkloadSpec, args: DockerWorkloadArgs
) -> tuple[list, dict]:
    """Secret files live in a volume at /run/secrets, carried in by a container of their own; the
    workload is replaced with it whenever a secret changes. Returns the workload's volume mount and labels."""
    if not spec.secret_files:
        return [], {}
    mount, carrier = carried_files(
        parent,
        f"{name}-secrets",
        args.image,
        SECRETS_DIR,
        {f.path: args.secrets[f.key] for f in spec.secret_files},
        workload_labels(args.labels, spec),
    )
    return [mount], {SECRETS_REVISION: carrier.id}


def _container_args(
    name: str,
    spec: WorkloadSpec,
    args: DockerWorkloadArgs,
    extra_labels: Mapping[str, pulumi.Input[str]],
    volumes: Sequence[docker.ContainerVolumeArgs],
    aliases: Sequence[str] = (),
) -> dict:
    """What a service's and a job's container have in common: `docker run` minus ports and restarts."""
    env = {**spec.env, **link_env(args.links), **{var: args.secrets[key] for var, key in spec.secret_env.items()}}
    # The user's labels first: the stack's own (which `destroy` and the checks select by) win.
    labels = {**spec.labels, **workload_labels(args.labels, spec), **extra_labels}
    if spec.files:  # a bind mount does not change when the file does: the label rolls the container
        labels[FILES_HASH] = files_hash(spec)
    grace = spec.stop_grace_period
    return dict(
        name=name,
        image=args.image,
        hostname=spec.name,
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(name=network, aliases=[spec.name, *aliases])
            for network in args.networks
        ],
        entrypoints=list(spec.command) if spec.command is not None else None,
        command=list(spec.args) if spec.args is not None else None,
        envs=[pulumi.Output.concat(k, "=", v) for k, v in sorted(env.items())],
        labels=docker_labels(labels, docker.ContainerLabelArgs),
        # Project files mounted read-only, as Compose mounts `configs` (the engine must see the project).
        mounts=[
            docker.ContainerMountArgs(target=f.path, source=f.source, type="bind", read_only=True) for f in spec.files
        ]
        or None,
        # Ephemeral paths are anonymous volumes (`docker run -v <path>`): filled from the image on creation,
        # removed with the container (the provider's remove_volumes).
        volumes=[*volumes, *(docker.ContainerVolumeArgs(container_path=path) for path in spec.ephemeral)],
        user=f"{spec.user[0]}:{spec.user[1]}" if spec.user else None,
        read_only=spec.read_only,
        tmpfs=_tmpfs(spec),
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=list(spec.capabilities) or None),
        security_opts=["no-new-privileges:true"],
        memory=spec.memory_mb,
        # Equal to memory: no swap on top of the limit (and no drift: the engine reports it).
        memory_swap=spec.memory_mb,
        cpus=str(spec.cpu),
        # Unset flags stay unset (not false): a stack made before they existed sees no change.
        working_dir=spec.working_dir,
        tty=spec.tty or None,
        stdin_open=spec.stdin_open or None,
        init=spec.init or None,
        hosts=[
            docker.ContainerHostArgs(host=host, ip=address)
            for host, addresses in sorted(spec.extra_hosts.items())
            for address in addresses
        ]
        or None,
        sysctls=dict(spec.sysctls) or None,
        ulimits=[
            docker.ContainerUlimitArgs(name=limit, soft=soft, hard=hard)
            for limit, (soft, hard) in sorted(spec.ulimits.items())
        ]
        or None,
        shm_size=spec.shm_size_mb,
        stop_signal=spec.stop_signal,
        # The engine's stop timeout (`docker stop`, restarts) and the provider's before it removes the container.
        stop_timeout=grace,
        destroy_grace_seconds=10 if grace is None else grace,
    )


def _tmpfs(spec: WorkloadSpec) -> Optional[dict[str, str]]:
    """A read-only root gets a small /tmp; the spec's paths get the engine's defaults, as `--tmpfs <path>`."""
    tmpfs = {"/tmp": "rw,noexec,nosuid,size=16m"} if spec.read_only else {}
    return {**tmpfs, **{path: "" for path in spec.tmpfs}} or None


def _published(port: PortSpec, port_offset: int) -> docker.ContainerPortArgs:
    """`-p 127.0.0.1:<publish + offset>:<port>[/udp]`; ANY_HOST_PORT leaves the host port to the engine."""
    return docker.ContainerPortArgs(
        internal=port.port,
        external=None if port.publish == ANY_HOST_PORT else port.publish + port_offset,
        ip="127.0.0.1",
        protocol=None if port.protocol == "tcp" else port.protocol,  # tcp: the provider's default
    )


def _url(port: PortSpec, port_offset: int, container: docker.Container) -> pulumi.Input[str]:
    """The port's URL on the host; for ANY_HOST_PORT, the port the engine picked (the container's `ports`)."""
    scheme = "http" if port.protocol == "tcp" else port.protocol
    if port.publish != ANY_HOST_PORT:
        return f"{scheme}://127.0.0.1:{port.publish + port_offset}"
    return container.ports.apply(
        lambda bound: next(
            (
                f"{scheme}://127.0.0.1:{p.external}"
                for p in bound or ()
                if p.internal == port.port and (p.protocol or "tcp") == port.protocol  # the provider reads tcp back
            ),
            None,
        )
    )


def _prepared_volume(
    parent: pulumi.Resource,
    name: str,
    spec: ServiceSpec,
    spec_volume: VolumeSpec,
    volume: docker.Volume,
    args: DockerServiceArgs,
) -> JobCheck:
    """Makes a new named volume writable by the workload's user, as the pod's fsGroup does on Kubernetes.

    Docker creates a volume's root owned by root, or copies the owner of the image's directory at the
    mount path: an image run as the spec's user (10001 by default) without such a directory of its own
    gets "Permission denied" writing its state. Before the service starts, a one-shot container of its
    image, as root with CAP_CHOWN only (policy/rules.py spares it just that), chowns the volume's root
    (not what it holds) to the user. It runs again when the volume is new (replaced) or the user changes,
    not when the image does (the old one stays in the engine: built images are kept). Returns the check
    that it exited 0.
    """
    uid, gid = spec.user
    step_name = f"{name}-{spec_volume.name}-owner"
    step = docker.Container(
        step_name,
        name=step_name,
        image=args.image,
        user="0:0",
        entrypoints=["chown", f"{uid}:{gid}", spec_volume.path],
        volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=spec_volume.path)],
        network_mode="none",
        read_only=True,
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=["CHOWN"]),
        security_opts=["no-new-privileges:true"],
        memory=spec.memory_mb,
        memory_swap=spec.memory_mb,
        cpus=str(spec.cpu),
        restart="no",
        must_run=False,
        # The stack's labels (destroy finds it), not the service's name: what looks a service's container up
        # by name (status, logs) must not find this one.
        labels=docker_labels(args.labels, docker.ContainerLabelArgs),
        opts=pulumi.ResourceOptions(
            parent=parent, delete_before_replace=True, ignore_changes=["image"], replace_with=[volume]
        ),
    )
    return JobCheck(
        f"{step_name}-completed",
        CheckArgs(
            name=f"{spec.name} (volume {spec_volume.name} owner)",
            revision=step.id,
            timeout=args.ready_timeout,
            workload=DockerWorkload(container=step.name, host=args.host),
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


class DockerService(pulumi.ComponentResource):
    """A service as `replicas` containers (at least one) with the same network aliases, so its name
    resolves to all of them. Outputs: `url` (its first published port), `urls` (port name to URL),
    `containers` (the containers' names, `container_names`, which the router balances over)."""

    url: pulumi.Output[Optional[str]]
    urls: pulumi.Output[dict]
    containers: pulumi.Output[list]

    def __init__(self, name: str, args: DockerServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:DockerService", name, None, opts)
        self._name, self._args = name, args
        if args.spec.autoscale is not None:
            pulumi.log.warn(
                f"service {args.spec.name}: autoscale is for Kubernetes: Docker runs a fixed `replicas`", resource=self
            )
        mounts, secret_labels = _secret_files(self, name, args.spec, args)
        self.volumes: list[docker.Volume] = []
        prepared = [self._volume(volume, mounts) for volume in args.spec.volumes]
        after = [*args.after, *(step for step in prepared if step is not None)]
        # One replica after the other, each once the previous one is ready: a rollout replaces them in
        # turn, so the others keep serving (through the router) while one is down.
        self.container_names = [name, *(f"{name}-{n}" for n in range(2, args.spec.replicas + 1))]
        self.replicas: list[docker.Container] = []
        for container_name in self.container_names:
            container, ready = self._replica(container_name, mounts, secret_labels, after)
            self.replicas.append(container)
            after = [ready]
        self.container = self.replicas[0]
        self.containers = pulumi.Output.all(*(container.name for container in self.replicas))
        urls = {port.name: _url(port, args.port_offset, self.container) for port in args.spec.published}
        self.urls = pulumi.Output.from_input(urls)
        self.url = pulumi.Output.from_input(next(iter(urls.values()), None))
        self.register_outputs({"url": self.url, "urls": self.urls, "containers": self.containers})

    def _child(
        self, first_release_name: Optional[str], depends_on: Sequence[pulumi.Resource] = (), **extra
    ) -> pulumi.ResourceOptions:
        """A child; one the first release had (`first_release_name`: its name there) keeps its URN."""
        aliases = (
            target_child(self._args.first_release_app, DOCKER_COMPONENT, first_release_name)
            if first_release_name
            else []
        )
        return pulumi.ResourceOptions(parent=self, aliases=aliases, depends_on=list(depends_on), **extra)

    def _volume(self, spec_volume: VolumeSpec, mounts: list[docker.ContainerVolumeArgs]) -> Optional[pulumi.Resource]:
        """The named volume, mounted; and the step that gives a fresh writable one to the workload's user."""
        name, spec, args = self._name, self._args.spec, self._args
        volume = docker.Volume(
            f"{name}-{spec_volume.name}",
            name=f"{name}-{spec_volume.name}",
            labels=docker_labels(workload_labels(args.labels, spec), docker.VolumeLabelArgs),
            opts=self._child(f"{spec.name}-{spec_volume.name}"),
        )
        self.volumes.append(volume)
        mounts.append(
            docker.ContainerVolumeArgs(
                volume_name=volume.name, container_path=spec_volume.path, read_only=spec_volume.read_only or None
            )
        )
        if spec.user and not spec_volume.read_only:
            return _prepared_volume(self, name, spec, spec_volume, volume, args)
        return None

    def _replica(
        self, name: str, mounts: list[docker.ContainerVolumeArgs], secret_labels: dict, after: Sequence[pulumi.Resource]
    ) -> tuple[docker.Container, RolloutCheck]:
        """The first replica keeps the resource and Docker names of the service's one container (an
        upgrade updates it in place); replica n is `<name>-<n>`."""
        spec, args = self._args.spec, self._args
        first = name == self._name
        container = docker.Container(
            name,
            **_container_args(name, spec, args, secret_labels, mounts, spec.aliases),
            ports=[_published(port, args.port_offset) for port in spec.published],
            restart=spec.restart,
            healthcheck=_healthcheck(spec.health) if spec.health is not None else None,
            # A fixed container name and host port cannot exist twice: replace in place. The provider
            # plans a changed health check as an update it never applies to the container: replace.
            opts=self._child(
                spec.name if first else None, after, delete_before_replace=True, replace_on_changes=["healthcheck"]
            ),
        )
        # `up` returns once the service runs (and reports healthy), like `docker run` + waiting by
        # hand; the provider's own `wait` would report neither a crash loop nor the logs.
        ready = RolloutCheck(
            f"{name}-ready",
            CheckArgs(
                name=spec.name if first else f"{spec.name} ({name})",
                workload=DockerWorkload(container=container.name, host=args.host),
                revision=container.id,
                timeout=args.ready_timeout,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return container, ready


def _healthcheck(health: HealthSpec) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=http_check_command(health) if health.path else ["CMD", *health.command],
        interval=f"{health.interval}s",
        timeout=f"{health.timeout}s",
        retries=health.retries,
        start_period=f"{health.start_period}s",
    )


class DockerJob(pulumi.ComponentResource):
    """One task as a container run to its exit; depending on the job means waiting until it exited 0."""

    def __init__(self, name: str, args: DockerJobArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:DockerJob", name, None, opts)
        volumes, secret_labels = _secret_files(self, name, args.spec, args)
        container = docker.Container(
            name,
            **_container_args(name, args.spec, args, secret_labels, volumes),
            restart="no",
            # Started, not kept running: the job's check waits for its exit (and enforces its
            # timeout), rather than the provider attaching to it with no time limit.
            must_run=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after), delete_before_replace=True),
        )
        JobCheck(
            f"{name}-completed",
            CheckArgs(
                name=args.spec.name,
                workload=DockerWorkload(container=container.name, host=args.host),
                revision=container.id,
                timeout=args.spec.timeout,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
