"""CloudService: a whole app on one target, composed of one component per workload.

Images are built (and pushed) once per content change, or taken as immutable references from
config (`images`, for rollback) or from another stack (`imagesFrom`, to promote what it built);
then each service and job runs on the target the stack chose: local Docker or a Kubernetes cluster.
Jobs finish before the services that depend on them (re)start.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, TypedDict

import pulumi
import pulumi_docker as docker

from .config import StackConfig
from .conventions import DEFAULT_NETWORK, DEFAULT_READY_TIMEOUT
from .docker_router import ROUTER_IMAGE, Backend, Certificate, DockerRouter, DockerRouterArgs
from .docker_service import DockerJob, DockerJobArgs, DockerService, DockerServiceArgs
from .image import ContainerImage, ContainerImageArgs, Engine, StandIn, base_images, digest_of
from .network import AppNetwork, AppNetworkArgs
from .pod_security import pod_security_level
from .routes import route_urls
from .spec import (
    AppSpec,
    DockerSettings,
    ImageSources,
    JobSpec,
    KubernetesSettings,
    NetworkSpec,
    TargetSettings,
    WorkloadSpec,
)
from .upgrades import app_child, is_first_release_app
from .workload import Endpoint, endpoint

COMPONENT_TYPE = "cloudservice:index:CloudService"


@dataclass(kw_only=True)
class CloudServiceArgs:
    app: AppSpec
    images: ImageSources
    target: TargetSettings
    """DockerSettings or KubernetesSettings: where the workloads run."""
    labels: Mapping[str, str]
    """Put on every engine and cluster object; STACK_LABEL identifies the stack."""
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    ready_timeout: int = DEFAULT_READY_TIMEOUT

    @classmethod
    def of(cls, config: StackConfig, target: Optional[TargetSettings] = None) -> CloudServiceArgs:
        """What the stack's config gives the app; `target` puts it somewhere else (a second app)."""
        return cls(
            app=config.app,
            images=config.images,
            target=target or config.target_settings,
            labels=config.labels,
            secrets=config.secrets,
            ready_timeout=config.ready_timeout,
        )


def _image_from_stack(stack: pulumi.StackReference, name: str, service: str) -> pulumi.Output[str]:
    def pick(images):
        if not images or service not in images:
            raise ValueError(f"imagesFrom: stack {name} exports no image for service {service!r}")
        return images[service]

    return stack.require_output("images").apply(pick)


def _joined_networks(app: AppSpec) -> list[str]:
    """The app networks some workload joins, in order (a workload that names none joins the default one)."""
    return list(dict.fromkeys(name for workload in app.workloads for name in workload.joined_networks))


class SharedWorkloadArgs(TypedDict):
    """The fields of WorkloadArgs that every workload gets alike, on either target (CloudService._common)."""

    first_release_app: Optional[pulumi.Resource]
    image: pulumi.Input[str]
    labels: Mapping[str, str]
    links: Mapping[str, Endpoint]
    after: list[pulumi.Resource]


