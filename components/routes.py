"""The URLs of the app's entry point, one rule for both targets: each route's URL is
https://<host>[:<port>]<path>, its host the route's own or the target's default one, and the stack
exports it under the route's service (service + path, or service@host + path, for a service with
several routes). The stack's `url` is the first route's."""

from __future__ import annotations

from typing import Sequence

from .spec import RouteSpec

HTTPS_PORT = 443


def route_key(route: RouteSpec, routes: Sequence[RouteSpec]) -> str:
    """The key of `route`'s URL in the stack's `urls`."""
    if sum(other.service == route.service for other in routes) == 1:
        return route.service
    return f"{route.service}{'@' + route.host if route.host else ''}{route.path}"


def route_urls(routes: Sequence[RouteSpec], default_host: str, port: int) -> dict[str, str]:
    """Each route's URL by its key, in the routes' order; `port` is the entry point's https port."""
    suffix = "" if port == HTTPS_PORT else f":{port}"
    return {route_key(route, routes): f"https://{route.host or default_host}{suffix}{route.path}" for route in routes}
