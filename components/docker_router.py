"""DockerRouter: the app's one entry point on Docker, a Traefik container serving its routes over https.

Traefik's file provider reads a dynamic configuration the program generates: a router per route
(Host() and path rules, the longest path first, a host's routes before the hostless ones), and a
load-balanced service per routed port over the containers of the service's replicas, by name on the
app networks. A retry middleware sends a request that found a replica gone (refused, no such host)
to another one, and a read in flight to one that died (the platform's Traefik is patched for it); a
passive health check keeps a replica that failed out of the rotation for a while, and an active one
(the service's HTTP health check, when it has one) brings it back once it answers.

The container is hardened like the app's (non-root, read-only root, no capabilities, no new
privileges) and publishes one loopback host port. Its configuration and the platform's certificate
and key (platform/router.sh) are uploaded into a volume of its own, mounted read-only (a read-only
root takes no uploads): the key is a secret in the state. Changed routes (or a routed service's
replicas) are rewritten into the volume and Traefik reloads them in place; a changed static
configuration or certificate, or a new network to join, replaces the container.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_docker as docker

from .conventions import DEFAULT_READY_TIMEOUT
from .docker_files import carried_files
from .network import docker_labels
from .readiness import CheckArgs, DockerWorkload, RolloutCheck
from .spec import RouteSpec, ServiceSpec

ROUTER_IMAGE = "cloudservice/router:3.6.12"
"""The router image `make platform` builds (versions.env ROUTER_IMAGE): Traefik on the base image."""
TLS_DIR = Path(os.environ.get("CLOUDSERVICE_STATE", "~/.local/state/cloudservice")).expanduser() / "tls"
"""Where the platform keeps its CA and the entry point's certificate for localhost names."""
CONFIG_DIR = "/etc/traefik"
ROUTES_DIR = "/etc/traefik-routes"
"""The routes, in a volume of their own: rewriting them leaves the certificate Traefik reloads with them whole."""
HTTPS_PORT = 8443
"""The port Traefik listens on inside the container (published on the stack's router port)."""
PING_PORT = 8082
RETRY_ATTEMPTS = 3
DIAL_TIMEOUT = "1s"
CONFIG_REVISION = "cloudservice.dev/config-revision"
"""Changes with the router's static configuration and certificate: a new router container. The routes
are reloaded in place."""
FAILURE_WINDOW = "5s"
"""How long a replica that failed a request stays out of the rotation (unless the active check says it is back)."""


@dataclass(frozen=True)
class Backend:
    """A routed service on Docker: its spec (ports, health check) and its replicas' container names
    (fixed names: a rollout that replaces the containers leaves the router as it is)."""

    spec: ServiceSpec
    containers: Sequence[str]


@dataclass(frozen=True)
class Certificate:
    """The PEM certificate (chain) and key the router serves."""

    cert: str
    key: pulumi.Input[str]

    @classmethod
    def platforms(cls) -> Certificate:
        """The certificate `make platform` issues for localhost names, signed by its local CA."""
        try:
            cert, key = (TLS_DIR / "localhost.crt").read_text(), (TLS_DIR / "localhost.key").read_text()
        except OSError as error:
            raise pulumi.RunError(
                f"routes: the platform's certificate for the router is missing ({error}); run `make platform`"
            ) from None
        return cls(cert=cert, key=pulumi.Output.secret(key))


@dataclass(kw_only=True)
class DockerRouterArgs:
    routes: Sequence[RouteSpec]
    backends: Mapping[str, Backend]
    """Each routed service by name."""
    networks: Sequence[pulumi.Input[str]]
    """The Docker networks of the routed services: the router joins each."""
    host_port: int
    """The loopback host port it serves https on."""
    image: pulumi.Input[str]
    """The router image (its local ID: a rebuilt image replaces the container)."""
    certificate: Certificate
    labels: Mapping[str, str]
    host: Optional[str] = None
    """The Docker host (the provider's), which its readiness check reads."""
    ready_timeout: int = DEFAULT_READY_TIMEOUT


def rule(route: RouteSpec) -> str:
    """Traefik's rule for a route. A path prefix matches whole segments, as an Ingress's Prefix does:
    /api matches /api and /api/x, not /apix."""
    path = route.path.rstrip("/")
    paths = f"(Path(`{path}`) || PathPrefix(`{path}/`))" if path else "PathPrefix(`/`)"
    return f"Host(`{route.host}`) && {paths}" if route.host else paths


def priority(route: RouteSpec) -> int:
    """A host's routes before the hostless ones (as an Ingress's host rules), then the longest path."""
    return (1000 if route.host else 0) + len(route.path.rstrip("/")) + 1


def backend_name(service: str, port: str) -> str:
    return f"{service}-{port}"


