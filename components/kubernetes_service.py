"""KubernetesService and KubernetesJob: the app's workloads on a cluster, in the namespace they share
(AppNamespace, kubernetes_namespace.py).

A service is a Deployment (+ a Service when it has ports, and one per alias, + a PVC per volume, + a
ConfigMap for its files); a job is a Job run to completion before its dependants. Pods run images by
digest, roll without downtime (readiness-gated RollingUpdate, maxUnavailable 0) and are hardened like
the Docker containers.

What Kubernetes has no field for (a stop signal, ulimits, restart policies other than always) is
reported as a warning on the workload, never an error. `init` (Docker's --init) is the pod's shared
process namespace: its pause process is PID 1 and reaps zombies, and the command, no longer PID 1,
stops on SIGTERM even without a handler.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apps.v1 import DeploymentSpecArgs, DeploymentStrategyArgs, RollingUpdateDeploymentArgs
from pulumi_kubernetes.autoscaling.v2 import (
    CrossVersionObjectReferenceArgs,
    HorizontalPodAutoscalerBehaviorArgs,
    HorizontalPodAutoscalerSpecArgs,
    HPAScalingRulesArgs,
    MetricSpecArgs,
    MetricTargetArgs,
    ResourceMetricSourceArgs,
)
from pulumi_kubernetes.batch.v1 import JobSpecArgs
from pulumi_kubernetes.core.v1 import (
    CapabilitiesArgs,
    ConfigMapVolumeSourceArgs,
    ContainerArgs,
    ContainerPortArgs,
    EmptyDirVolumeSourceArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    ExecActionArgs,
    HostAliasArgs,
    HTTPGetActionArgs,
    KeyToPathArgs,
    LifecycleArgs,
    LifecycleHandlerArgs,
    PersistentVolumeClaimSpecArgs,
    PersistentVolumeClaimVolumeSourceArgs,
    PodSecurityContextArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    ProbeArgs,
    ResourceRequirementsArgs,
    SeccompProfileArgs,
    SecretKeySelectorArgs,
    SecretVolumeSourceArgs,
    SecurityContextArgs,
    ServicePortArgs,
    ServiceSpecArgs,
    SleepActionArgs,
    SysctlArgs,
    TCPSocketActionArgs,
    VolumeArgs,
    VolumeMountArgs,
    VolumeResourceRequirementsArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.networking.v1 import NetworkPolicyIngressRuleArgs, NetworkPolicyPortArgs, NetworkPolicySpecArgs

from .conventions import DEFAULT_READY_TIMEOUT, FILES_HASH, SECRETS_REVISION
from .readiness import CheckArgs, JobCheck, KubernetesWorkload, RolloutCheck
from .spec import ANY_HOST_PORT, AutoscaleSpec, JobSpec, KubernetesSettings, PortSpec, ServiceSpec, WorkloadSpec
from .workload import WorkloadArgs, files_hash, link_env, workload_labels

# Kubernetes, unlike Docker, keeps ports below 1024 for root: this namespaced sysctl (one of the
# "safe" ones every cluster allows) lets the non-root user bind them, as on Docker.
UNPRIVILEGED_PORTS = {"net.ipv4.ip_unprivileged_port_start": "0"}
# Services with ports sleep this long before their stop signal, so that endpoints drop the pod first.
PRE_STOP_SECONDS = 5


def _protocol(port: PortSpec) -> Optional[str]:
    """UDP when asked; TCP, Kubernetes' default, is left unsaid (as earlier releases did)."""
    return "UDP" if port.protocol == "udp" else None


from .kubernetes_objects import (
    SKIP_AWAIT,
    dns_label,
    first_release_aliases,
    network_label,
    object_metadata,
    pod_selector,
)


@dataclass(kw_only=True)
class KubernetesWorkloadArgs(WorkloadArgs):
    namespace: pulumi.Input[str]
    pull_secrets: Sequence[pulumi.Input[str]] = ()
    secrets_name: Optional[pulumi.Input[str]] = None
    """The Secret holding the secret config values the workload uses."""
    secrets_revision: Optional[pulumi.Input[str]] = None
    """Changes when a Secret the pods read changes (AppNamespace.secrets_revision): rolls them."""
    networks: Sequence[str] = ()
    """The app networks the pods join (a label each); empty when the app declares none."""
    settings: KubernetesSettings


