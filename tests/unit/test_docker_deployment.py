"""components/docker_deployment.py: one hardened, health-checked container per service."""

from __future__ import annotations

import pulumi
import pytest

from components.docker_deployment import DockerDeployment, DockerDeploymentArgs
from harness import (
    CONTAINER, VOLUME, default_services, docker_config, fake_digest, plaintext_occurrences, resolve, run,
)
from pulumi.runtime import rpc

COMPONENT = "cloudservice:index:DockerDeployment"
IMAGES = {"web": "sha256:" + "1" * 64, "redis": "sha256:" + "2" * 64}
STACK_LABELS = {
    "app.kubernetes.io/part-of": "cloudservice", "app.kubernetes.io/managed-by": "pulumi",
    "cloudservice.dev/stack": "dev",
}


def deploy(mocks, config=None, images=None, network="cloudservice-dev"):
    config = config or docker_config()
    deployment = run(lambda: DockerDeployment(
        "docker", DockerDeploymentArgs(config=config, network=network, images=images or IMAGES)))
    return deployment, {c.name: c for c in mocks.of_type(CONTAINER)}


def as_dict(labels: list[dict]) -> dict:
    return {item["label"]: item["value"] for item in labels}


def test_one_container_per_service_under_the_component(mocks):
    _, containers = deploy(mocks)
    assert set(containers) == {"web", "redis"}
    component = mocks.get(COMPONENT, "docker")
    for name, container in containers.items():
        assert mocks.parent_of(container) is component
        assert container.inputs["name"] == f"cloudservice-dev-{name}"
        assert container.inputs["hostname"] == name
        assert container.inputs["image"] == IMAGES[name]
        assert container.inputs["restart"] == "unless-stopped"
        assert container.inputs["networksAdvanced"] == [{"name": "cloudservice-dev", "aliases": [name]}]
        assert as_dict(container.inputs["labels"]) == {**STACK_LABELS, "app.kubernetes.io/name": name}
        assert container.delete_before_replace, "a fixed name and host port cannot exist twice"


@pytest.mark.parametrize("name,user,memory", [("web", "10001:10001", 96), ("redis", "10002:10002", 128)])
def test_containers_are_hardened(mocks, name, user, memory):
    _, containers = deploy(mocks)
    inputs = containers[name].inputs
    assert inputs["user"] == user
    assert inputs["readOnly"] is True
    assert inputs["tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=16m"}
    assert inputs["capabilities"] == {"drops": ["ALL"]}
    assert inputs["securityOpts"] == ["no-new-privileges:true"]
    assert inputs["memory"] == memory
    assert inputs["cpus"] == "0.5"
    assert not inputs.get("privileged")


def test_writable_root_gets_no_tmpfs(mocks):
    services = default_services()
    services["web"]["readOnly"] = False
    _, containers = deploy(mocks, docker_config(services=services))
    assert containers["web"].inputs["readOnly"] is False
    assert "tmpfs" not in containers["web"].inputs


def test_only_published_services_get_a_loopback_host_port(mocks):
    deployment, containers = deploy(mocks)
    assert containers["web"].inputs["ports"] == [{"internal": 8080, "external": 8080, "ip": "127.0.0.1"}]
    assert containers["redis"].inputs["ports"] == []
    assert resolve(deployment.urls) == {"web": "http://127.0.0.1:8080"}


def test_port_offset_moves_host_ports_only(mocks):
    deployment, containers = deploy(mocks, docker_config(portOffset=100))
    assert containers["web"].inputs["ports"] == [{"internal": 8080, "external": 8180, "ip": "127.0.0.1"}]
    assert resolve(deployment.urls) == {"web": "http://127.0.0.1:8180"}


def test_health_checks_gate_the_rollout(mocks):
    _, containers = deploy(mocks)
    web, redis = containers["web"].inputs, containers["redis"].inputs
    assert redis["healthcheck"]["tests"] == ["CMD", "redis-cli", "ping"]
    assert web["healthcheck"]["tests"][0] == "CMD-SHELL"
    assert "http://127.0.0.1:8080/healthz" in web["healthcheck"]["tests"][1]
    for inputs in (web, redis):
        assert inputs["wait"] is True and inputs["waitTimeout"] == 90
        assert {"interval", "timeout", "retries"} <= set(inputs["healthcheck"])


def test_service_without_health_does_not_wait(mocks):
    services = default_services()
    del services["web"]["health"]
    _, containers = deploy(mocks, docker_config(services=services))
    assert "healthcheck" not in containers["web"].inputs
    assert containers["web"].inputs["wait"] is False


def test_volume_keeps_state_across_container_replacement(mocks):
    _, containers = deploy(mocks)
    volume = mocks.get(VOLUME, "redis-data")
    assert mocks.parent_of(volume).type == COMPONENT
    assert volume.inputs["name"] == "cloudservice-dev-redis-data"
    assert as_dict(volume.inputs["labels"])["app.kubernetes.io/name"] == "redis"
    assert containers["redis"].inputs["volumes"] == [{"volumeName": "cloudservice-dev-redis-data", "containerPath": "/data"}]
    assert containers["web"].inputs["volumes"] == []
    assert len(mocks.of_type(VOLUME)) == 1


def test_links_give_host_and_port_and_order_the_containers(mocks):
    _, containers = deploy(mocks)
    assert containers["web"].inputs["envs"] == ["REDIS_HOST=redis", "REDIS_PORT=6379"]
    assert containers["redis"].inputs["envs"] == []
    assert containers["redis"].urn in containers["web"].dependencies


def test_env_and_secret_env_are_passed_and_secrets_stay_secret(mocks):
    services = default_services()
    services["web"]["env"] = {"MODE": "production"}
    services["web"]["secretEnv"] = {"APP_SECRET": "appSecret"}
    _, containers = deploy(mocks, docker_config(services=services, appSecret="app-secret-value"))
    envs = containers["web"].inputs["envs"]
    assert rpc.is_rpc_secret(envs), "the env list holding a secret is sent as a secret"
    assert rpc.unwrap_rpc_secret(envs) == ["APP_SECRET=app-secret-value", "MODE=production", "REDIS_HOST=redis", "REDIS_PORT=6379"]
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, "app-secret-value") == [], resource.name


def test_images_are_what_the_caller_resolved(mocks):
    images = {"web": pulumi.Output.from_input(f"localhost:5000/cloudservice/web@{fake_digest('w')}"),
              "redis": f"localhost:5000/cloudservice/redis@{fake_digest('r')}"}
    _, containers = deploy(mocks, images=images)
    assert containers["web"].inputs["image"] == f"localhost:5000/cloudservice/web@{fake_digest('w')}"
    assert containers["redis"].inputs["image"] == f"localhost:5000/cloudservice/redis@{fake_digest('r')}"


def test_network_output_is_used_for_every_container(mocks):
    _, containers = deploy(mocks, network=pulumi.Output.from_input("custom-net"))
    assert {c.inputs["networksAdvanced"][0]["name"] for c in containers.values()} == {"custom-net"}
