"""AppNamespace, KubernetesService and KubernetesJob: the app on a cluster.

AppNamespace holds what the app's workloads share: the namespace, the imagePullSecret of the
private registry and one Secret with the secret config values they use. A service is a Deployment
(+ a Service when it has ports, + a PVC for its volume, + a ConfigMap for its files); a job is a
Job run to completion before its dependants. Pods run images by digest, roll without downtime
(readiness-gated RollingUpdate, maxUnavailable 0) and are hardened like the Docker containers.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.core.v1 import (
    CapabilitiesArgs, ConfigMapVolumeSourceArgs, ContainerArgs, ContainerPortArgs, EmptyDirVolumeSourceArgs, EnvVarArgs,
    EnvVarSourceArgs, ExecActionArgs, HTTPGetActionArgs, KeyToPathArgs, LifecycleArgs, LifecycleHandlerArgs, PersistentVolumeClaimVolumeSourceArgs,
    PodSecurityContextArgs, PodSpecArgs, PodTemplateSpecArgs, ProbeArgs, ResourceRequirementsArgs, SeccompProfileArgs, SecretKeySelectorArgs,
    SecretVolumeSourceArgs, SecurityContextArgs, SleepActionArgs, SysctlArgs, TCPSocketActionArgs, VolumeArgs,
    VolumeMountArgs,
)
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from .readiness import CheckArgs, JobCheck, KubernetesWorkload, RolloutCheck
from .spec import JobSpec, KubernetesSettings, ServiceSpec, WorkloadSpec
from .workload import FILES_HASH, SERVICE_LABEL, WorkloadArgs, files_hash, first_release_alias, link_env, workload_labels

FIRST_RELEASE_PARENT = ("kubernetes", "cloudservice:index:KubernetesDeployment")
APP_SECRETS = "app-secrets"
PULL_SECRET = "registry-credentials"
SECRETS_REVISION = "cloudservice.dev/secrets-revision"
# Kubernetes, unlike Docker, keeps ports below 1024 for root: this namespaced sysctl (one of the
# "safe" ones every cluster allows) lets the non-root user bind them, as on Docker.
UNPRIVILEGED_PORTS = SysctlArgs(name="net.ipv4.ip_unprivileged_port_start", value="0")
# The provider's own wait would report a crash loop only after its timeout, without logs, and keep
# `up` running meanwhile: the workloads' readiness checks (components/readiness.py) wait instead.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


# Every object takes over, on apply, the fields it declares that another Server-Side Apply field
# manager owns: the stack is their source of truth. The provider names a manager per create, so an
# object adopted after an interrupted run (pulumi import) would otherwise refuse the next change of
# every field its first manager still owns. (The manager keeps the provider's name: a new one on the
# objects of an earlier release fails their update with "spec.selector: Required value".)
SERVER_SIDE_APPLY = {"pulumi.com/patchForce": "true"}


def _metadata(name: Optional[str], namespace: Optional[pulumi.Input[str]], labels: Mapping[str, str],
              annotations: Optional[Mapping[str, str]] = None) -> ObjectMetaArgs:
    return ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels), annotations={**SERVER_SIDE_APPLY, **(annotations or {})})


def _dockerconfigjson(server: str, username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": token}}})


def _aliases(first_release_app: Optional[pulumi.Resource], first_release_name: str) -> list:
    return [first_release_alias(first_release_app, *FIRST_RELEASE_PARENT, first_release_name)] if first_release_app else []


@dataclass(kw_only=True)
class PullCredentials:
    server: str
    username: str
    password: pulumi.Input[str]


@dataclass(kw_only=True)
class AppNamespaceArgs:
    namespace: str
    labels: Mapping[str, str]
    registry: Optional[PullCredentials] = None
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Secret config key -> value, for every key a workload uses."""
    first_release_app: Optional[pulumi.Resource] = None
    """The app whose resources the first release declared in one KubernetesDeployment: they keep their URNs."""