@dataclass(kw_only=True)
class KubernetesServiceArgs(KubernetesWorkloadArgs):
    spec: ServiceSpec
    ready_timeout: int = DEFAULT_READY_TIMEOUT


@dataclass(kw_only=True)
class KubernetesJobArgs(KubernetesWorkloadArgs):
    spec: JobSpec


class _PodBuilder:
    """The pod template both a service's Deployment and a job's Job run, from one workload spec."""

    def __init__(self, spec: WorkloadSpec, args: KubernetesWorkloadArgs, files_config_map: Optional[pulumi.Input[str]]):
        self.spec, self.args = spec, args
        self.volumes: list[VolumeArgs] = []
        self.mounts: list[VolumeMountArgs] = []
        if spec.read_only:
            self.mount("tmp", "/tmp", empty_dir=EmptyDirVolumeSourceArgs(size_limit="16Mi"))
        if spec.files:
            # Readable by all as Docker's bind mount of the project file is; a script stays executable.
            items = [
                KeyToPathArgs(key=f"file-{i}", path=f"file-{i}", mode=0o555 if f.executable else None)
                for i, f in enumerate(spec.files)
            ]
            self.volumes.append(
                VolumeArgs(name="files", config_map=ConfigMapVolumeSourceArgs(name=files_config_map, items=items))
            )
            self.mounts += [
                VolumeMountArgs(name="files", mount_path=f.path, sub_path=f"file-{i}", read_only=True)
                for i, f in enumerate(spec.files)
            ]
        if spec.secret_files:
            items = [KeyToPathArgs(key=key, path=key) for key in sorted({f.key for f in spec.secret_files})]
            self.volumes.append(
                VolumeArgs(
                    name="secret-files",
                    secret=SecretVolumeSourceArgs(secret_name=args.secrets_name, items=items, default_mode=0o440),
                )
            )
            self.mounts += [
                VolumeMountArgs(name="secret-files", mount_path=f.path, sub_path=f.key, read_only=True)
                for f in spec.secret_files
            ]
        self._scratch_space()

    def mount(self, name: str, path: str, read_only: bool = False, **source) -> None:
        """A pod volume (`source`: its emptyDir, persistentVolumeClaim...) mounted at `path`."""
        self.volumes.append(VolumeArgs(name=name, **source))
        self.mounts.append(VolumeMountArgs(name=name, mount_path=path, read_only=read_only or None))

    def _scratch_space(self) -> None:
        """Compose's shm_size, tmpfs and anonymous volumes: emptyDirs, in memory for the first two,
        writable by the pod's user (fsGroup)."""
        spec = self.spec
        if spec.shm_size_mb is not None:
            shm = EmptyDirVolumeSourceArgs(medium="Memory", size_limit=f"{spec.shm_size_mb}Mi")
            self.mount("shm", "/dev/shm", empty_dir=shm)
        # Compose files often add a tmpfs /tmp to a read-only container, which has one already.
        tmpfs = [path for path in spec.tmpfs if not (spec.read_only and path == "/tmp")]
        for index, path in enumerate(tmpfs):
            self.mount(f"tmpfs-{index}", path, empty_dir=EmptyDirVolumeSourceArgs(medium="Memory"))
        for index, path in enumerate(spec.ephemeral):
            self.mount(f"ephemeral-{index}", path, empty_dir=EmptyDirVolumeSourceArgs())

    def env(self) -> list[EnvVarArgs]:
        plain = {**self.spec.env, **link_env(self.args.links)}
        return [EnvVarArgs(name=var, value=value) for var, value in sorted(plain.items())] + [
            EnvVarArgs(
                name=var,
                value_from=EnvVarSourceArgs(secret_key_ref=SecretKeySelectorArgs(name=self.args.secrets_name, key=key)),
            )
            for var, key in sorted(self.spec.secret_env.items())
        ]

    def container(self, **extra) -> ContainerArgs:
        spec = self.spec
        # Memory request = limit (never overcommitted); the CPU request is what the workload needs
        # at rest, far below its limit, so rollouts (surge pods) still fit a small node.
        limits = {"cpu": f"{round(spec.cpu * 1000)}m", "memory": f"{spec.memory_mb}Mi"}
        requests = {**limits, "cpu": f"{max(1, round(spec.cpu_request * 1000))}m"}
        return ContainerArgs(
            name=spec.name,
            image=self.args.image,
            command=list(spec.command) if spec.command is not None else None,
            args=list(spec.args) if spec.args is not None else None,
            working_dir=spec.working_dir,
            tty=spec.tty or None,
            stdin=spec.stdin_open or None,
            env=self.env(),
            resources=ResourceRequirementsArgs(requests=requests, limits=limits),
            security_context=SecurityContextArgs(
                allow_privilege_escalation=False,
                privileged=False,
                read_only_root_filesystem=spec.read_only,
                capabilities=CapabilitiesArgs(drop=["ALL"], add=list(spec.capabilities) or None),
            ),
            volume_mounts=self.mounts,
            **extra,
        )

    def template(self, labels: Mapping[str, str], pod: PodSpecArgs) -> PodTemplateSpecArgs:
        """The pod template, labelled with the networks it joins; its files' hash and its Secrets'
        revision roll the pods whenever a mounted file or a Secret they read changes."""
        annotations = {**self.spec.labels, **({FILES_HASH: files_hash(self.spec)} if self.spec.files else {})}
        if self.args.secrets_revision is not None:
            annotations[SECRETS_REVISION] = self.args.secrets_revision
        labels = {**labels, **{network_label(network): "true" for network in self.args.networks}}
        return PodTemplateSpecArgs(metadata=ObjectMetaArgs(labels=labels, annotations=annotations or None), spec=pod)

    def pod(self, container: ContainerArgs, low_ports: bool = False, pre_stop: int = 0, **extra) -> PodSpecArgs:
        """`pre_stop`: the seconds the container's preStop hook takes, which Kubernetes counts in the
        grace period and Compose's stop_grace_period (from the stop signal on) does not."""
        user, grace = self.spec.user, self.spec.stop_grace_period
        # The spec's sysctls win over the default one (as a `docker run --sysctl` does).
        sysctls = {**(UNPRIVILEGED_PORTS if low_ports else {}), **self.spec.sysctls}
        security = PodSecurityContextArgs(
            run_as_non_root=True if user else None,
            run_as_user=user[0] if user else None,
            run_as_group=user[1] if user else None,
            fs_group=user[1] if user else None,
            seccomp_profile=SeccompProfileArgs(type="RuntimeDefault"),
            sysctls=[SysctlArgs(name=name, value=value) for name, value in sysctls.items()] or None,
        )
        return PodSpecArgs(
            enable_service_links=False,
            image_pull_secrets=[{"name": secret} for secret in self.args.pull_secrets],
            security_context=security,
            host_aliases=self.host_aliases(),
            termination_grace_period_seconds=grace + pre_stop if grace is not None else None,
            share_process_namespace=True if self.spec.init else None,
            containers=[container],
            volumes=self.volumes,
            **extra,
        )

    def host_aliases(self) -> Optional[list[HostAliasArgs]]:
        """extra_hosts gives each name its addresses; hostAliases give each address its names."""
        names: dict[str, list[str]] = {}
        for host, addresses in self.spec.extra_hosts.items():
            for address in addresses:
                names.setdefault(address, []).append(host)
        return [HostAliasArgs(ip=address, hostnames=hosts) for address, hosts in names.items()] or None

    def unsupported(self) -> list[str]:
        """What the spec asks that Kubernetes has no field for, and what the cluster does instead."""
        spec = self.spec
        notes = []
        if spec.stop_signal not in (None, "SIGTERM"):
            notes.append(f"stopSignal {spec.stop_signal}: Kubernetes has no stop signal, the container gets SIGTERM")
        if spec.ulimits:
            notes.append(f"ulimits ({', '.join(spec.ulimits)}): Kubernetes sets none, the container runtime's apply")
        return notes


