"""components/cloudservice.py: the whole resource graph per target, image sources, and secrets."""

from __future__ import annotations

import json
import os

import pulumi
import pytest

from components.cloudservice import CloudService, CloudServiceArgs, _image_from_stack
from components.image import content_tag
from harness import (
    CONTAINER, DEPLOYMENT, DOCKER_PROVIDER, K8S_PROVIDER, NETWORK, REGISTRY, REGISTRY_IMAGE, REMOTE_IMAGE,
    STACK_REFERENCE, VOLUME, as_pulumi_config, docker_config, fake_digest, image_id, install_mocks, is_secret,
    kubernetes_config, make_config, plaintext_occurrences, registry_digest, resolve, run, stack_values,
)
from pulumi.runtime import rpc

COMPONENT = "cloudservice:index:CloudService"
PASSWORD = REGISTRY["registryPassword"]
REPO = "localhost:5000/cloudservice"


def deploy(config):
    return run(lambda: CloudService(config.name_prefix, CloudServiceArgs(config=config)))


def tag_of(config, service: str) -> str:
    return f"{REPO}/{service}:{content_tag(config.service(service).build)}"


def docker_resources(mocks):
    return [r for r in mocks.resources if r.type.startswith("docker:")]


def kubernetes_resources(mocks):
    return [r for r in mocks.resources if r.type.startswith("kubernetes:")]


# -- docker target -------------------------------------------------------------------------------


def test_docker_target_graph(mocks):
    config = docker_config()
    app = deploy(config)
    root = mocks.get(COMPONENT, "cloudservice-dev")
    provider = mocks.get(DOCKER_PROVIDER, "docker")
    assert mocks.parent_of(provider) is root
    assert {(r.type, r.name) for r in mocks.children_of(root)} == {
        (DOCKER_PROVIDER, "docker"), ("cloudservice:index:ContainerImage", "web"),
        ("cloudservice:index:ContainerImage", "redis"), ("cloudservice:index:AppNetwork", "network"),
        ("cloudservice:index:DockerDeployment", "docker"),
    }
    assert kubernetes_resources(mocks) == [] and mocks.of_type(K8S_PROVIDER) == []
    assert {(r.type, r.name) for r in docker_resources(mocks)} == {
        (REMOTE_IMAGE, "web"), (REMOTE_IMAGE, "redis"), (REGISTRY_IMAGE, "web"), (REGISTRY_IMAGE, "redis"),
        (NETWORK, "network"), (VOLUME, "redis-data"), (CONTAINER, "web"), (CONTAINER, "redis"),
    }
    for resource in docker_resources(mocks):
        assert mocks.provider_of(resource) is provider, f"{resource.type} {resource.name} uses the stack's engine"
    assert resolve(app.network) == "cloudservice-dev"
    assert resolve(app.urls) == {"web": "http://127.0.0.1:8080"}
    assert resolve(app.url) == "http://127.0.0.1:8080"
    assert app.namespace is None and app.services is None


def test_docker_containers_run_the_built_images(mocks):
    config = docker_config()
    app = deploy(config)
    for service in ("web", "redis"):
        name = tag_of(config, service)
        assert mocks.get(REMOTE_IMAGE, service).inputs["name"] == name
        assert mocks.get(CONTAINER, service).inputs["image"] == image_id(name)
        assert mocks.get(CONTAINER, service).inputs["networksAdvanced"][0]["name"] == "cloudservice-dev"
    images = resolve(app.images)
    assert images == {s: f"{REPO}/{s}@{registry_digest(tag_of(config, s))}" for s in ("web", "redis")}
    assert resolve(app.digests) == {s: registry_digest(tag_of(config, s)) for s in ("web", "redis")}


def test_docker_containers_wait_for_the_push(mocks):
    """A failed push must leave the running containers alone: they depend on the pushed image."""
    deploy(docker_config())
    for service in ("web", "redis"):
        assert mocks.get(REGISTRY_IMAGE, service).urn in mocks.get(CONTAINER, service).dependencies


