"""components/network.py: the app's user-defined bridge network."""

import pulumi
import pulumi_docker as docker
from recorder import DOCKER_PROVIDER, NETWORK, resolve, run

from components.network import AppNetwork, AppNetworkArgs, docker_labels

LABELS = {"cloudservice.dev/stack": "dev", "app.kubernetes.io/part-of": "cloudservice"}


def test_network_is_a_labelled_bridge(mocks):
    network = run(lambda: AppNetwork("network", AppNetworkArgs(name="cloudservice-dev", labels=LABELS)))
    created = mocks.get(NETWORK, "network")
    assert created.inputs["name"] == "cloudservice-dev"
    assert created.inputs["driver"] == "bridge"
    assert created.inputs["labels"] == [
        {"label": "app.kubernetes.io/part-of", "value": "cloudservice"},
        {"label": "cloudservice.dev/stack", "value": "dev"},
    ]
    assert mocks.parent_of(created).type == "cloudservice:index:AppNetwork"
    assert resolve(network.name) == "cloudservice-dev"
    assert created.delete_timeout == "3m", "a network waits for its endpoints' teardown beyond the provider's 30 s"


def test_network_uses_the_given_provider(mocks):
    def program():
        provider = docker.Provider("docker", host="tcp://127.0.0.1:2375")
        return AppNetwork("network", AppNetworkArgs(name="n"), opts=pulumi.ResourceOptions(provider=provider))

    run(program)
    assert mocks.provider_of(mocks.get(NETWORK, "network")) is mocks.get(DOCKER_PROVIDER, "docker")


def test_docker_labels_are_sorted_label_value_pairs():
    labels = docker_labels({"b": "2", "a": "1"}, docker.NetworkLabelArgs)
    assert [(label.label, label.value) for label in labels] == [("a", "1"), ("b", "2")]
