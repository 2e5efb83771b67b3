"""The app's routes on Kubernetes (components/kubernetes_routes.py): one Ingress of the entry point's
class in the stack's namespace, a NetworkPolicy per routed service, and the stack's URLs on the entry
point (components/routes.py, the rule both targets share)."""

from __future__ import annotations

import dataclasses

import pytest
from harness import default_services, deploy, kubernetes_config
from recorder import CLOUD_SERVICE, NETWORK_POLICY, resolve

from components.config.errors import ConfigError
from components.kubernetes_objects import SERVER_SIDE_APPLY, SKIP_AWAIT
from components.routes import route_key, route_urls
from components.spec import RouteSpec

APP = "cloudservice-dev"
DEFAULT_HOST = "cloudservice-dev.apps.localhost"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
KUBERNETES_ROUTES = "cloudservice:index:KubernetesRoutes"
STACK = "cloudservice.dev/stack"


def routed(*routes: RouteSpec, **values):
    """The project's app plus a service `api` (ports main 9000 and admin 9001), with `routes`."""
    services = {**default_services(), "api": {"build": "app/web", "ports": {"main": 9000, "admin": 9001}}}
    config = kubernetes_config(services=services, **values)
    return dataclasses.replace(config, app=dataclasses.replace(config.app, routes=routes))


def ingress_of(mocks) -> dict:
    (ingress,) = mocks.of_type(INGRESS)
    assert ingress.name == f"{APP}-routes-ingress"
    return ingress.inputs


def backend(service: str, port: str) -> dict:
    return {"service": {"name": service, "port": {"name": port}}}


def test_routes_are_one_ingress_of_the_entry_points_class_in_the_stacks_namespace(mocks):
    app = deploy(
        routed(
            RouteSpec(service="web"),
            RouteSpec(service="api", path="/api"),
            RouteSpec(service="api", port="admin", path="/", host="admin.apps.localhost"),
        )
    )
    ingress = ingress_of(mocks)
    metadata = ingress["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("routes", APP)
    assert metadata["annotations"] == {**SKIP_AWAIT, **SERVER_SIDE_APPLY}
    assert metadata["labels"][STACK] == "dev"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "cloudservice"
    # A route without host is served on the stack's own host: the entry point is the cluster's.
    assert spec["rules"] == [
        {
            "host": DEFAULT_HOST,
            "http": {
                "paths": [
                    {"path": "/", "pathType": "Prefix", "backend": backend("web", "main")},
                    {"path": "/api", "pathType": "Prefix", "backend": backend("api", "main")},
                ]
            },
        },
        {
            "host": "admin.apps.localhost",
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("api", "admin")}]},
        },
    ]
    # Every host is served over https, with the entry point's default certificate.
    assert spec["tls"] == [{"hosts": [DEFAULT_HOST, "admin.apps.localhost"]}]

    (component,) = mocks.of_type(KUBERNETES_ROUTES)
    assert mocks.parent_of(component).type == CLOUD_SERVICE
    assert mocks.parent_of(mocks.of_type(INGRESS)[0]) is component
    assert resolve(app.url) == f"https://{DEFAULT_HOST}:8443/"


def test_a_route_with_its_own_tls_secret_names_it_for_its_host(mocks):
    deploy(routed(RouteSpec(service="web", host="shop.example.com", tls_secret="shop-tls"), RouteSpec(service="api")))
    assert ingress_of(mocks)["spec"]["tls"] == [
        {"hosts": ["shop.example.com"], "secretName": "shop-tls"},
        {"hosts": [DEFAULT_HOST]},
    ]


def test_the_entry_point_reaches_only_the_routed_ports_of_the_routed_services(mocks):
    deploy(routed(RouteSpec(service="api", port="admin", path="/admin")))
    policy = mocks.get(NETWORK_POLICY, f"{APP}-routes-api")
    assert mocks.parent_of(policy).type == KUBERNETES_ROUTES
    assert policy.inputs["metadata"]["name"] == "routed-api"
    assert policy.inputs["spec"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "api", STACK: "dev"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"port": 9001}]}],
    }
    assert mocks.find(NETWORK_POLICY, f"{APP}-routes-web") is None, "web has no route"


def test_stack_urls_are_the_routes_and_the_published_ports_of_the_rest(mocks):
    app = deploy(routed(RouteSpec(service="api", path="/v1"), RouteSpec(service="api", path="/v2")))
    urls = resolve(app.urls)
    assert urls["api/v1"] == f"https://{DEFAULT_HOST}:8443/v1"
    assert urls["api/v2"] == f"https://{DEFAULT_HOST}:8443/v2"
    assert urls["web"].startswith("http://127.0.0.1:"), "web has no route: its published port stays"
    assert resolve(app.url) == f"https://{DEFAULT_HOST}:8443/v1", "the first route's URL is the stack's"


def test_entry_point_settings_reach_the_ingress_and_the_urls(mocks):
    kubernetes = {"namespace": "team-a", "ingressClass": "nginx", "httpsPort": 443, "routeDomain": "dev.test"}
    app = deploy(routed(RouteSpec(service="web"), kubernetes=kubernetes))
    spec = ingress_of(mocks)["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["rules"][0]["host"] == "team-a.dev.test"
    assert resolve(app.urls)["web"] == "https://team-a.dev.test/", "443 is https's own port: left out"


def test_without_routes_there_is_no_ingress(mocks):
    app = deploy(routed())
    assert mocks.of_type(INGRESS) == [] and mocks.of_type(KUBERNETES_ROUTES) == []
    assert resolve(app.url).startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    "route,key",
    [
        (RouteSpec(service="web"), "web"),
        (RouteSpec(service="api", path="/v1"), "api/v1"),
        (RouteSpec(service="api", host="admin.localhost", path="/"), "api@admin.localhost/"),
    ],
)
def test_a_routes_key_is_its_service_unless_the_service_has_several(route, key):
    routes = [RouteSpec(service="web"), RouteSpec(service="api", path="/v1"), route]
    if route.service == "web":
        routes = routes[1:]
    assert route_key(route, routes) == key


def test_route_urls_keep_the_routes_order_and_their_own_hosts():
    routes = [RouteSpec(service="web", path="/shop"), RouteSpec(service="api", host="api.localhost", path="/")]
    assert list(route_urls(routes, "localhost", 8443).items()) == [
        ("web", "https://localhost:8443/shop"),
        ("api", "https://api.localhost:8443/"),
    ]


def test_the_entry_point_settings_come_from_the_kubernetes_config_keys():
    assert kubernetes_config().kubernetes.default_host == DEFAULT_HOST
    keys = {"namespace": "team-a", "ingressClass": "nginx", "httpsPort": 443, "routeDomain": "dev.test"}
    settings = kubernetes_config(kubernetes=keys).kubernetes
    assert (settings.ingress_class, settings.https_port, settings.default_host) == ("nginx", 443, "team-a.dev.test")


def test_bad_entry_point_settings_are_reported_together():
    keys = {"ingressClass": "No_Class", "httpsPort": 0, "routeDomain": "-bad-"}
    with pytest.raises(ConfigError) as error:
        kubernetes_config(kubernetes=keys)
    for key in ("kubernetes.ingressClass", "kubernetes.httpsPort", "kubernetes.routeDomain"):
        assert key in str(error.value)
