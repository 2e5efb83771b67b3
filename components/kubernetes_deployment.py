"""KubernetesDeployment: the same services as a Deployment + Service each, in a namespace.

Pods run images by digest (every new image rolls out; a rollback is a config change), roll
without downtime (readiness-gated RollingUpdate, maxUnavailable 0), are hardened (non-root,
read-only root, no capabilities, no privilege escalation, requests and limits) and pull from a
private registry through an imagePullSecret. A service with a volume keeps its state in a PVC.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from .config import ServiceSpec, StackConfig
from .workload import SERVICE_LABEL, link_env, service_labels

APP_SECRETS = "app-secrets"
PULL_SECRET = "registry-credentials"


@dataclass
class KubernetesDeploymentArgs:
    config: StackConfig
    images: Mapping[str, pulumi.Input[str]]
    """Immutable image reference (repo@sha256:...) for each service."""


def _dockerconfigjson(server: str, username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": token}}})


def _probe(service: ServiceSpec) -> Optional[dict]:
    if service.health_path:
        return {"httpGet": {"path": service.health_path, "port": service.port}}
    if service.health_command:
        return {"exec": {"command": list(service.health_command)}}
    return None


class KubernetesDeployment(pulumi.ComponentResource):
    """Outputs: `namespace`, `services` (service name to Service name), `urls` (published services)."""

    namespace: pulumi.Output[str]
    services: pulumi.Output[dict]
    urls: pulumi.Output[dict]

    def __init__(self, name: str, args: KubernetesDeploymentArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:KubernetesDeployment", name, None, opts)
        config = args.config
        settings = config.kubernetes
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            "namespace", metadata={"name": settings.namespace, "labels": config.labels}, opts=child
        )
        ns = namespace.metadata.name
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])

        pull_secrets = []
        if config.registry is not None:
            registry = config.registry
            pull_secret = k8s.core.v1.Secret(
                PULL_SECRET,
                metadata={"name": PULL_SECRET, "namespace": ns, "labels": config.labels},
                type="kubernetes.io/dockerconfigjson",
                string_data={
                    ".dockerconfigjson": pulumi.Output.secret(registry.password).apply(
                        lambda password: _dockerconfigjson(registry.server, registry.username, password)
                    )
                },
                opts=in_namespace,
            )
            pull_secrets = [{"name": pull_secret.metadata.name}]

        used_secrets = sorted({key for service in config.services for key in service.secret_env.values()})
        if used_secrets:
            # Pods reference it by name: the Deployments depend on it explicitly.
            app_secret = k8s.core.v1.Secret(
                APP_SECRETS,
                metadata={"name": APP_SECRETS, "namespace": ns, "labels": config.labels},
                string_data={key: config.secrets[key] for key in used_secrets},
                opts=in_namespace,
            )
            in_namespace = pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(depends_on=[app_secret]))

        services: dict[str, k8s.core.v1.Service] = {}
        urls = {}
        for service in config.services:  # ordered so that linked services come first
            labels = service_labels(config.labels, service)
            selector = {SERVICE_LABEL: service.name, "cloudservice.dev/stack": config.stack}
            volumes, mounts = [], []
            if service.read_only:
                volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}})
                mounts.append({"name": "tmp", "mountPath": "/tmp"})
            if service.volume is not None:
                claim = k8s.core.v1.PersistentVolumeClaim(
                    f"{service.name}-data",
                    metadata={"name": f"{service.name}-data", "namespace": ns, "labels": labels},
                    spec={
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": service.volume.size}},
                        "storageClassName": settings.storage_class,
                    },
                    opts=in_namespace,
                )
                volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim.metadata.name}})
                mounts.append({"name": "data", "mountPath": service.volume.path})

            env = [
                {"name": var, "value": value}
                for var, value in sorted({
                    **service.env,
                    # By name (cluster DNS), not by ClusterIP: no wait on the linked Service, so the
                    # services start side by side and readiness gates the traffic.
                    **link_env(config, service),
                }.items())
            ] + [
                {"name": var, "valueFrom": {"secretKeyRef": {"name": APP_SECRETS, "key": key}}}
                for var, key in sorted(service.secret_env.items())
            ]
            # Memory request = limit (never overcommitted); the CPU request is what the service needs
            # at rest, far below its limit, so rollouts (surge pods) still fit a small node.
            limits = {"cpu": f"{round(service.cpu * 1000)}m", "memory": f"{service.memory_mb}Mi"}
            requests = {**limits, "cpu": f"{max(1, round(service.cpu_request * 1000))}m"}
            k8s.apps.v1.Deployment(
                service.name,
                metadata={"name": service.name, "namespace": ns, "labels": labels},
                spec={
                    "replicas": service.replicas,
                    "selector": {"matchLabels": selector},
                    # One RWO volume cannot be mounted by old and new pod at once: stateful services recreate.
                    "strategy": {"type": "Recreate"} if service.stateful else {
                        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                    },
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "enableServiceLinks": False,
                            "imagePullSecrets": pull_secrets,
                            "securityContext": {
                                "runAsNonRoot": True, "runAsUser": service.user, "runAsGroup": service.user,
                                "fsGroup": service.user, "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [{
                                "name": service.name,
                                "image": args.images[service.name],
                                "ports": [{"containerPort": service.port}],
                                "env": env,
                                # A busy node answers slowly: timeouts generous enough that load alone
                                # never takes every replica out of the Service at once.
                                "readinessProbe": _probe(service) and {
                                    **_probe(service), "periodSeconds": 2, "timeoutSeconds": 3, "failureThreshold": 3,
                                },
                                # Liveness only asks whether the process still listens, so a failing
                                # dependency makes pods unready, not restarted.
                                "livenessProbe": {
                                    "tcpSocket": {"port": service.port}, "periodSeconds": 10, "timeoutSeconds": 3,
                                    "failureThreshold": 3,
                                },
                                # Let endpoints drop the pod before it stops taking requests.
                                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                                "resources": {"requests": requests, "limits": limits},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False, "privileged": False,
                                    "readOnlyRootFilesystem": service.read_only,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": mounts,
                            }],
                            "volumes": volumes,
                        },
                    },
                },
                # The selector is immutable and derived from names that never change, yet the
                # provider reports it as changed whenever the pod template does, which would
                # replace (delete, then create) the Deployment instead of rolling it.
                opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(ignore_changes=["spec.selector"])),
            )
            published = service.publish is not None
            services[service.name] = k8s.core.v1.Service(
                service.name,
                metadata={"name": service.name, "namespace": ns, "labels": labels},
                spec={
                    "type": settings.service_type if published else "ClusterIP",
                    "selector": selector,
                    "ports": [{"name": "main", "port": service.publish or service.port, "targetPort": service.port}],
                },
                opts=in_namespace,
            )
            if published:
                urls[service.name] = self._url(services[service.name], settings.service_type, settings.node_host)

        self.namespace = ns
        self.services = pulumi.Output.from_input({name: svc.metadata.name for name, svc in services.items()})
        self.urls = pulumi.Output.from_input(urls)
        self.register_outputs({"namespace": self.namespace, "services": self.services, "urls": self.urls})

    @staticmethod
    def _url(service: k8s.core.v1.Service, service_type: str, node_host: str) -> pulumi.Output[str]:
        if service_type == "NodePort":
            return service.spec.ports[0].node_port.apply(lambda port: f"http://{node_host}:{port}")
        if service_type == "LoadBalancer":
            ingress = service.status.load_balancer.ingress[0]
            return pulumi.Output.all(ingress.ip, ingress.hostname, service.spec.ports[0].port).apply(
                lambda parts: f"http://{parts[0] or parts[1]}:{parts[2]}"
            )
        return pulumi.Output.concat("http://", service.spec.cluster_ip, ":", service.spec.ports[0].port.apply(str))
