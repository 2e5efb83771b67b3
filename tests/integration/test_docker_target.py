"""The dev stack (local Docker target) for real: preview, up, no-op, update, rollback, destroy.

One stack made from the committed Pulumi.dev.yaml walks through the whole lifecycle; the tests
run in order and each builds on the state the previous one left.
"""

from collections import Counter

import docker
import pytest
from pulumi import automation as auto

from components.conventions import STACK_LABEL
from support.testing import (
    changed_resources,
    edit_app_version,
    free_port,
    get_json,
    registry_manifest_status,
    step_events,
    wait_for,
)


def planned_steps(events) -> Counter:
    """(operation, resource type) of every step the engine announced."""
    return Counter((m.op, m.type) for m in step_events(events))


class Lifecycle:
    """What the tests learn along the way."""

    def __init__(self, stack: auto.Stack, host_port: int):
        self.stack = stack
        self.host_port = host_port
        self.outputs: dict = {}
        self.first_images: dict = {}
        self.second_web_image = ""


@pytest.fixture(scope="module")
def dev(project, registry, docker_client):
    host_port = free_port()
    stack = project.stack(
        "dev", config={"portOffset": str(host_port - 8080)}, secrets={"registryPassword": registry.password}
    )
    lifecycle = Lifecycle(stack, host_port)
    yield lifecycle
    stack.destroy()
    stack.workspace.remove_stack(stack.name)


def containers(docker_client, stack_name):
    """The stack's service containers (not the one-shot step that prepares redis's new volume)."""
    labelled = docker_client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={stack_name}"})
    return [container for container in labelled if "app.kubernetes.io/name" in container.labels]


def test_preview_plans_the_app(dev):
    events = []
    result = dev.stack.preview(on_event=events.append)
    steps = planned_steps(events)
    for resource_type, count in {
        "docker:index/remoteImage:RemoteImage": 2,
        "docker:index/registryImage:RegistryImage": 2,
        "docker:index/network:Network": 1,
        "docker:index/volume:Volume": 1,
        "docker:index/container:Container": 3,  # web, redis, and the step that prepares redis's new volume
        "cloudservice:index:CloudService": 1,
    }.items():
        assert steps[("create", resource_type)] == count, (resource_type, steps)
    assert set(result.change_summary) == {"create"}


def test_up_serves_the_app_over_the_network(dev, docker_client, registry):
    result = dev.stack.up()
    dev.outputs = {key: value.value for key, value in result.outputs.items()}
    url = dev.outputs["url"]
    assert url == f"http://127.0.0.1:{dev.host_port}"

    status, home = get_json(url + "/")
    assert status == 200 and home["message"] == "Hello from cloudservice" and home["version"] == "1"
    # A write through the web service lands in Redis, reached by name over the app network.
    assert get_json(url + "/notes", "POST", b"first note")[0] == 201
    assert get_json(url + "/notes")[1] == {"notes": ["first note"]}

    running = {c.labels["app.kubernetes.io/name"]: c for c in containers(docker_client, dev.stack.name)}
    assert set(running) == {"web", "redis"}
    network = dev.outputs["network"]
    for container in running.values():
        assert container.status == "running"
        assert network in container.attrs["NetworkSettings"]["Networks"]
    assert running["web"].attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == str(dev.host_port)

    dev.first_images = dev.outputs["images"]
    for service, reference in dev.first_images.items():
        repository, _, digest = reference.partition("@")
        assert repository == f"localhost:5000/cloudservice/{service}" and digest.startswith("sha256:")
        path = repository.split("/", 1)[1]
        assert registry_manifest_status(registry, path, digest, (registry.username, registry.password)) == 200


def test_no_changes_right_after_up(dev, docker_client):
    image_ids = {c.name: c.image.id for c in containers(docker_client, dev.stack.name)}
    dev.stack.preview(expect_no_changes=True)
    result = dev.stack.up()
    assert set(result.summary.resource_changes) == {"same"}
    assert {c.name: c.image.id for c in containers(docker_client, dev.stack.name)} == image_ids


def test_the_state_traces_each_resource_to_the_program_alone(dev):
    # The engine writes the whole state at every step: the language host's own frames below the
    # program (its gRPC thread, event loop and paths) would be half of it.
    resources = dev.stack.export_stack().deployment["resources"]
    traces = {r["urn"]: [frame.get("sourcePosition", "") for frame in r.get("stackTrace", [])] for r in resources}
    traced = {urn: trace for urn, trace in traces.items() if trace}
    untraced = {urn.rpartition("::")[0].rpartition("::")[2] for urn in set(traces) - set(traced)}
    assert untraced <= {"pulumi:pulumi:Stack", "pulumi:providers:pulumi-python"}, untraced
    for urn, trace in traced.items():
        assert trace[-1].startswith("project:///__main__.py#"), (urn, trace)


def test_changed_source_rebuilds_and_replaces_only_the_web_service(dev, project, docker_client, registry):
    before = {c.labels["app.kubernetes.io/name"]: c.id for c in containers(docker_client, dev.stack.name)}
    edit_app_version(project, "2")

    events = []
    result = dev.stack.up(on_event=events.append)
    changed = changed_resources(events)
    web = f"cloudservice-{dev.stack.name}-web"
    assert changed == {
        ("docker:index/remoteImage:RemoteImage", web),
        ("docker:index/registryImage:RegistryImage", web),
        ("docker:index/container:Container", web),
        ("pulumi-python:dynamic/cloudservice:RolloutCheck", f"{web}-ready"),  # the new container is waited for
    }, changed
    images = result.outputs["images"].value
    assert images["web"] != dev.first_images["web"] and images["redis"] == dev.first_images["redis"]
    dev.second_web_image = images["web"]

    after = {c.labels["app.kubernetes.io/name"]: c.id for c in containers(docker_client, dev.stack.name)}
    assert after["redis"] == before["redis"] and after["web"] != before["web"]
    url = dev.outputs["url"]
    assert get_json(url + "/")[1]["version"] == "2"
    assert get_json(url + "/notes")[1] == {"notes": ["first note"]}


def test_rollback_by_config_brings_the_previous_image_back(dev):
    dev.stack.set_config("cloudservice:images.web", auto.ConfigValue(dev.first_images["web"]), path=True)
    result = dev.stack.up()
    assert result.outputs["images"].value["web"] == dev.first_images["web"]
    url = dev.outputs["url"]
    wait_for(lambda: get_json(url + "/")[1]["version"] == "1", timeout=30, what="the rolled back app")
    assert get_json(url + "/notes")[1] == {"notes": ["first note"]}


def test_destroy_leaves_nothing_but_the_pushed_images(dev, docker_client, registry):
    pushed = [*dev.first_images.values(), dev.second_web_image]
    label = {"label": f"{STACK_LABEL}={dev.stack.name}"}
    made = {
        "containers": [c.name for c in containers(docker_client, dev.stack.name)],
        "networks": [n.name for n in docker_client.networks.list(filters=label)],
        "volumes": [v.name for v in docker_client.volumes.list(filters=label)],
    }
    assert [len(names) for names in made.values()] == [2, 1, 1], made
    assert made["networks"] == [dev.outputs["network"]]

    dev.stack.destroy()
    for kind, names in made.items():
        for name in names:
            with pytest.raises(docker.errors.NotFound):
                getattr(docker_client, kind).get(name)
    for reference in pushed:
        repository, _, digest = reference.partition("@")
        path = repository.split("/", 1)[1]
        assert registry_manifest_status(registry, path, digest, (registry.username, registry.password)) == 200
