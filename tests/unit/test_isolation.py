"""components/config/isolation.py: `isolation: links` gives each service a network of its own, joined
by what links to it or depends on it; both targets then isolate those networks (Docker networks,
NetworkPolicies), so a workload reaches exactly the services it names."""

from __future__ import annotations

import pytest
from harness import REGISTRY, default_services, deploy, make_config
from recorder import CONTAINER, DEPLOYMENT, NETWORK, NETWORK_POLICY

from components.config import ConfigError

APP = "cloudservice-dev"


def linked_services() -> dict:
    """The demo app (web links redis) with a service that links nowhere and a job that waits for web."""
    services = default_services()
    services["outsider"] = {"build": "app/web", "port": 8080}
    return services


JOBS = {"smoke": {"build": "app/web", "dependsOn": {"web": "healthy"}}}


def joined(config) -> dict[str, tuple[str, ...]]:
    return {workload.name: workload.networks for workload in config.app.workloads}


def test_each_service_is_a_network_joined_by_what_links_to_it_or_depends_on_it():
    config = make_config(target="docker", **REGISTRY, services=linked_services(), jobs=JOBS, isolation="links")
    assert joined(config) == {
        "redis": ("to-redis",),
        "web": ("to-web", "to-redis"),
        "outsider": ("to-outsider",),
        "smoke": ("to-web",),
    }, "the job has no ports: it joins only what it reaches"
    assert [network.name for network in config.app.networks] == ["to-redis", "to-web", "to-outsider"]


def test_by_default_a_network_is_open_within_as_in_compose():
    config = make_config(target="docker", **REGISTRY, services=linked_services())
    assert set(joined(config).values()) == {()}, "every workload on the default network"
    assert make_config(target="docker", **REGISTRY, isolation="network").app.networks == ()


def test_a_link_never_crosses_the_apps_own_networks():
    services = linked_services()
    services["web"]["networks"] = ["front"]
    services["redis"]["networks"] = ["back"]
    config = make_config(
        target="docker", **REGISTRY, services=services, networks={"front": {}, "back": {}}, isolation="links"
    )
    assert joined(config)["web"] == ("to-web",), "web and redis share no network: Compose would not reach it either"


def test_bad_isolation_and_external_networks_are_refused_by_key():
    with pytest.raises(ConfigError) as error:
        make_config(target="docker", **REGISTRY, isolation="strict")
    assert "isolation: expected one of network, links (got 'strict')" in str(error.value)
    services = default_services()
    services["web"]["networks"] = ["shared"]
    with pytest.raises(ConfigError) as error:
        make_config(
            target="docker",
            **REGISTRY,
            services=services,
            networks={"shared": {"external": "proxy"}},
            isolation="links",
        )
    assert "isolation: expected `network` while networks.shared is external" in str(error.value)


def test_on_docker_a_container_joins_its_own_network_and_those_of_what_it_links_to(mocks):
    deploy(make_config(target="docker", **REGISTRY, services=linked_services(), isolation="links"))
    assert {r.inputs["name"] for r in mocks.of_type(NETWORK)} == {f"{APP}-to-{s}" for s in ("redis", "web", "outsider")}

    def networks_of(name):
        return [network["name"] for network in mocks.get(CONTAINER, f"{APP}-{name}").inputs["networksAdvanced"]]

    assert networks_of("web") == [f"{APP}-to-web", f"{APP}-to-redis"]
    assert networks_of("redis") == [f"{APP}-to-redis"]
    assert networks_of("outsider") == [f"{APP}-to-outsider"], "outsider shares no network with redis"


def test_on_kubernetes_a_policy_per_service_admits_what_links_to_it(mocks):
    deploy(make_config(target="kubernetes", **REGISTRY, services=linked_services(), isolation="links"))
    policies = {r.name: r.inputs["spec"] for r in mocks.of_type(NETWORK_POLICY)}
    to_redis = {"matchLabels": {"network.cloudservice.dev/to-redis": "true", "cloudservice.dev/stack": "dev"}}
    assert policies[f"{APP}-namespace-network-to-redis"]["podSelector"] == to_redis
    assert policies[f"{APP}-namespace-network-to-redis"]["ingress"] == [{"from": [{"podSelector": to_redis}]}]

    def networks_of_pods(name):
        labels = mocks.get(DEPLOYMENT, f"{APP}-{name}").inputs["spec"]["template"]["metadata"]["labels"]
        return sorted(key.split("/")[1] for key in labels if key.startswith("network.cloudservice.dev/"))

    assert networks_of_pods("web") == ["to-redis", "to-web"]
    assert networks_of_pods("outsider") == ["to-outsider"]
    namespace_wide = policies[f"{APP}-namespace-same-namespace-only"]["podSelector"]["matchExpressions"]
    assert len(namespace_wide) == 3, "the namespace-wide policy selects pods of no network: none here"