class CloudService(pulumi.ComponentResource):
    """Outputs: images (workload to immutable reference), digests, urls (service to URL), url, and
    per target the Docker network or the Kubernetes namespace and Service names."""

    images: pulumi.Output[dict]
    digests: pulumi.Output[dict]
    urls: pulumi.Output[dict]
    url: pulumi.Output[Optional[str]]
    network: Optional[pulumi.Output[str]] = None
    namespace: Optional[pulumi.Output[str]] = None
    services: Optional[pulumi.Output[dict]] = None

    def __init__(self, name: str, args: CloudServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._name, self._args = name, args
        # Only the first release's app claims its old URNs (components/upgrades.py).
        self._first_release = self if is_first_release_app(name) else None
        on_docker = isinstance(args.target, DockerSettings)
        references = self._references()
        # The Docker engine is needed to build, or to run on the docker target; a cluster stack that
        # deploys images built elsewhere (prod) needs none.
        self._engine = self._docker_engine(on_docker) if on_docker or None in references.values() else None
        self._images(references, Engine(args.target.host if on_docker else None), on_docker)

        self._workloads: dict[str, pulumi.ComponentResource] = {}
        # The entry point's URL of each route (components/routes.py), set by the target's run.
        self._route_urls: pulumi.Input[dict] = {}
        if on_docker:
            self._run_on_docker(args.target)
        else:
            self._run_on_kubernetes(args.target)
        services = {s.name: self._workloads[s.name] for s in args.app.services}
        published = pulumi.Output.from_input({n: s.url for n, s in services.items()}).apply(
            lambda urls: {n: url for n, url in urls.items() if url}
        )
        # A route's URL wins over its service's published port; the first route's is the stack's URL.
        both = pulumi.Output.all(published, self._route_urls)
        self.urls = both.apply(lambda urls: {**urls[0], **urls[1]})
        self.url = both.apply(lambda urls: next(iter(urls[1].values()), None) or next(iter(urls[0].values()), None))

        self.register_outputs(
            {
                "images": self.images,
                "digests": self.digests,
                "urls": self.urls,
                "url": self.url,
                "network": self.network,
                "namespace": self.namespace,
                "services": self.services,
            }
        )

    def _references(self) -> dict[str, Optional[pulumi.Input[str]]]:
        """Each workload's existing image: pinned (`images`), its spec's `image`, or another stack's
        (`imagesFrom`); None for one to build."""
        sources = self._args.images
        source_stack = (
            pulumi.StackReference(sources.images_from, opts=pulumi.ResourceOptions(parent=self))
            if sources.images_from
            else None
        )
        references: dict[str, Optional[pulumi.Input[str]]] = {}
        for workload in self._args.app.workloads:
            references[workload.name] = sources.pinned.get(workload.name) or workload.image
            if references[workload.name] is None and source_stack is not None:
                references[workload.name] = _image_from_stack(source_stack, sources.images_from, workload.name)
        return references

    def _docker_engine(self, on_docker: bool) -> pulumi.ResourceOptions:
        """The options of what the Docker provider builds or runs (with the registry's credentials)."""
        registry = self._args.images.registry
        registry_auth = (
            [
                docker.ProviderRegistryAuthArgs(
                    address=registry.url, username=registry.username, password=registry.password
                )
            ]
            if registry
            else None
        )
        provider = docker.Provider(
            f"{self._name}-docker",
            host=self._args.target.host if on_docker else None,
            registry_auth=registry_auth,
            opts=pulumi.ResourceOptions(parent=self, aliases=self._first_release_name("docker")),
        )
        return pulumi.ResourceOptions(parent=self, provider=provider)

    def _images(self, references: Mapping[str, Optional[pulumi.Input[str]]], engine: Engine, on_docker: bool) -> None:
        """What each workload runs (deploy_refs) and waits for (releases); the references exported."""
        args, sources = self._args, self._args.images
        stand_ins = self._stand_ins(references, engine) if self._engine else {}
        self._deploy_refs, self._releases, exported, digests = {}, {}, {}, {}
        # One pull per image, as `docker compose pull` does: the services that run the same reference
        # share the first one's (each resource more is one more step, and one more entry in the state
        # the engine writes at every step).
        pulled: dict[str, ContainerImage] = {}
        for workload in args.app.workloads:
            reference = references[workload.name]
            if reference is not None and not on_docker:  # the cluster pulls it: nothing to build or pull here
                self._deploy_refs[workload.name] = exported[workload.name] = reference
                digests[workload.name] = digest_of(reference)
                continue
            image = pulled.get(reference) if isinstance(reference, str) else None
            if image is None:
                image = ContainerImage(
                    f"{self._name}-{workload.name}",
                    ContainerImageArgs(
                        repository=f"{sources.repository}/{workload.name}",
                        build=workload.build if reference is None else None,
                        reference=reference,
                        push=sources.push,
                        pull=on_docker,
                        labels=args.labels,
                        engine=engine,
                        stand_ins=sources.base_images,
                        after=list(stand_ins.values()),
                    ),
                    opts=pulumi.ResourceOptions.merge(
                        self._engine, pulumi.ResourceOptions(aliases=self._first_release_name(workload.name))
                    ),
                )
                if isinstance(reference, str):
                    pulled[reference] = image
            self._deploy_refs[workload.name] = image.deploy_ref
            self._releases[workload.name] = image.release
            exported[workload.name] = pulumi.Output.all(image.registry_ref, image.reference).apply(
                lambda refs: refs[0] or refs[1]
            )
            digests[workload.name] = image.digest
        self.images = pulumi.Output.from_input(exported)
        self.digests = pulumi.Output.from_input(digests)

    def _stand_ins(
        self, references: Mapping[str, Optional[pulumi.Input[str]]], engine: Engine
    ) -> dict[str, pulumi.Resource]:
        """The stand-in of each base image (`baseImages`) a build starts FROM or a workload runs."""
        wanted = self._args.images.base_images
        used = {
            base
            for workload in self._args.app.workloads
            if references[workload.name] is None
            for base in base_images(workload.build)
        } | {r for r in references.values() if isinstance(r, str)}
        return {
            base: StandIn(
                f"{self._name}-stand-in-{re.sub('[^a-z0-9]+', '-', base.lower())}",
                base,
                local,
                engine,
                opts=self._engine,
            ).tag
            for base, local in wanted.items()
            if base in used
        }

    def _first_release_name(self, name: str) -> list[pulumi.Alias]:
        return app_child(self._first_release is not None, name)

    def _common(self, workload: WorkloadSpec, links_wait: bool) -> SharedWorkloadArgs:
        """What a workload gets on either target: its image, links, and what it waits for (its image's
        push, what it depends on, and on Docker what it links to)."""
        app = self._args.app
        waits_for = dict.fromkeys((*workload.depends_on, *(workload.links if links_wait else ())))
        release = self._releases.get(workload.name)
        return SharedWorkloadArgs(
            first_release_app=self._first_release,
            image=self._deploy_refs[workload.name],
            labels=self._args.labels,
            links={link: endpoint(app.service(link)) for link in workload.links},
            after=[*([release] if release else []), *(self._workloads[name] for name in waits_for)],
        )

    def _run_on_docker(self, settings: DockerSettings) -> None:
        networks = self._docker_networks()
        self.network = networks.get(DEFAULT_NETWORK)
        for workload in self._args.app.workloads:
            common = dict(
                **self._common(workload, links_wait=True),
                host=settings.host,
                networks=[networks[network] for network in workload.joined_networks],
                secrets={key: self._args.secrets[key] for key in workload.secret_keys},
            )
            name = f"{self._name}-{workload.name}"
            if isinstance(workload, JobSpec):
                self._workloads[workload.name] = DockerJob(
                    name, DockerJobArgs(spec=workload, **common), opts=self._engine
                )
            else:
                self._workloads[workload.name] = DockerService(
                    name,
                    DockerServiceArgs(
                        spec=workload,
                        port_offset=settings.port_offset,
                        ready_timeout=self._args.ready_timeout,
                        **common,
                    ),
                    opts=self._engine,
                )
        if self._args.app.routes:
            self._route_urls = self._routes_on_docker(settings, networks)

    def _routes_on_docker(self, settings: DockerSettings, networks: Mapping[str, pulumi.Input[str]]) -> dict[str, str]:
        """The app's routes served by a router container on the first app network of each routed
        service (one reaches its containers; with `isolation: links` it is the service's own); returns
        their URLs."""
        app = self._args.app
        routed = app.routed_services
        image = Engine(settings.host).image_id(ROUTER_IMAGE)
        if image is None:
            raise pulumi.RunError(f"routes: the Docker engine has no router image {ROUTER_IMAGE}; run `make platform`")
        host_port = settings.router_port + settings.port_offset
        DockerRouter(
            f"{self._name}-router",
            DockerRouterArgs(
                routes=app.routes,
                backends={
                    service.name: Backend(spec=service, containers=self._workloads[service.name].container_names)
                    for service in routed
                },
                networks=list(dict.fromkeys(networks[service.joined_networks[0]] for service in routed)),
                host_port=host_port,
                image=image,
                certificate=Certificate.platforms(),
                labels=self._args.labels,
                host=settings.host,
                ready_timeout=self._args.ready_timeout,
            ),
            opts=self._engine,
        )
        return route_urls(app.routes, "localhost", host_port)

    def _docker_networks(self) -> dict[str, pulumi.Input[str]]:
        """The Docker network's name of each app network some workload joins (as Compose, only those)."""
        app = self._args.app
        declared = {network.name: network for network in app.networks}
        return {name: self._docker_network(declared.get(name, NetworkSpec(name))) for name in _joined_networks(app)}

    def _docker_network(self, network: NetworkSpec) -> pulumi.Input[str]:
        """An `external` network is joined by name, never created. Each other one is a bridge of its own:
        workloads that share none cannot reach each other. The default one keeps the first release's
        resource and Docker names (an upgrade updates it in place)."""
        if network.external:
            return network.external
        default = network.name == DEFAULT_NETWORK
        created = AppNetwork(
            f"{self._name}-network" if default else f"{self._name}-{network.name}-network",
            AppNetworkArgs(name=self._name if default else f"{self._name}-{network.name}", labels=self._args.labels),
            opts=pulumi.ResourceOptions.merge(
                self._engine, pulumi.ResourceOptions(aliases=self._first_release_name("network") if default else None)
            ),
        )
        return created.name

    def _run_on_kubernetes(self, settings: KubernetesSettings) -> None:
        # Imported here: a Docker stack does not pay for loading the Kubernetes SDK.
        import pulumi_kubernetes as k8s

        from .kubernetes_namespace import AppNamespace, AppNamespaceArgs, PullCredentials
        from .kubernetes_service import KubernetesJob, KubernetesJobArgs, KubernetesService, KubernetesServiceArgs

        args = self._args
        cluster = k8s.Provider(
            f"{self._name}-kubernetes",
            kubeconfig=os.path.expanduser(settings.kubeconfig) if settings.kubeconfig else None,
            context=settings.context,
            opts=pulumi.ResourceOptions(parent=self, aliases=self._first_release_name("kubernetes")),
        )
        in_cluster = pulumi.ResourceOptions(parent=self, provider=cluster)
        registry = args.images.registry
        isolated = self._isolated_networks()
        namespace = AppNamespace(
            f"{self._name}-namespace",
            AppNamespaceArgs(
                namespace=settings.namespace,
                labels=args.labels,
                secrets=args.secrets,
                networks=isolated,
                pod_security=pod_security_level(args.app.workloads),
                first_release_app=self._first_release,
                registry=PullCredentials(server=registry.server, username=registry.username, password=registry.password)
                if registry
                else None,
            ),
            opts=in_cluster,
        )
        self.namespace = namespace.name
        service_names = {}
        for workload in args.app.workloads:
            # Links resolve by DNS name, not by ClusterIP: no reason to wait for the linked service,
            # so services start side by side and readiness gates the traffic. Only dependsOn waits.
            common = dict(
                **self._common(workload, links_wait=False),
                namespace=namespace.name,
                settings=settings,
                pull_secrets=namespace.pull_secrets,
                secrets_name=namespace.secrets_name if workload.secret_keys else None,
                secrets_revision=namespace.secrets_revision(bool(workload.secret_keys)),
                networks=[network for network in workload.joined_networks if network in isolated],
            )
            name = f"{self._name}-{workload.name}"
            if isinstance(workload, JobSpec):
                self._workloads[workload.name] = KubernetesJob(
                    name, KubernetesJobArgs(spec=workload, **common), opts=in_cluster
                )
            else:
                service = KubernetesService(
                    name,
                    KubernetesServiceArgs(spec=workload, ready_timeout=args.ready_timeout, **common),
                    opts=in_cluster,
                )
                self._workloads[workload.name] = service
                if service.service_name is not None:
                    service_names[workload.name] = service.service_name
        self.services = pulumi.Output.from_input(service_names)
        if args.app.routes:
            self._route_urls = self._routes_on_kubernetes(settings, namespace.name, service_names, in_cluster)

    def _routes_on_kubernetes(
        self,
        settings: KubernetesSettings,
        namespace: pulumi.Output[str],
        service_names: Mapping[str, pulumi.Output[str]],
        in_cluster: pulumi.ResourceOptions,
    ) -> pulumi.Output[dict]:
        """The app's routes as the Ingress of the cluster's entry point; returns their URLs."""
        from .kubernetes_routes import KubernetesRoutes, KubernetesRoutesArgs

        app = self._args.app
        routes = KubernetesRoutes(
            f"{self._name}-routes",
            KubernetesRoutesArgs(
                routes=app.routes,
                services=app.routed_services,
                service_names=service_names,
                namespace=namespace,
                labels=self._args.labels,
                settings=settings,
            ),
            opts=in_cluster,
        )
        return routes.urls

    def _isolated_networks(self) -> list[str]:
        """The app networks a NetworkPolicy isolates on a cluster: those some workload joins, when the
        app declares any (an app without `networks` is one open namespace, as before). An external
        network is a Docker network: ignored, with a notice."""
        app = self._args.app
        if not app.networks:
            return []
        external = {network.name for network in app.networks if network.external}
        for name in sorted(external):
            pulumi.log.warn(
                f"network {name} is external (a Docker network): ignored on Kubernetes, its workloads "
                "join the namespace's pod network",
                resource=self,
            )
        return [name for name in _joined_networks(app) if name not in external]