def _check_target(args: KubernetesWorkloadArgs, name: pulumi.Input[str]) -> KubernetesWorkload:
    """Where the readiness check finds the workload: the cluster the provider deploys to."""
    settings = args.settings
    return KubernetesWorkload(
        namespace=args.namespace,
        name=name,
        context=settings.context,
        kubeconfig=os.path.expanduser(settings.kubeconfig) if settings.kubeconfig else None,
    )


def _files_config_map(
    name: str, spec: WorkloadSpec, args: KubernetesWorkloadArgs, labels, opts
) -> Optional[pulumi.Output[str]]:
    if not spec.files:
        return None
    config_map = k8s.core.v1.ConfigMap(
        f"{name}-files",
        metadata=object_metadata(f"{spec.name}-files", args.namespace, labels),
        data={f"file-{i}": f.content for i, f in enumerate(spec.files)},
        opts=opts,
    )
    return config_map.metadata.name


class KubernetesService(pulumi.ComponentResource):
    """One service as a Deployment (+ Service, one more per alias, PVCs, ConfigMap). Outputs:
    `service_name` (None for a worker without ports), `url` (its first published port), `urls` (port
    name to URL)."""

    service_name: Optional[pulumi.Output[str]]
    url: pulumi.Output[Optional[str]]
    urls: pulumi.Output[dict]

    def __init__(self, name: str, args: KubernetesServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:KubernetesService", name, None, opts)
        spec = args.spec
        self._name, self._args = name, args
        self._labels = workload_labels(args.labels, spec)
        self._selector = pod_selector(args.labels, spec.name)

        pod = _PodBuilder(spec, args, _files_config_map(name, spec, args, self._labels, self._child()))
        self._claims(pod)
        main = spec.main_port
        container = pod.container(
            ports=[ContainerPortArgs(name=p.name, container_port=p.port, protocol=_protocol(p)) for p in spec.ports],
            readiness_probe=_readiness_probe(spec),
            liveness_probe=_liveness_probe(spec),
            # Let endpoints drop the pod before it stops taking requests.
            lifecycle=LifecycleArgs(pre_stop=LifecycleHandlerArgs(sleep=SleepActionArgs(seconds=PRE_STOP_SECONDS)))
            if main
            else None,
        )
        template = pod.template(
            self._labels,
            pod.pod(
                container, low_ports=any(p.port < 1024 for p in spec.ports), pre_stop=PRE_STOP_SECONDS if main else 0
            ),
        )
        self.deployment = deployment = self._deployment(template)
        self.autoscaler = self._autoscaler(spec.autoscale) if spec.autoscale else None
        # Every rollout (a new generation) is followed until its new pods are ready; a crash loop or
        # an image that cannot be pulled fails `up` at once, a service never ready after ready_timeout.
        RolloutCheck(
            f"{name}-ready",
            CheckArgs(
                name=spec.name,
                workload=_check_target(args, deployment.metadata.name),
                timeout=args.ready_timeout,
                revision=pulumi.Output.format("{0}/{1}", deployment.metadata.uid, deployment.metadata.generation),
            ),
            opts=self._child(),
        )

        self.service_name, urls = self._services() if spec.ports else (None, {})
        _warn(self, f"service {spec.name}", pod.unsupported() + self._unsupported())
        self.urls = pulumi.Output.from_input(urls)
        self.url = pulumi.Output.from_input(next(iter(urls.values()), None))
        self.register_outputs({"service_name": self.service_name, "url": self.url, "urls": self.urls})

    def _deployment(self, template: PodTemplateSpecArgs) -> k8s.apps.v1.Deployment:
        spec, args = self._args.spec, self._args
        # One RWO volume cannot be mounted by old and new pod at once: stateful services recreate.
        strategy = (
            DeploymentStrategyArgs(type="Recreate")
            if spec.stateful
            else DeploymentStrategyArgs(
                type="RollingUpdate", rolling_update=RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1)
            )
        )
        return k8s.apps.v1.Deployment(
            self._name,
            metadata=object_metadata(
                spec.name, args.namespace, self._labels, annotations={**spec.labels, **SKIP_AWAIT}
            ),
            spec=DeploymentSpecArgs(
                # An autoscaled Deployment leaves its replicas to the autoscaler: an `up` never scales it back.
                replicas=None if spec.autoscale else spec.replicas,
                selector=LabelSelectorArgs(match_labels=self._selector),
                strategy=strategy,
                template=template,
            ),
            # The selector is immutable and derived from names that never change, yet the provider
            # reports it as changed whenever the pod template does, which would replace (delete,
            # then create) the Deployment instead of rolling it.
            opts=self._child(spec.name, depends_on=list(args.after), ignore_changes=["spec.selector"]),
        )

    def _autoscaler(self, autoscale: AutoscaleSpec) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
        """`kubectl autoscale`: between the service's replicas and autoscale.max, by CPU and/or memory use."""
        spec, args = self._args.spec, self._args
        targets = (("cpu", autoscale.cpu_percent), ("memory", autoscale.memory_percent))
        return k8s.autoscaling.v2.HorizontalPodAutoscaler(
            self._name,
            metadata=object_metadata(spec.name, args.namespace, self._labels),
            spec=HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=self.deployment.metadata.name
                ),
                min_replicas=spec.replicas,
                max_replicas=autoscale.max_replicas,
                metrics=[
                    MetricSpecArgs(
                        type="Resource",
                        resource=ResourceMetricSourceArgs(
                            name=resource, target=MetricTargetArgs(type="Utilization", average_utilization=percent)
                        ),
                    )
                    for resource, percent in targets
                    if percent is not None
                ],
                behavior=HorizontalPodAutoscalerBehaviorArgs(
                    scale_down=HPAScalingRulesArgs(stabilization_window_seconds=autoscale.scale_down_seconds)
                )
                if autoscale.scale_down_seconds is not None
                else None,
            ),
            opts=self._child(),
        )

    def _child(self, first_release_name: Optional[str] = None, **extra) -> pulumi.ResourceOptions:
        aliases = first_release_aliases(self._args.first_release_app, first_release_name) if first_release_name else []
        return pulumi.ResourceOptions(parent=self, aliases=aliases, **extra)

    def _claims(self, pod: _PodBuilder) -> None:
        """A PVC per volume, mounted by the pod; the first release's `data` keeps its names."""
        spec, args = self._args.spec, self._args
        for volume in spec.volumes:
            claim = k8s.core.v1.PersistentVolumeClaim(
                f"{self._name}-{volume.name}",
                metadata=object_metadata(f"{spec.name}-{dns_label(volume.name)}", args.namespace, self._labels),
                spec=PersistentVolumeClaimSpecArgs(
                    access_modes=["ReadWriteOnce"],
                    resources=VolumeResourceRequirementsArgs(requests={"storage": volume.size}),
                    storage_class_name=args.settings.storage_class,
                ),
                opts=self._child(f"{spec.name}-{volume.name}"),
            )
            pod.mount(
                dns_label(volume.name, taken=[v.name for v in pod.volumes]),
                volume.path,
                read_only=volume.read_only,
                persistent_volume_claim=PersistentVolumeClaimVolumeSourceArgs(claim_name=claim.metadata.name),
            )

    def _services(self) -> tuple[pulumi.Output[str], dict]:
        """The Service of the pods' ports, one more per alias, and the published ports' NetworkPolicy;
        returns the Service's name and its published ports' URLs."""
        spec, settings = self._args.spec, self._args.settings
        service_type = settings.service_type if spec.published else "ClusterIP"
        ports = [_service_port(p, _service_port_number(p)) for p in spec.ports]
        service = self._service(self._name, spec.name, service_type, ports, self._child(spec.name))
        urls = {p.name: _url(service, index, settings) for index, p in enumerate(spec.ports) if p.publish is not None}
        # As a Compose network alias, an alias answers on the container's own ports, whatever is published.
        alias_ports = [_service_port(p, p.port) for p in spec.ports]
        for alias in spec.aliases:
            self._service(f"{self._name}-alias-{alias}", alias, "ClusterIP", alias_ports, self._child())
        self._open_published()
        return service.metadata.name, urls

    def _service(
        self,
        name: str,
        service_name: str,
        service_type: str,
        ports: list[ServicePortArgs],
        opts: pulumi.ResourceOptions,
    ) -> k8s.core.v1.Service:
        args = self._args
        # pulumi-kubernetes waits for ready endpoints and then 10 s for them to "settle" (its
        # await/service.go), which the rollout check already covers: only a load balancer's
        # address (the URL) is worth the provider's wait, bounded by ready_timeout.
        wait = {"pulumi.com/timeoutSeconds": str(args.ready_timeout)} if service_type == "LoadBalancer" else SKIP_AWAIT
        return k8s.core.v1.Service(
            name,
            metadata=object_metadata(
                service_name, args.namespace, self._labels, annotations={**args.spec.labels, **wait}
            ),
            spec=ServiceSpecArgs(type=service_type, selector=self._selector, ports=ports),
            opts=opts,
        )

    def _open_published(self) -> None:
        """The namespace (and each app network) takes connections from its own pods only: the published
        ports still take them from anywhere (NodePort, load balancer, other namespaces)."""
        spec, args = self._args.spec, self._args
        if not spec.published:
            return
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-published",
            metadata=object_metadata(f"published-{spec.name}", args.namespace, self._labels),
            spec=NetworkPolicySpecArgs(
                pod_selector=LabelSelectorArgs(match_labels=self._selector),
                policy_types=["Ingress"],
                ingress=[
                    NetworkPolicyIngressRuleArgs(
                        ports=[NetworkPolicyPortArgs(port=p.port, protocol=_protocol(p)) for p in spec.published]
                    )
                ],
            ),
            opts=self._child(),
        )

    def _unsupported(self) -> list[str]:
        spec = self._args.spec
        notes = []
        if spec.restart not in ("always", "unless-stopped"):
            notes.append(f"restart {spec.restart}: Kubernetes always restarts a Deployment's pods")
        if spec.aliases and not spec.ports:
            notes.append(f"aliases ({', '.join(spec.aliases)}): a service without ports has no Service to alias")
        return notes


