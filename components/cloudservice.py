"""CloudService: the whole app on one target, composed from the other components.

Images are built (and pushed) once per content change, or taken as immutable references from
config (`images`, for rollback) or from another stack (`imagesFrom`, to promote what it built);
then the services run on the target the stack chose: local Docker or a Kubernetes cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from .config import StackConfig
from .docker_deployment import DockerDeployment, DockerDeploymentArgs
from .image import ContainerImage, ContainerImageArgs, digest_of
from .kubernetes_deployment import KubernetesDeployment, KubernetesDeploymentArgs
from .network import AppNetwork, AppNetworkArgs


@dataclass
class CloudServiceArgs:
    config: StackConfig


def _image_from_stack(stack: pulumi.StackReference, name: str, service: str) -> pulumi.Output[str]:
    def pick(images):
        if not images or service not in images:
            raise ValueError(f"imagesFrom: stack {name} exports no image for service {service!r}")
        return images[service]

    return stack.require_output("images").apply(pick)


class CloudService(pulumi.ComponentResource):
    """Outputs: images (service to immutable reference), digests, urls, url, and per target the
    Docker network or the Kubernetes namespace and services."""

    images: pulumi.Output[dict]
    digests: pulumi.Output[dict]
    urls: pulumi.Output[dict]
    url: pulumi.Output[Optional[str]]
    network: Optional[pulumi.Output[str]] = None
    namespace: Optional[pulumi.Output[str]] = None
    services: Optional[pulumi.Output[dict]] = None

    def __init__(self, name: str, args: CloudServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:CloudService", name, None, opts)
        config = args.config
        on_docker = config.target == "docker"
        source_stack = pulumi.StackReference(config.images_from, opts=pulumi.ResourceOptions(parent=self)) \
            if config.images_from else None
        references = {}
        for service in config.services:
            references[service.name] = config.pinned_images.get(service.name) or service.image
            if references[service.name] is None and source_stack is not None:
                references[service.name] = _image_from_stack(source_stack, config.images_from, service.name)

        # The Docker engine is needed to build, or to run on the docker target; a cluster stack that
        # deploys images built elsewhere (prod) needs none.
        with_docker = None
        if on_docker or None in references.values():
            registry_auth = [
                docker.ProviderRegistryAuthArgs(
                    address=config.registry.url, username=config.registry.username, password=config.registry.password
                )
            ] if config.registry else None
            docker_provider = docker.Provider(
                "docker", host=config.docker_host, registry_auth=registry_auth, opts=pulumi.ResourceOptions(parent=self)
            )
            with_docker = pulumi.ResourceOptions(parent=self, provider=docker_provider)

        # What each service runs (deploy_refs), and the immutable references and digests exported.
        deploy_refs, releases, exported, digests = {}, {}, {}, {}
        for service in config.services:
            reference = references[service.name]
            if reference is not None and not on_docker:  # the cluster pulls it: nothing to build or pull here
                deploy_refs[service.name] = exported[service.name] = reference
                digests[service.name] = digest_of(reference)
                continue
            image = ContainerImage(
                service.name,
                ContainerImageArgs(
                    repository=f"{config.image_repository}/{service.name}",
                    build=service.build if reference is None else None,
                    reference=reference,
                    push=config.push,
                    pull=on_docker,
                    labels=config.labels,
                ),
                opts=with_docker,
            )
            deploy_refs[service.name] = image.deploy_ref
            releases[service.name] = image.release
            exported[service.name] = pulumi.Output.all(image.registry_ref, image.reference).apply(lambda refs: refs[0] or refs[1])
            digests[service.name] = image.digest
        self.images = pulumi.Output.from_input(exported)
        self.digests = pulumi.Output.from_input(digests)

        if on_docker:
            network = AppNetwork("network", AppNetworkArgs(name=config.name_prefix, labels=config.labels), opts=with_docker)
            deployment = DockerDeployment(
                "docker", DockerDeploymentArgs(config=config, network=network.name, images=deploy_refs, releases=releases), opts=with_docker
            )
            self.network = network.name
        else:
            settings = config.kubernetes
            cluster = k8s.Provider(
                "kubernetes",
                kubeconfig=os.path.expanduser(settings.kubeconfig) if settings.kubeconfig else None,
                context=settings.context,
                opts=pulumi.ResourceOptions(parent=self),
            )
            deployment = KubernetesDeployment(
                "kubernetes", KubernetesDeploymentArgs(config=config, images=deploy_refs),
                opts=pulumi.ResourceOptions(parent=self, provider=cluster),
            )
            self.namespace = deployment.namespace
            self.services = deployment.services
        self.urls = deployment.urls
        self.url = deployment.urls.apply(lambda urls: next(iter(urls.values()), None))

        self.register_outputs({
            "images": self.images, "digests": self.digests, "urls": self.urls, "url": self.url,
            "network": self.network, "namespace": self.namespace, "services": self.services,
        })