class AppNamespace(pulumi.ComponentResource):
    """Outputs: `name`, `pull_secrets` (names for imagePullSecrets), `secrets_name` (or None);
    `secrets_revision()` tells the workloads when a Secret they read was changed."""

    name: pulumi.Output[str]
    pull_secrets: list
    secrets_name: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: AppNamespaceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:AppNamespace", name, None, opts)
        app = args.first_release_app
        namespace = k8s.core.v1.Namespace(
            name, metadata=_metadata(args.namespace, None, args.labels),
            opts=pulumi.ResourceOptions(parent=self, aliases=_aliases(app, "namespace")),
        )
        self.name = namespace.metadata.name

        def in_namespace(first_release_name: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[namespace], aliases=_aliases(app, first_release_name))

        self.pull_secrets = []
        # The provider replaces a Secret whose data changes (a new UID), but running pods keep what
        # they read at start: the UIDs go into the pod templates, which then roll.
        self._pull_secret_uids: list[pulumi.Output[str]] = []
        self._secrets_uid: Optional[pulumi.Output[str]] = None
        if args.registry is not None:
            registry = args.registry
            pull_secret = k8s.core.v1.Secret(
                f"{name}-{PULL_SECRET}",
                metadata=_metadata(PULL_SECRET, self.name, args.labels),
                type="kubernetes.io/dockerconfigjson",
                string_data={
                    ".dockerconfigjson": pulumi.Output.secret(registry.password).apply(
                        lambda password: _dockerconfigjson(registry.server, registry.username, password)
                    )
                },
                opts=in_namespace(PULL_SECRET),
            )
            self.pull_secrets = [pull_secret.metadata.name]
            self._pull_secret_uids = [pull_secret.metadata.uid]

        self.secrets_name = None
        if args.secrets:
            app_secrets = k8s.core.v1.Secret(
                f"{name}-{APP_SECRETS}",
                metadata=_metadata(APP_SECRETS, self.name, args.labels),
                string_data=dict(args.secrets),
                opts=in_namespace(APP_SECRETS),
            )
            self.secrets_name = app_secrets.metadata.name
            self._secrets_uid = app_secrets.metadata.uid
        self.register_outputs({"name": self.name, "pull_secrets": self.pull_secrets, "secrets_name": self.secrets_name})

    def secrets_revision(self, reads_app_secrets: bool) -> Optional[pulumi.Output[str]]:
        """Changes whenever a Secret that a workload's pods read (to pull, and `secrets_name` when it
        reads it) is replaced; None when they read none."""
        uids = [*self._pull_secret_uids, *([self._secrets_uid] if reads_app_secrets and self._secrets_uid else [])]
        # A preview of a new Secret has no UID yet (None): the pods are new too.
        return pulumi.Output.all(*uids).apply(lambda known: ",".join(uid or "" for uid in known)) if uids else None


@dataclass(kw_only=True)
class KubernetesWorkloadArgs(WorkloadArgs):
    namespace: pulumi.Input[str]
    pull_secrets: Sequence[pulumi.Input[str]] = ()
    secrets_name: Optional[pulumi.Input[str]] = None
    """The Secret holding the secret config values the workload uses."""
    secrets_revision: Optional[pulumi.Input[str]] = None
    """Changes when a Secret the pods read changes (AppNamespace.secrets_revision): rolls them."""
    settings: KubernetesSettings