def _warn(resource: pulumi.Resource, workload: str, notes: list[str]) -> None:
    if notes:
        pulumi.log.warn(f"{workload}: not on Kubernetes: " + "; ".join(notes), resource=resource)


def _service_port_number(port: PortSpec) -> int:
    """The published port, or the container's own for an unpublished one or any host port (a
    NodePort is picked anyway)."""
    return port.port if port.publish in (None, ANY_HOST_PORT) else port.publish


def _service_port(port: PortSpec, number: int) -> ServicePortArgs:
    return ServicePortArgs(name=port.name, port=number, target_port=port.port, protocol=_protocol(port))


def _readiness_probe(spec: ServiceSpec) -> Optional[ProbeArgs]:
    health = spec.health
    if health is None:
        return None
    return ProbeArgs(
        http_get=HTTPGetActionArgs(path=health.path, port=health.port) if health.path else None,
        exec_=ExecActionArgs(command=list(health.command)) if health.command else None,
        period_seconds=health.interval,
        timeout_seconds=health.timeout,
        failure_threshold=health.retries,
    )


def _liveness_probe(spec: ServiceSpec) -> Optional[ProbeArgs]:
    """Liveness only asks whether the process still listens on its first TCP port, so a failing
    dependency makes pods unready, not restarted. A worker without one (or with UDP ports only,
    which a probe cannot ask) is alive while its process runs."""
    port = next((p for p in spec.ports if p.protocol != "udp"), None)
    if port is None:
        return None
    return ProbeArgs(
        tcp_socket=TCPSocketActionArgs(port=port.port),
        period_seconds=10,
        timeout_seconds=3,
        failure_threshold=3,
        initial_delay_seconds=spec.health.start_period if spec.health else None,
    )


