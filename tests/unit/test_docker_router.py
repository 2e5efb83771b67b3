"""components/docker_router.py: DockerRouter serves the app's routes from one hardened Traefik container on
one loopback https port, over the routed services' replicas; CloudService creates it on Docker when the
app has routes, and the stack's url/urls are then the entry point's."""

from __future__ import annotations

import hashlib
import json

import pulumi
import pytest
from harness import REGISTRY, STACK_LABELS, default_services, deploy, make_config, spec_of
from recorder import (
    CLOUD_SERVICE,
    CONTAINER,
    ROLLOUT_CHECK,
    VOLUME,
    install_mocks,
    plaintext_occurrences,
    resolve,
    run,
    unwrap_secrets,
)

from components import docker_router
from components.docker_router import (
    ROUTER_IMAGE,
    Backend,
    Certificate,
    DockerRouter,
    DockerRouterArgs,
    dynamic_config,
    rule,
)
from components.spec import HealthSpec, RouteSpec

ROUTER = "cloudservice:index:DockerRouter"
ROUTER_ID = "sha256:" + "7" * 64
KEY = "-----BEGIN PRIVATE KEY-----\ns3cr3t-router-key\n-----END PRIVATE KEY-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nrouter\n-----END CERTIFICATE-----\n"
WEB = ["cloudservice-dev-web", "cloudservice-dev-web-2"]


def backends() -> dict[str, Backend]:
    web = spec_of(publish=None, replicas=2)
    redis = spec_of("redis")
    return {
        "web": Backend(spec=web, containers=WEB),
        "redis": Backend(spec=redis, containers=["cloudservice-dev-redis"]),
    }


def router_args(routes, **changes) -> DockerRouterArgs:
    args = dict(
        routes=routes,
        backends=backends(),
        networks=["cloudservice-dev"],
        host_port=9443,
        image=ROUTER_ID,
        certificate=Certificate(cert=CERT, key=pulumi.Output.secret(KEY)),
        labels=STACK_LABELS,
    )
    return DockerRouterArgs(**{**args, **changes})


def uploads_of(container) -> dict[str, dict]:
    return {upload["file"]: upload for upload in unwrap_secrets(container.inputs["uploads"])}


@pytest.mark.parametrize(
    "route,expected",
    [
        (RouteSpec("web"), "PathPrefix(`/`)"),
        (RouteSpec("web", path="/api"), "(Path(`/api`) || PathPrefix(`/api/`))"),
        (RouteSpec("web", path="/api/"), "(Path(`/api`) || PathPrefix(`/api/`))"),
        (RouteSpec("web", host="shop.localhost"), "Host(`shop.localhost`) && PathPrefix(`/`)"),
        (
            RouteSpec("web", path="/v1", host="api.localhost"),
            "Host(`api.localhost`) && (Path(`/v1`) || PathPrefix(`/v1/`))",
        ),
    ],
)
def test_rules_match_hosts_and_whole_path_segments(route, expected):
    assert rule(route) == expected


def test_the_longest_path_and_a_hosts_routes_win():
    routes = [
        RouteSpec("web"),
        RouteSpec("web", path="/api/v1"),
        RouteSpec("redis", path="/api"),
        RouteSpec("web", host="a.localhost"),
    ]
    routers = dynamic_config(routes, backends())["http"]["routers"]
    priorities = [routers[f"route-{n}"]["priority"] for n in range(4)]
    assert priorities[1] > priorities[2] > priorities[0] > 0
    assert priorities[3] > priorities[1], "a host's route wins over any hostless one"