def test_docker_host_and_registry_auth_configure_the_provider(mocks):
    deploy(docker_config(dockerHost="unix:///run/user/1000/docker.sock"))
    provider = mocks.get(DOCKER_PROVIDER, "docker")
    assert provider.inputs["host"] == "unix:///run/user/1000/docker.sock"
    auth = provider.inputs["registryAuth"]
    assert rpc.is_rpc_secret(auth), "registry auth (with the password) is a secret input"
    assert json.loads(rpc.unwrap_rpc_secret(auth)) == [
        {"address": "http://localhost:5000", "username": "cloudservice", "password": PASSWORD}
    ]


def test_without_push_nothing_is_pushed(mocks):
    config = make_config(target="docker")
    app = deploy(config)
    assert mocks.of_type(REGISTRY_IMAGE) == []
    assert "registryAuth" not in mocks.get(DOCKER_PROVIDER, "docker").inputs
    assert resolve(app.images) == {s: f"cloudservice/{s}:{content_tag(config.service(s).build)}" for s in ("web", "redis")}
    assert resolve(app.digests) == {"web": None, "redis": None}


def test_service_with_an_image_reference_is_pulled_not_built(mocks):
    services = json.loads(as_pulumi_config(stack_values("dev")["services"]))
    services["redis"] = {**services["redis"], "image": "redis:7-bookworm"}
    del services["redis"]["build"]
    deploy(docker_config(services=services))
    redis = mocks.get(REMOTE_IMAGE, "redis")
    assert redis.inputs["name"] == "redis:7-bookworm" and "build" not in redis.inputs
    assert mocks.find(REGISTRY_IMAGE, "redis") is None
    assert mocks.get(CONTAINER, "redis").inputs["image"] == image_id("redis:7-bookworm")


# -- kubernetes target ---------------------------------------------------------------------------


def test_kubernetes_target_graph(mocks):
    config = kubernetes_config(replicas=2)
    app = deploy(config)
    root = mocks.get(COMPONENT, "cloudservice-dev")
    cluster, engine = mocks.get(K8S_PROVIDER, "kubernetes"), mocks.get(DOCKER_PROVIDER, "docker")
    assert mocks.parent_of(cluster) is root and mocks.parent_of(engine) is root
    assert mocks.parent_of(mocks.get("cloudservice:index:KubernetesDeployment", "kubernetes")) is root
    assert mocks.of_type(CONTAINER) == [] and mocks.of_type(NETWORK) == [] and mocks.of_type(VOLUME) == []
    for resource in kubernetes_resources(mocks):
        assert mocks.provider_of(resource) is cluster, f"{resource.type} {resource.name} goes to the stack's cluster"
    for resource in docker_resources(mocks):
        assert mocks.provider_of(resource) is engine, "images are built and pushed with the docker engine"
    assert resolve(app.namespace) == "cloudservice-dev"
    assert resolve(app.services) == {"web": "web", "redis": "redis"}
    assert app.network is None
    assert resolve(app.url).startswith("http://127.0.0.1:")


def test_pods_run_the_pushed_digests(mocks):
    config = kubernetes_config()
    app = deploy(config)
    for service in ("web", "redis"):
        pushed = mocks.get(REGISTRY_IMAGE, service)
        assert pushed.inputs["name"] == tag_of(config, service)
        digest = pushed.outputs["sha256Digest"]
        deployment = mocks.get(DEPLOYMENT, service)
        image = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"{REPO}/{service}@{digest}"
        assert pushed.urn in deployment.dependencies
    assert resolve(app.images) == {s: f"{REPO}/{s}@{registry_digest(tag_of(config, s))}" for s in ("web", "redis")}


def test_kubeconfig_and_context_configure_the_cluster_provider(mocks, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "ci").write_text("apiVersion: v1\nkind: Config\n")
    deploy(kubernetes_config(kubernetes={"kubeconfig": "~/.kube/ci", "context": "ci-admin"}))
    cluster = mocks.get(K8S_PROVIDER, "kubernetes")
    assert cluster.inputs["kubeconfig"] == os.path.join(str(tmp_path), ".kube", "ci")
    assert cluster.inputs["context"] == "ci-admin"


def test_pinned_images_skip_the_build(mocks):
    pinned = f"{REPO}/web@{fake_digest('rollback')}"
    config = kubernetes_config(images={"web": pinned})
    app = deploy(config)
    assert mocks.find(REMOTE_IMAGE, "web") is None and mocks.find(REGISTRY_IMAGE, "web") is None
    assert mocks.find(REGISTRY_IMAGE, "redis") is not None, "unpinned services still build"
    assert mocks.get(DEPLOYMENT, "web").inputs["spec"]["template"]["spec"]["containers"][0]["image"] == pinned
    assert resolve(app.images)["web"] == pinned
    assert resolve(app.digests)["web"] == fake_digest("rollback")