def _url(service: k8s.core.v1.Service, index: int, settings: KubernetesSettings) -> pulumi.Output[str]:
    port = service.spec.ports[index]
    if settings.service_type == "NodePort":
        return port.node_port.apply(lambda node_port: f"http://{settings.node_host}:{node_port}")
    if settings.service_type == "LoadBalancer":
        ingress = service.status.load_balancer.ingress[0]
        return pulumi.Output.all(ingress.ip, ingress.hostname, port.port).apply(
            lambda parts: f"http://{parts[0] or parts[1]}:{parts[2]}"
        )
    return pulumi.Output.concat("http://", service.spec.cluster_ip, ":", port.port.apply(str))


class KubernetesJob(pulumi.ComponentResource):
    """One task as a Job; depending on the job means waiting until it completed. Output: `job_name`."""

    job_name: pulumi.Output[str]

    def __init__(self, name: str, args: KubernetesJobArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:KubernetesJob", name, None, opts)
        spec = args.spec
        labels = workload_labels(args.labels, spec)
        child = pulumi.ResourceOptions(parent=self)
        pod = _PodBuilder(spec, args, _files_config_map(name, spec, args, labels, child))
        job = k8s.batch.v1.Job(
            name,
            # No fixed name: a changed job is a new Job (its pod template is immutable), created
            # before the old one is deleted.
            metadata=object_metadata(None, args.namespace, labels, annotations={**spec.labels, **SKIP_AWAIT}),
            spec=JobSpecArgs(
                backoff_limit=0,
                active_deadline_seconds=spec.timeout,
                template=pod.template(labels, pod.pod(pod.container(), restart_policy="Never")),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        JobCheck(
            f"{name}-completed",
            CheckArgs(
                name=spec.name,
                workload=_check_target(args, job.metadata.name),
                revision=job.metadata.uid,
                timeout=spec.timeout,
            ),
            opts=child,
        )
        _warn(self, f"job {spec.name}", pod.unsupported())
        self.job_name = job.metadata.name
        self.register_outputs({"job_name": self.job_name})