def test_each_routed_port_balances_over_the_replicas_with_retries_and_health_checks():
    config = dynamic_config([RouteSpec("web", port="main"), RouteSpec("redis", path="/redis")], backends())
    routers, services = config["http"]["routers"], config["http"]["services"]
    assert routers["route-0"] == {
        "entryPoints": ["websecure"],
        "rule": "PathPrefix(`/`)",
        "priority": 1,
        "service": "web-main",
        "middlewares": ["retry"],
        "tls": {},
    }
    web = services["web-main"]["loadBalancer"]
    assert web["servers"] == [{"url": f"http://{name}:8080"} for name in WEB]
    assert web["passiveHealthCheck"] == {"failureWindow": "5s", "maxFailedAttempts": 1}
    assert web["serversTransport"] == "replicas"
    assert config["http"]["serversTransports"]["replicas"]["forwardingTimeouts"] == {"dialTimeout": "1s"}
    assert web["healthCheck"] == {"path": "/healthz", "interval": "2s", "timeout": "3s"}, "the service's HTTP check"
    redis = services["redis-main"]["loadBalancer"]
    assert "healthCheck" not in redis, "a command health check is no HTTP path to probe"
    assert config["http"]["middlewares"]["retry"]["retry"]["attempts"] >= 2
    assert config["tls"]["stores"]["default"]["defaultCertificate"] == {
        "certFile": "/etc/traefik/tls.crt",
        "keyFile": "/etc/traefik/tls.key",
    }


def test_an_http_check_on_another_port_is_not_the_routed_ports():
    web = spec_of(
        publish=None,
        port=None,
        ports={"http": {"port": 8080}, "admin": {"port": 9000}},
        health={"http": "/healthz", "port": "admin"},
    )
    assert web.health == HealthSpec(path="/healthz", port=9000)
    config = dynamic_config([RouteSpec("web", port="http")], {"web": Backend(spec=web, containers=WEB)})
    assert "healthCheck" not in config["http"]["services"]["web-http"]["loadBalancer"]


def test_one_hardened_container_on_a_loopback_https_port(mocks):
    router = run(lambda: DockerRouter("cloudservice-dev-router", router_args([RouteSpec("web")])))
    component = mocks.get(ROUTER, "cloudservice-dev-router")
    container = mocks.get(CONTAINER, "cloudservice-dev-router")
    assert mocks.parent_of(container) is component
    assert sorted(r.type for r in mocks.children_of(component)) == sorted(
        [VOLUME, CONTAINER, VOLUME, CONTAINER, CONTAINER, ROLLOUT_CHECK]
    )
    inputs = container.inputs
    assert inputs["name"] == "cloudservice-dev-router" == resolve(router.container)
    assert inputs["image"] == ROUTER_ID
    assert inputs["ports"] == [{"internal": 8443, "external": 9443, "ip": "127.0.0.1"}]
    assert inputs["networksAdvanced"] == [{"name": "cloudservice-dev"}]
    assert inputs["user"] == "10001:10001" and inputs["readOnly"] is True
    assert inputs["capabilities"] == {"drops": ["ALL"]}
    assert inputs["securityOpts"] == ["no-new-privileges:true"]
    assert inputs["restart"] == "unless-stopped"
    assert inputs["healthcheck"]["tests"][1:3] == ["/usr/local/bin/traefik", "healthcheck"]
    assert container.delete_before_replace, "a fixed name and host port cannot exist twice"
    labels = {item["label"]: item["value"] for item in inputs["labels"]}
    static = uploads_of(mocks.get(CONTAINER, "cloudservice-dev-router-config"))["/etc/traefik/traefik.yaml"]["content"]
    assert labels == {
        **STACK_LABELS,
        "app.kubernetes.io/component": "router",
        "cloudservice.dev/config-revision": hashlib.sha256((static + CERT).encode()).hexdigest()[:12],
    }, "a new static configuration or certificate replaces the router"
    for carrier in ("config", "routes"):
        assert mocks.get(CONTAINER, f"cloudservice-dev-router-{carrier}").urn in container.dependencies, (
            "started once filled"
        )