def dynamic_config(routes: Sequence[RouteSpec], backends: Mapping[str, Backend]) -> dict:
    """Traefik's dynamic configuration of the routes to the backends (each routed service by name)."""
    routers, services = {}, {}
    for index, route in enumerate(routes):
        spec, containers = backends[route.service].spec, backends[route.service].containers
        port = next(p for p in spec.ports if p.name == route.port)
        name = backend_name(route.service, route.port)
        routers[f"route-{index}"] = {
            "entryPoints": ["websecure"],
            "rule": rule(route),
            "priority": priority(route),
            "service": name,
            "middlewares": ["retry"],
            "tls": {},
        }
        balancer: dict = {
            "servers": [{"url": f"http://{container}:{port.port}"} for container in containers],
            "serversTransport": "replicas",
            "passiveHealthCheck": {"failureWindow": FAILURE_WINDOW, "maxFailedAttempts": 1},
        }
        health = spec.health
        if health is not None and health.path is not None and health.port == port.port:
            balancer["healthCheck"] = {
                "path": health.path,
                "interval": f"{health.interval}s",
                "timeout": f"{health.timeout}s",
            }
        services[name] = {"loadBalancer": balancer}
    return {
        "http": {
            "routers": routers,
            "services": services,
            "middlewares": {"retry": {"retry": {"attempts": RETRY_ATTEMPTS, "initialInterval": "50ms"}}},
            # A replica that just died may still be in DNS: a connection that does not open soon is
            # retried on another one (a dial error comes before the request is sent). No idle
            # connections are kept: one a stopping replica closes could take the next request, which
            # then fails after it was sent (a 502 no retry covers, unless the request is safe to repeat).
            "serversTransports": {
                "replicas": {"forwardingTimeouts": {"dialTimeout": DIAL_TIMEOUT}, "maxIdleConnsPerHost": -1}
            },
        },
        "tls": {
            "stores": {
                "default": {
                    "defaultCertificate": {"certFile": f"{CONFIG_DIR}/tls.crt", "keyFile": f"{CONFIG_DIR}/tls.key"}
                }
            }
        },
    }


def static_config() -> dict:
    """Traefik's static configuration: the https entry point, a ping one for the health check, the file."""
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {"websecure": {"address": f":{HTTPS_PORT}"}, "ping": {"address": f":{PING_PORT}"}},
        "ping": {"entryPoint": "ping"},
        # Reloaded when the file changes: a whole JSON document or nothing (Traefik skips one it cannot
        # parse, and an empty one, so a file being rewritten never empties the routes).
        "providers": {"file": {"filename": f"{ROUTES_DIR}/routes.yaml", "watch": True}},
        "log": {"level": "WARN", "noColor": True},
    }


class DockerRouter(pulumi.ComponentResource):
    """The app's routes served on one https host port. Output: `container` (its name)."""

    container: pulumi.Output[str]

    def __init__(self, name: str, args: DockerRouterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:DockerRouter", name, None, opts)
        for route in args.routes:
            if route.tls_secret:
                pulumi.log.warn(
                    f"route to {route.service}{route.path}: tlsSecret is a Kubernetes Secret; the Docker router "
                    "serves the platform's certificate",
                    resource=self,
                )
        routes = json.dumps(dynamic_config(args.routes, args.backends), indent=2, sort_keys=True)
        labels = {**args.labels, "app.kubernetes.io/component": "router"}
        # JSON is YAML: Traefik reads both files by their extension.
        static = json.dumps(static_config(), indent=2)
        config_mount, config_carrier = carried_files(
            self,
            f"{name}-config",
            args.image,
            CONFIG_DIR,
            {
                f"{CONFIG_DIR}/traefik.yaml": static,
                f"{CONFIG_DIR}/tls.crt": args.certificate.cert,
                f"{CONFIG_DIR}/tls.key": args.certificate.key,
            },
            labels,
        )
        routes_mount, routes_carrier = carried_files(
            self, f"{name}-routes", args.image, ROUTES_DIR, {f"{ROUTES_DIR}/routes.yaml": routes}, labels
        )
        container = docker.Container(
            name,
            name=name,
            image=args.image,
            command=[f"--configFile={CONFIG_DIR}/traefik.yaml"],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network) for network in args.networks],
            ports=[docker.ContainerPortArgs(internal=HTTPS_PORT, external=args.host_port, ip="127.0.0.1")],
            volumes=[config_mount, routes_mount],
            user="10001:10001",
            read_only=True,
            tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"},
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            security_opts=["no-new-privileges:true"],
            memory=128,
            memory_swap=128,
            cpus="1.0",  # as the engine gives it back: "1" would differ at every `up` and replace the router
            restart="unless-stopped",
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "/usr/local/bin/traefik", "healthcheck", f"--configFile={CONFIG_DIR}/traefik.yaml"],
                interval="2s",
                timeout="3s",
                retries=3,
                start_period="2s",
            ),
            # What Traefik reads only at start: the key changes with the certificate it is issued with.
            labels=docker_labels(
                {**labels, CONFIG_REVISION: hashlib.sha256((static + args.certificate.cert).encode()).hexdigest()[:12]},
                docker.ContainerLabelArgs,
            ),
            destroy_grace_seconds=10,
            # A fixed container name and host port cannot exist twice: replace in place. Started once
            # its files are in the volume; later changes of the routes only rewrite them.
            opts=pulumi.ResourceOptions(
                parent=self, delete_before_replace=True, depends_on=[config_carrier, routes_carrier]
            ),
        )
        RolloutCheck(
            f"{name}-ready",
            CheckArgs(
                name="router",
                workload=DockerWorkload(container=container.name, host=args.host),
                revision=container.id,
                timeout=args.ready_timeout,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.container = container.name
        self.register_outputs({"container": self.container})
