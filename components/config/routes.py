"""`routes` of the stack config: the app's one HTTP entry point, read into RouteSpecs and checked
against the services they name (a router container serves them on Docker, an Ingress on Kubernetes)."""

from __future__ import annotations

import re
from typing import Any, Collection, Mapping

from ..spec import RouteSpec, ServiceSpec
from .errors import Reader, decode_json

ROUTE_KEYS = ("service", "port", "path", "host", "tlsSecret")

HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
"""A lowercase DNS name (no wildcard: a route names the host it serves)."""

PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,200}$")
"""A URL path prefix of the characters a URL path may hold unescaped (no quotes a router rule would need)."""

SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def read_routes(
    r: Reader, raw: Any, services: Mapping[str, ServiceSpec], invalid: Collection[str]
) -> tuple[RouteSpec, ...]:
    """`routes: [{service, port, path, host, tlsSecret}]`. `services`: the app's valid services by name;
    `invalid`: names of workloads with problems of their own (a route to one is not another problem)."""
    entries = decode_json(raw)
    if entries is None:
        return ()
    if not isinstance(entries, list):
        r.fail("routes", "a list of {service, port, path, host, tlsSecret}", entries)
        return ()
    routes, routed = [], {}
    for index, entry in enumerate(entries):
        key = f"routes[{index}]"
        entry = r.mapping(key, entry)
        if not entry:
            continue
        before = len(r.problems)
        r.unknown_keys(f"{key}.", entry, ROUTE_KEYS)
        route = _route(r, key, entry, services, invalid)
        if route is None or len(r.problems) > before:
            continue
        where = (route.host, route.path.rstrip("/") or "/")
        if where in routed:
            r.fail(key, f"a host and path not already routed by {routed[where]}", f"{route.host or '*'}{route.path}")
            continue
        routed[where] = key
        routes.append(route)
    return tuple(routes)


def _route(
    r: Reader, key: str, entry: Mapping[str, Any], services: Mapping[str, ServiceSpec], invalid: Collection[str]
) -> RouteSpec | None:
    name = entry.get("service")
    service = services.get(name) if isinstance(name, str) else None
    if service is None:
        if name not in invalid:
            r.fail(f"{key}.service", "the name of a service: " + ", ".join(sorted(services)), name)
        return None
    http_ports = [port.name for port in service.ports if port.protocol == "tcp"]
    if not http_ports:
        r.fail(f"{key}.service", f"a service with a tcp port (services.{name} has none)", name)
        return None
    # The service's main (first) port unless named: Kompose's rule too.
    port = entry.get("port", http_ports[0] if service.ports[0].protocol == "tcp" else None)
    if port not in http_ports:
        r.fail(f"{key}.port", f"the name of a tcp port of services.{name}: " + ", ".join(http_ports), port)
    path = r.text(f"{key}.path", entry.get("path", RouteSpec.path), PATH, "a URL path prefix starting with /")
    host = entry.get("host")
    if host is not None:
        host = r.text(f"{key}.host", host, HOST, "a lowercase DNS name such as shop.localhost")
    tls_secret = entry.get("tlsSecret")
    if tls_secret is not None:
        tls_secret = r.text(f"{key}.tlsSecret", tls_secret, SECRET_NAME, "the name of a Kubernetes TLS Secret")
    if port not in http_ports or path is None:
        return None
    return RouteSpec(service=name, port=port, path=path, host=host, tls_secret=tls_secret)
