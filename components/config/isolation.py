"""`isolation: links`: a service takes connections only from the workloads that link to it or depend
on it, instead of from every workload of its network (Compose's rule, `isolation: network`).

It is a rewrite of the app's networks, so both targets enforce it with what already isolates a
network: a Docker network each, a NetworkPolicy each on Kubernetes. Each service with ports gets a
network of its own, `to-<service>`, joined by the workloads that link to it or depend on it; a
workload that neither has ports nor reaches any service gets one too, as every container needs one.
A link opens both ways, as a network two containers share does; it never crosses the app's own
networks (Compose would not resolve the name either)."""

from __future__ import annotations

from dataclasses import replace

from ..spec import AppSpec, NetworkSpec, WorkloadSpec
from .errors import Reader

ISOLATIONS = ("network", "links")


def link_network(service: str) -> str:
    return f"to-{service}"


def isolate_by_links(r: Reader, app: AppSpec) -> AppSpec:
    """The app with each workload on the networks of `isolation: links` (see the module's doc)."""
    for network in app.networks:
        if network.external:
            r.fail(
                "isolation",
                f"`network` while networks.{network.name} is external (links are kept on networks the stack creates)",
                "links",
            )
    services = {s.name: s for s in app.services if s.ports}

    def networks_of(workload: WorkloadSpec) -> set[str]:
        return set(workload.joined_networks)

    def reached(workload: WorkloadSpec) -> list[str]:
        return [
            link_network(name)
            for name in dict.fromkeys((*workload.links, *workload.depends_on))
            if name in services and networks_of(workload) & networks_of(services[name])
        ]

    def joined(workload: WorkloadSpec) -> tuple[str, ...]:
        others = reached(workload)
        own = [link_network(workload.name)] if workload.name in services or not others else []
        return (*own, *others)

    workloads = tuple(replace(workload, networks=joined(workload)) for workload in app.workloads)
    networks = dict.fromkeys(network for workload in workloads for network in workload.networks)
    return replace(app, workloads=workloads, networks=tuple(NetworkSpec(network) for network in networks))