@dataclass(kw_only=True)
class KubernetesServiceArgs(KubernetesWorkloadArgs):
    spec: ServiceSpec
    ready_timeout: int = 60


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
            self.volumes.append(VolumeArgs(name="tmp", empty_dir=EmptyDirVolumeSourceArgs(size_limit="16Mi")))
            self.mounts.append(VolumeMountArgs(name="tmp", mount_path="/tmp"))
        if spec.files:
            items = [KeyToPathArgs(key=f"file-{i}", path=f"file-{i}") for i in range(len(spec.files))]
            self.volumes.append(VolumeArgs(name="files", config_map=ConfigMapVolumeSourceArgs(name=files_config_map, items=items)))
            self.mounts += [
                VolumeMountArgs(name="files", mount_path=f.path, sub_path=f"file-{i}", read_only=True)
                for i, f in enumerate(spec.files)
            ]
        if spec.secret_files:
            items = [KeyToPathArgs(key=key, path=key) for key in sorted({f.key for f in spec.secret_files})]
            self.volumes.append(VolumeArgs(
                name="secret-files", secret=SecretVolumeSourceArgs(secret_name=args.secrets_name, items=items, default_mode=0o440),
            ))
            self.mounts += [
                VolumeMountArgs(name="secret-files", mount_path=f.path, sub_path=f.key, read_only=True) for f in spec.secret_files
            ]

    def env(self) -> list[EnvVarArgs]:
        plain = {**self.spec.env, **link_env(self.args.links)}
        return [EnvVarArgs(name=var, value=value) for var, value in sorted(plain.items())] + [
            EnvVarArgs(name=var, value_from=EnvVarSourceArgs(secret_key_ref=SecretKeySelectorArgs(name=self.args.secrets_name, key=key)))
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
            env=self.env(),
            resources=ResourceRequirementsArgs(requests=requests, limits=limits),
            security_context=SecurityContextArgs(
                allow_privilege_escalation=False, privileged=False, read_only_root_filesystem=spec.read_only,
                capabilities=CapabilitiesArgs(drop=["ALL"], add=list(spec.capabilities) or None),
            ),
            volume_mounts=self.mounts,
            **extra,
        )

    def template(self, labels: Mapping[str, str], pod: PodSpecArgs) -> PodTemplateSpecArgs:
        """The pod template; its files' hash and its Secrets' revision roll the pods whenever a mounted
        file or a Secret they read changes."""
        annotations = {FILES_HASH: files_hash(self.spec)} if self.spec.files else {}
        if self.args.secrets_revision is not None:
            annotations[SECRETS_REVISION] = self.args.secrets_revision
        return PodTemplateSpecArgs(metadata=ObjectMetaArgs(labels=labels, annotations=annotations or None), spec=pod)

    def pod(self, container: ContainerArgs, low_ports: bool = False, **extra) -> PodSpecArgs:
        user = self.spec.user
        security = PodSecurityContextArgs(
            run_as_non_root=True if user else None,
            run_as_user=user[0] if user else None,
            run_as_group=user[1] if user else None,
            fs_group=user[1] if user else None,
            seccomp_profile=SeccompProfileArgs(type="RuntimeDefault"),
            sysctls=[UNPRIVILEGED_PORTS] if low_ports else None,
        )
        return PodSpecArgs(
            enable_service_links=False,
            image_pull_secrets=[{"name": secret} for secret in self.args.pull_secrets],
            security_context=security,
            containers=[container],
            volumes=self.volumes,
            **extra,
        )


def _check_target(args: KubernetesWorkloadArgs, name: pulumi.Input[str]) -> KubernetesWorkload:
    """Where the readiness check finds the workload: the cluster the provider deploys to."""
    settings = args.settings
    return KubernetesWorkload(
        namespace=args.namespace, name=name, context=settings.context,
        kubeconfig=os.path.expanduser(settings.kubeconfig) if settings.kubeconfig else None,
    )


def _files_config_map(name: str, spec: WorkloadSpec, args: KubernetesWorkloadArgs, labels, opts) -> Optional[pulumi.Output[str]]:
    if not spec.files:
        return None
    config_map = k8s.core.v1.ConfigMap(
        f"{name}-files",
        metadata=_metadata(f"{spec.name}-files", args.namespace, labels),
        data={f"file-{i}": f.content for i, f in enumerate(spec.files)},
        opts=opts,
    )
    return config_map.metadata.name