def test_pinned_images_on_docker_are_pulled_not_built(mocks):
    pinned = f"{REPO}/web@{fake_digest('rollback')}"
    deploy(docker_config(images={"web": pinned}))
    web = mocks.get(REMOTE_IMAGE, "web")
    assert web.inputs["name"] == pinned and "build" not in web.inputs
    assert mocks.find(REGISTRY_IMAGE, "web") is None
    assert mocks.get(CONTAINER, "web").inputs["image"] == image_id(pinned)


PROMOTED = {s: f"{REPO}/{s}@{fake_digest('staging-' + s)}" for s in ("web", "redis")}


def test_images_from_another_stack_are_promoted_without_building(mocks):
    mocks = install_mocks(stack="prod", stack_outputs={"organization/cloudservice/staging": {"images": PROMOTED}})
    values = {**stack_values("prod"), "registryPassword": PASSWORD}
    config = make_config("prod", **values)
    app = deploy(config)
    reference = mocks.get(STACK_REFERENCE, "organization/cloudservice/staging")
    assert reference.inputs["name"] == "organization/cloudservice/staging"
    assert mocks.parent_of(reference).type == COMPONENT
    assert mocks.of_type(REMOTE_IMAGE) == [] and mocks.of_type(REGISTRY_IMAGE) == [], "prod never builds"
    for service in ("web", "redis"):
        deployment = mocks.get(DEPLOYMENT, service)
        assert deployment.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == PROMOTED[service]
        assert deployment.inputs["metadata"]["namespace"] == "cloudservice-prod"
    assert mocks.get(DEPLOYMENT, "web").inputs["spec"]["replicas"] == 3
    assert mocks.get(DEPLOYMENT, "redis").inputs["spec"]["replicas"] == 1
    assert resolve(app.images) == PROMOTED
    assert resolve(app.digests) == {s: fake_digest("staging-" + s) for s in ("web", "redis")}


def test_images_from_a_stack_missing_a_service_fails(mocks):
    """The deployment cannot proceed with a guess: a clear error names the stack and the service."""
    install_mocks(stack="prod", stack_outputs={"organization/cloudservice/staging": {"images": {"web": PROMOTED["web"]}}})
    source = "organization/cloudservice/staging"
    web = run(lambda: _image_from_stack(pulumi.StackReference(source), source, "web"))
    assert resolve(web) == PROMOTED["web"]
    with pytest.raises(ValueError, match=f"imagesFrom: stack {source} exports no image for service 'redis'"):
        run(lambda: _image_from_stack(pulumi.StackReference(source), source, "redis"))


# -- secrets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_secrets_never_reach_an_input_in_plaintext(mocks, target):
    services = json.loads(json.dumps(stack_values("dev")["services"]))
    services["web"]["secretEnv"] = {"APP_SECRET": "appSecret"}
    config = make_config(target=target, services=services, appSecret="app-secret-value", **REGISTRY)
    assert is_secret(config.registry.password) and is_secret(config.secrets["appSecret"])
    deploy(config)
    assert mocks.resources
    for resource in mocks.resources:
        for secret in (PASSWORD, "app-secret-value"):
            assert plaintext_occurrences(resource.inputs, secret) == [], f"{secret!r} in {resource.type} {resource.name}"


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_every_resource_descends_from_the_app(mocks, target):
    deploy(make_config(target=target, **REGISTRY))
    root = mocks.get(COMPONENT, "cloudservice-dev")
    for resource in mocks.resources:
        node = resource
        while node is not root:
            assert node.parent, f"{resource.type} {resource.name} is outside CloudService"
            node = mocks.by_urn(node.parent) if node.parent != root.urn else root


def test_resource_names_are_unique_per_type(mocks):
    deploy(kubernetes_config())
    keys = [(r.type, r.name) for r in mocks.resources]
    assert len(keys) == len(set(keys))


def test_secret_output_of_the_config_is_a_pulumi_secret(mocks):
    config = docker_config()
    assert isinstance(config.registry.password, pulumi.Output)
    assert is_secret(config.registry.password)