def test_new_routes_and_replicas_are_rewritten_into_the_volume_and_leave_the_router_as_it_was(mocks):
    """Traefik watches routes.yaml: only the carrier changes (it writes the files again)."""
    run(lambda: DockerRouter("cloudservice-dev-router", router_args([RouteSpec("web")])))
    router = mocks.get(CONTAINER, "cloudservice-dev-router").inputs
    routes = uploads_of(mocks.get(CONTAINER, "cloudservice-dev-router-routes"))["/etc/traefik-routes/routes.yaml"]
    web = Backend(spec=spec_of(publish=None, replicas=3), containers=[*WEB, "cloudservice-dev-web-3"])
    changed = router_args(
        [RouteSpec("web"), RouteSpec("redis", host="cache.localhost")], backends={**backends(), "web": web}
    )
    again = install_mocks()
    run(lambda: DockerRouter("cloudservice-dev-router", changed))
    assert again.get(CONTAINER, "cloudservice-dev-router").inputs == router
    new_routes = uploads_of(again.get(CONTAINER, "cloudservice-dev-router-routes"))["/etc/traefik-routes/routes.yaml"]
    assert new_routes != routes and "cloudservice-dev-web-3" in new_routes["content"]


def test_its_configuration_and_certificate_are_uploaded_the_key_as_a_secret(mocks):
    """A read-only root takes no uploads: never-started carriers put them into the router's volumes,
    the routes into one of their own (rewritten alone when they change)."""
    routes = [RouteSpec("web"), RouteSpec("redis", host="cache.localhost")]
    run(lambda: DockerRouter("cloudservice-dev-router", router_args(routes)))
    config, routes_carrier = (mocks.get(CONTAINER, f"cloudservice-dev-router-{name}") for name in ("config", "routes"))
    for carrier in (config, routes_carrier):
        assert carrier.inputs["start"] is False and carrier.inputs["networkMode"] == "none"
    uploads = uploads_of(config)
    assert set(uploads) == {f"/etc/traefik/{name}" for name in ("traefik.yaml", "tls.crt", "tls.key")}
    (routes_file,) = uploads_of(routes_carrier).values()
    assert routes_file["file"] == "/etc/traefik-routes/routes.yaml"
    assert json.loads(routes_file["content"]) == dynamic_config(routes, backends())
    static = json.loads(uploads["/etc/traefik/traefik.yaml"]["content"])
    assert static["entryPoints"]["websecure"] == {"address": ":8443"}
    assert static["providers"]["file"] == {"filename": "/etc/traefik-routes/routes.yaml", "watch": True}
    assert static["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    assert uploads["/etc/traefik/tls.crt"]["content"] == CERT
    assert uploads["/etc/traefik/tls.key"]["content"] == KEY
    assert all(upload["permissions"] == "0444" for upload in (*uploads.values(), routes_file))
    assert config.inputs["volumes"] == [
        {"volumeName": "cloudservice-dev-router-config", "containerPath": "/etc/traefik"}
    ]
    router = mocks.get(CONTAINER, "cloudservice-dev-router")
    assert router.inputs["volumes"] == [
        {"volumeName": "cloudservice-dev-router-config", "containerPath": "/etc/traefik", "readOnly": True},
        {"volumeName": "cloudservice-dev-router-routes", "containerPath": "/etc/traefik-routes", "readOnly": True},
    ]
    assert plaintext_occurrences(config.inputs, "s3cr3t-router-key") == []


def test_a_tls_secret_is_kubernetes_only_and_says_so(mocks, monkeypatch):
    warnings = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, **_: warnings.append(message))
    run(lambda: DockerRouter("r", router_args([RouteSpec("web", host="a.localhost", tls_secret="a-tls")])))
    assert any("tlsSecret" in warning for warning in warnings), warnings


# -- CloudService on Docker ------------------------------------------------------------------------