class KubernetesService(pulumi.ComponentResource):
    """One service as a Deployment (+ Service, PVC, ConfigMap). Outputs: `service_name` (None for a
    worker without ports), `url` (its first published port), `urls` (port name to URL)."""

    service_name: Optional[pulumi.Output[str]]
    url: pulumi.Output[Optional[str]]
    urls: pulumi.Output[dict]

    def __init__(self, name: str, args: KubernetesServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:KubernetesService", name, None, opts)
        spec, settings = args.spec, args.settings
        app = args.first_release_app
        labels = workload_labels(args.labels, spec)
        selector = {SERVICE_LABEL: spec.name, "cloudservice.dev/stack": args.labels["cloudservice.dev/stack"]}

        def child(first_release_name: Optional[str] = None, **extra) -> pulumi.ResourceOptions:
            aliases = _aliases(app, first_release_name) if first_release_name else []
            return pulumi.ResourceOptions(parent=self, aliases=aliases, **extra)

        pod = _PodBuilder(spec, args, _files_config_map(name, spec, args, labels, child()))
        for volume in spec.volumes:
            claim = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-{volume.name}",
                metadata=_metadata(f"{spec.name}-{volume.name}", args.namespace, labels),
                spec={
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": volume.size}},
                    "storageClassName": settings.storage_class,
                },
                opts=child(f"{spec.name}-{volume.name}"),
            )
            pod.volumes.append(VolumeArgs(
                name=volume.name, persistent_volume_claim=PersistentVolumeClaimVolumeSourceArgs(claim_name=claim.metadata.name),
            ))
            pod.mounts.append(VolumeMountArgs(name=volume.name, mount_path=volume.path, read_only=volume.read_only or None))

        main = spec.main_port
        health = spec.health
        probe = None
        if health is not None:
            probe = ProbeArgs(
                http_get=HTTPGetActionArgs(path=health.path, port=health.port) if health.path else None,
                exec_=ExecActionArgs(command=list(health.command)) if health.command else None,
                period_seconds=health.interval, timeout_seconds=health.timeout, failure_threshold=health.retries,
            )
        container = pod.container(
            ports=[ContainerPortArgs(name=p.name, container_port=p.port) for p in spec.ports],
            readiness_probe=probe,
            # Liveness only asks whether the process still listens, so a failing dependency makes
            # pods unready, not restarted. A worker without ports is alive while its process runs.
            liveness_probe=ProbeArgs(
                tcp_socket=TCPSocketActionArgs(port=main.port), period_seconds=10, timeout_seconds=3, failure_threshold=3,
                initial_delay_seconds=health.start_period if health else None,
            ) if main else None,
            # Let endpoints drop the pod before it stops taking requests.
            lifecycle=LifecycleArgs(pre_stop=LifecycleHandlerArgs(sleep=SleepActionArgs(seconds=5))) if main else None,
        )
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=_metadata(spec.name, args.namespace, labels, annotations=SKIP_AWAIT),
            spec={
                "replicas": spec.replicas,
                "selector": {"matchLabels": selector},
                # One RWO volume cannot be mounted by old and new pod at once: stateful services recreate.
                "strategy": {"type": "Recreate"} if spec.stateful else {
                    "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": pod.template(labels, pod.pod(container, low_ports=any(p.port < 1024 for p in spec.ports))),
            },
            # The selector is immutable and derived from names that never change, yet the provider
            # reports it as changed whenever the pod template does, which would replace (delete,
            # then create) the Deployment instead of rolling it.
            opts=child(spec.name, depends_on=list(args.after), ignore_changes=["spec.selector"]),
        )
        # Every rollout (a new generation) is followed until its new pods are ready; a crash loop or
        # an image that cannot be pulled fails `up` at once, a service never ready after ready_timeout.
        RolloutCheck(f"{name}-ready", CheckArgs(
            name=spec.name, workload=_check_target(args, deployment.metadata.name), timeout=args.ready_timeout,
            revision=pulumi.Output.format("{0}/{1}", deployment.metadata.uid, deployment.metadata.generation),
        ), opts=child())

        self.service_name, urls = None, {}
        if spec.ports:
            published = spec.published
            service_type = settings.service_type if published else "ClusterIP"
            # pulumi-kubernetes waits for ready endpoints and then 10 s for them to "settle" (its
            # await/service.go), which the rollout check already covers: only a load balancer's
            # address (the URL) is worth the provider's wait, bounded by ready_timeout.
            service_annotations = {"pulumi.com/timeoutSeconds": str(args.ready_timeout)} \
                if service_type == "LoadBalancer" else SKIP_AWAIT
            service = k8s.core.v1.Service(
                name,
                metadata=_metadata(spec.name, args.namespace, labels, annotations=service_annotations),
                spec={
                    "type": service_type,
                    "selector": selector,
                    "ports": [{"name": p.name, "port": p.publish or p.port, "targetPort": p.port} for p in spec.ports],
                },
                opts=child(spec.name),
            )
            self.service_name = service.metadata.name
            for index, port in enumerate(spec.ports):
                if port.publish is not None:
                    urls[port.name] = _url(service, index, settings)
        self.urls = pulumi.Output.from_input(urls)
        self.url = pulumi.Output.from_input(next(iter(urls.values()), None))
        self.register_outputs({"service_name": self.service_name, "url": self.url, "urls": self.urls})


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
            metadata=_metadata(None, args.namespace, labels, annotations=SKIP_AWAIT),
            spec={
                "backoffLimit": 0,
                "activeDeadlineSeconds": spec.timeout,
                "template": pod.template(labels, pod.pod(pod.container(), restart_policy="Never")),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        JobCheck(f"{name}-completed", CheckArgs(
            name=spec.name, workload=_check_target(args, job.metadata.name), revision=job.metadata.uid, timeout=spec.timeout,
        ), opts=child)
        self.job_name = job.metadata.name
        self.register_outputs({"job_name": self.job_name})
