"""KubernetesRoutes: the app's routes on a cluster, one Ingress in the stack's namespace for the
cluster's entry point (the ingress controller of `KubernetesSettings.ingress_class`; `make cluster`
runs Traefik for it).

The entry point is shared by every stack of the cluster, so a route without host gets the stack's
own, `<namespace>.<route_domain>`. Every route is served over https: with its `tls_secret` when it
names one, else with the entry point's default certificate (the platform's, for localhost names).
Requests go to the pods the Service selects, ready ones only, so a rollout (readiness-gated, with a
preStop pause) loses none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs
from pulumi_kubernetes.networking.v1 import (
    HTTPIngressPathArgs,
    HTTPIngressRuleValueArgs,
    IngressBackendArgs,
    IngressRuleArgs,
    IngressServiceBackendArgs,
    IngressSpecArgs,
    IngressTLSArgs,
    NetworkPolicyIngressRuleArgs,
    NetworkPolicyPortArgs,
    NetworkPolicySpecArgs,
    ServiceBackendPortArgs,
)

from .kubernetes_objects import SKIP_AWAIT, dns_label, object_metadata, pod_selector
from .routes import route_urls
from .spec import KubernetesSettings, RouteSpec, ServiceSpec

# The one Ingress of a stack's namespace.
INGRESS_NAME = "routes"


@dataclass(kw_only=True)
class KubernetesRoutesArgs:
    routes: Sequence[RouteSpec]
    services: Sequence[ServiceSpec]
    """The services the routes name (their ports' numbers open the pods to the entry point)."""
    service_names: Mapping[str, pulumi.Input[str]]
    """Each routed service's Service name: the Ingress's backends."""
    namespace: pulumi.Input[str]
    labels: Mapping[str, str]
    settings: KubernetesSettings


class KubernetesRoutes(pulumi.ComponentResource):
    """The Ingress of the app's routes, and a NetworkPolicy per routed service that lets the entry point
    reach its routed ports. Outputs: `urls` (route key to URL, components/routes.py), `url` (the
    first route's)."""

    urls: pulumi.Output[dict]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: KubernetesRoutesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:KubernetesRoutes", name, None, opts)
        self._args = args
        settings = args.settings
        hosts = {route: route.host or settings.default_host for route in args.routes}
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=object_metadata(INGRESS_NAME, args.namespace, args.labels, annotations=SKIP_AWAIT),
            spec=IngressSpecArgs(
                ingress_class_name=settings.ingress_class,
                rules=[
                    IngressRuleArgs(
                        host=host,
                        http=HTTPIngressRuleValueArgs(
                            paths=[self._path(route) for route in args.routes if hosts[route] == host]
                        ),
                    )
                    for host in dict.fromkeys(hosts.values())
                ],
                tls=[
                    IngressTLSArgs(
                        hosts=list(dict.fromkeys(hosts[route] for route in args.routes if route.tls_secret == secret)),
                        secret_name=secret,
                    )
                    for secret in dict.fromkeys(route.tls_secret for route in args.routes)
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        for service in args.services:
            self._open_routed(name, service)
        self.urls = pulumi.Output.from_input(route_urls(args.routes, settings.default_host, settings.https_port))
        self.url = self.urls.apply(lambda urls: next(iter(urls.values())))
        self.register_outputs({"urls": self.urls, "url": self.url})

    def _path(self, route: RouteSpec) -> HTTPIngressPathArgs:
        return HTTPIngressPathArgs(
            path=route.path,
            path_type="Prefix",
            backend=IngressBackendArgs(
                service=IngressServiceBackendArgs(
                    name=self._args.service_names[route.service], port=ServiceBackendPortArgs(name=route.port)
                )
            ),
        )

    def _open_routed(self, name: str, service: ServiceSpec) -> None:
        """The namespace takes connections from its own pods only (AppNamespace): the entry point, in
        another namespace or on a node, reaches the routed ports through this policy."""
        args = self._args
        routed = {route.port for route in args.routes if route.service == service.name}
        k8s.networking.v1.NetworkPolicy(
            f"{name}-{service.name}",
            metadata=object_metadata(f"routed-{dns_label(service.name)}", args.namespace, args.labels),
            spec=NetworkPolicySpecArgs(
                pod_selector=LabelSelectorArgs(match_labels=pod_selector(args.labels, service.name)),
                policy_types=["Ingress"],
                ingress=[
                    NetworkPolicyIngressRuleArgs(
                        ports=[NetworkPolicyPortArgs(port=port.port) for port in service.ports if port.name in routed]
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