@pytest.fixture
def platform_tls(tmp_path, monkeypatch):
    (tmp_path / "localhost.crt").write_text(CERT)
    (tmp_path / "localhost.key").write_text(KEY)
    monkeypatch.setattr(docker_router, "TLS_DIR", tmp_path)
    return tmp_path


def routed_config(**values):
    services = default_services()
    services["web"] = {**services["web"], "replicas": 3}
    del services["web"]["publish"]
    routes = [{"service": "web"}, {"service": "web", "path": "/admin", "host": "admin.apps.localhost"}]
    return make_config(target="docker", **REGISTRY, services=services, routes=routes, portOffset=7, **values)


def test_an_app_with_routes_gets_a_router_and_its_urls(mocks, platform_tls):
    mocks.local_images[ROUTER_IMAGE] = ROUTER_ID
    app = deploy(routed_config())
    router = mocks.get(CONTAINER, "cloudservice-dev-router")
    assert mocks.parent_of(mocks.parent_of(router)) is mocks.get(CLOUD_SERVICE, "cloudservice-dev")
    assert router.inputs["image"] == ROUTER_ID, "the platform's image, as the engine has it (not pulled)"
    assert router.inputs["ports"][0]["external"] == 9443 + 7
    assert router.inputs["networksAdvanced"] == [{"name": "cloudservice-dev"}]
    routes = uploads_of(mocks.get(CONTAINER, "cloudservice-dev-router-routes"))["/etc/traefik-routes/routes.yaml"]
    servers = json.loads(routes["content"])["http"]["services"]["web-main"]
    names = ["cloudservice-dev-web", "cloudservice-dev-web-2", "cloudservice-dev-web-3"]
    assert [server["url"] for server in servers["loadBalancer"]["servers"]] == [f"http://{n}:8080" for n in names]
    assert uploads_of(mocks.get(CONTAINER, "cloudservice-dev-router-config"))["/etc/traefik/tls.crt"]["content"] == CERT
    assert resolve(app.url) == "https://localhost:9450/"
    assert resolve(app.urls) == {
        "web/": "https://localhost:9450/",
        "web@admin.apps.localhost/admin": "https://admin.apps.localhost:9450/admin",
    }


@pytest.mark.parametrize(
    "isolation, router_networks", [("network", ["cloudservice-dev-front"]), ("links", ["cloudservice-dev-to-web"])]
)
def test_the_router_joins_one_network_of_each_routed_service_only(mocks, platform_tls, isolation, router_networks):
    """The routed service's first network, where it reaches its containers by name: not `back`, the
    network web shares with redis (with `isolation: links`, not redis's `to-redis`)."""
    mocks.local_images[ROUTER_IMAGE] = ROUTER_ID
    services = default_services()
    services["web"]["networks"] = ["front", "back"]
    services["redis"]["networks"] = ["back"]
    config = make_config(
        target="docker",
        **REGISTRY,
        services=services,
        networks={"front": {}, "back": {}},
        routes=[{"service": "web"}],
        isolation=isolation,
    )
    deploy(config)
    router = mocks.get(CONTAINER, "cloudservice-dev-router").inputs["networksAdvanced"]
    assert [network["name"] for network in router] == router_networks


def test_without_the_router_image_the_program_says_make_platform(mocks, platform_tls):
    with pytest.raises(Exception, match="make platform"):
        deploy(routed_config())


def test_without_the_platforms_certificate_the_program_says_make_platform(mocks, tmp_path, monkeypatch):
    mocks.local_images[ROUTER_IMAGE] = ROUTER_ID
    monkeypatch.setattr(docker_router, "TLS_DIR", tmp_path / "missing")
    with pytest.raises(Exception, match="make platform"):
        deploy(routed_config())


def test_an_app_without_routes_has_no_router(mocks):
    app = deploy(make_config(target="docker", **REGISTRY))
    assert mocks.find(CONTAINER, "cloudservice-dev-router") is None
    assert resolve(app.url) == "http://127.0.0.1:8080"
