"""DockerDeployment: `docker run` for every service of the app, declared.

Each service becomes one container on the app network, reachable by its service name (a DNS
alias), hardened (non-root, read-only root, no capabilities, no-new-privileges, CPU and memory
limits), restarted by the engine, and health-checked. A service with a volume keeps its state in
a named volume that outlives container replacements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_docker as docker

from .config import StackConfig
from .network import docker_labels
from .workload import http_check_command, link_env, service_labels


@dataclass
class DockerDeploymentArgs:
    config: StackConfig
    network: pulumi.Input[str]
    images: Mapping[str, pulumi.Input[str]]
    """Image to run for each service (a local image ID or an immutable reference)."""
    releases: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    """What each service's container waits for before it (re)starts: the image's push."""


class DockerDeployment(pulumi.ComponentResource):
    """Outputs `urls`: service name to http://127.0.0.1:<host port>, for published services."""

    urls: pulumi.Output[dict]

    def __init__(self, name: str, args: DockerDeploymentArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:DockerDeployment", name, None, opts)
        config = args.config
        containers: dict[str, docker.Container] = {}
        urls = {}
        for service in config.services:  # ordered so that linked services come first
            labels = service_labels(config.labels, service)
            container_name = f"{config.name_prefix}-{service.name}"
            volumes = []
            if service.volume is not None:
                volume = docker.Volume(
                    f"{service.name}-data",
                    name=f"{container_name}-data",
                    labels=docker_labels(labels, docker.VolumeLabelArgs),
                    opts=pulumi.ResourceOptions(parent=self),
                )
                volumes.append(docker.ContainerVolumeArgs(volume_name=volume.name, container_path=service.volume.path))

            env = {
                **service.env,
                **link_env(config, service),
                **{var: config.secrets[key] for var, key in service.secret_env.items()},
            }
            ports = []
            if service.publish is not None:
                host_port = service.publish + config.port_offset
                ports.append(docker.ContainerPortArgs(internal=service.port, external=host_port, ip="127.0.0.1"))
                urls[service.name] = f"http://127.0.0.1:{host_port}"

            healthcheck = None
            if service.health_path or service.health_command:
                tests = http_check_command(service) if service.health_path else ["CMD", *service.health_command]
                healthcheck = docker.ContainerHealthcheckArgs(
                    tests=tests, interval="2s", timeout="3s", retries=3, start_period="2s"
                )

            release = [args.releases[service.name]] if service.name in args.releases else []
            containers[service.name] = docker.Container(
                service.name,
                name=container_name,
                image=args.images[service.name],
                hostname=service.name,
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network, aliases=[service.name])],
                ports=ports,
                envs=[pulumi.Output.concat(k, "=", v) for k, v in sorted(env.items())],
                labels=docker_labels(labels, docker.ContainerLabelArgs),
                restart="unless-stopped",
                healthcheck=healthcheck,
                # `up` returns once the service reports healthy, like `docker run` + waiting by hand.
                wait=healthcheck is not None,
                wait_timeout=90,
                user=f"{service.user}:{service.user}",
                read_only=service.read_only,
                tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"} if service.read_only else None,
                capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
                security_opts=["no-new-privileges:true"],
                memory=service.memory_mb,
                # Equal to memory: no swap on top of the limit (and no drift: the engine reports it).
                memory_swap=service.memory_mb,
                cpus=str(service.cpu),
                volumes=volumes,
                destroy_grace_seconds=10,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[containers[link] for link in service.links] + release,
                    # A fixed container name and host port cannot exist twice: replace in place.
                    delete_before_replace=True,
                ),
            )

        self.urls = pulumi.Output.from_input(urls)
        self.register_outputs({"urls": self.urls})
