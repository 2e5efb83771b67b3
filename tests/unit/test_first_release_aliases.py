"""An upgrade from the first release keeps every URN: each resource that release declared (one
DockerDeployment or KubernetesDeployment component for all services, children with bare names) is
found again through the aliases the per-service components send, so the engine updates it in place
instead of replacing it (and, for a volume, PVC or Service, losing its data or address).

The first release's URNs are written out below (the contract), and derived again by running that
release's own components, taken from git history, under the same mocks."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from harness import PROJECT, REGISTRY, ROOT, default_services, deploy, make_config
from recorder import (
    APP_NETWORK,
    CLOUD_SERVICE,
    CONTAINER,
    CONTAINER_IMAGE,
    DEPLOYMENT,
    DOCKER_PROVIDER,
    K8S_PROVIDER,
    NAMESPACE,
    NETWORK,
    PVC,
    REGISTRY_IMAGE,
    REMOTE_IMAGE,
    SECRET,
    SERVICE,
    VOLUME,
    install_mocks,
    run,
)

APP = "urn:pulumi:dev::cloudservice::cloudservice:index:CloudService"
DOCKER_DEPLOYMENT = f"{APP}$cloudservice:index:DockerDeployment"
KUBERNETES_DEPLOYMENT = f"{APP}$cloudservice:index:KubernetesDeployment"
IMAGES = {
    (typ, f"cloudservice-dev-{service}"): f"{APP}$cloudservice:index:ContainerImage{child}::{service}"
    for service in ("web", "redis")
    for typ, child in (
        (CONTAINER_IMAGE, ""),
        (REMOTE_IMAGE, f"${REMOTE_IMAGE}"),
        (REGISTRY_IMAGE, f"${REGISTRY_IMAGE}"),
    )
}
FIRST_RELEASE = {
    "docker": {
        (DOCKER_PROVIDER, "cloudservice-dev-docker"): f"{APP}$pulumi:providers:docker::docker",
        **IMAGES,
        (APP_NETWORK, "cloudservice-dev-network"): f"{APP}$cloudservice:index:AppNetwork::network",
        (
            NETWORK,
            "cloudservice-dev-network",
        ): f"{APP}$cloudservice:index:AppNetwork$docker:index/network:Network::network",
        (VOLUME, "cloudservice-dev-redis-data"): f"{DOCKER_DEPLOYMENT}$docker:index/volume:Volume::redis-data",
        (CONTAINER, "cloudservice-dev-web"): f"{DOCKER_DEPLOYMENT}$docker:index/container:Container::web",
        (CONTAINER, "cloudservice-dev-redis"): f"{DOCKER_DEPLOYMENT}$docker:index/container:Container::redis",
    },
    "kubernetes": {
        (DOCKER_PROVIDER, "cloudservice-dev-docker"): f"{APP}$pulumi:providers:docker::docker",
        (K8S_PROVIDER, "cloudservice-dev-kubernetes"): f"{APP}$pulumi:providers:kubernetes::kubernetes",
        **IMAGES,
        (NAMESPACE, "cloudservice-dev-namespace"): f"{KUBERNETES_DEPLOYMENT}$kubernetes:core/v1:Namespace::namespace",
        (
            SECRET,
            "cloudservice-dev-namespace-registry-credentials",
        ): f"{KUBERNETES_DEPLOYMENT}$kubernetes:core/v1:Secret::registry-credentials",
        (
            SECRET,
            "cloudservice-dev-namespace-app-secrets",
        ): f"{KUBERNETES_DEPLOYMENT}$kubernetes:core/v1:Secret::app-secrets",
        (
            PVC,
            "cloudservice-dev-redis-data",
        ): f"{KUBERNETES_DEPLOYMENT}$kubernetes:core/v1:PersistentVolumeClaim::redis-data",
        (DEPLOYMENT, "cloudservice-dev-web"): f"{KUBERNETES_DEPLOYMENT}$kubernetes:apps/v1:Deployment::web",
        (DEPLOYMENT, "cloudservice-dev-redis"): f"{KUBERNETES_DEPLOYMENT}$kubernetes:apps/v1:Deployment::redis",
        (SERVICE, "cloudservice-dev-web"): f"{KUBERNETES_DEPLOYMENT}$kubernetes:core/v1:Service::web",
        (SERVICE, "cloudservice-dev-redis"): f"{KUBERNETES_DEPLOYMENT}$kubernetes:core/v1:Service::redis",
    },
}
KEEPS_DATA_OR_ADDRESS = (VOLUME, PVC, SERVICE, NAMESPACE, NETWORK)


def first_release_values(target: str) -> dict:
    """A config the first release accepted too: its app, pushed, with the app secret it knew."""
    services = default_services()
    services["web"]["secretEnv"] = {"APP_SECRET": "appSecret"}
    return {"target": target, "services": services, "appSecret": "app-secret-value", **REGISTRY}


def declare(mocks, target: str):
    deploy(make_config(**first_release_values(target)))
    return {(r.type, r.name): r for r in mocks.resources if r.type != CLOUD_SERVICE}


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_each_resource_of_the_first_release_is_aliased(mocks, target):
    resources = declare(mocks, target)
    for key, old_urn in FIRST_RELEASE[target].items():
        assert key in resources, f"{key} is declared"
        assert old_urn in mocks.aliases_of(resources[key]), f"{key} keeps {old_urn}"
    for typ in KEEPS_DATA_OR_ADDRESS:
        assert all(key in FIRST_RELEASE[target] for key in resources if key[0] == typ), f"every {typ} is in the table"


def test_the_volume_keeps_its_urn_through_its_alias(mocks):
    """The example: the Docker volume of redis, a child of DockerDeployment "docker" in the first release."""
    resources = declare(mocks, "docker")
    volume = resources[(VOLUME, "cloudservice-dev-redis-data")]
    assert (
        volume.urn == f"{APP}$cloudservice:index:DockerService$docker:index/volume:Volume::cloudservice-dev-redis-data"
    )
    assert (
        "urn:pulumi:dev::cloudservice::cloudservice:index:CloudService$cloudservice:index:DockerDeployment"
        "$docker:index/volume:Volume::redis-data" in mocks.aliases_of(volume)
    )


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_no_two_resources_claim_one_old_urn(mocks, target):
    """The engine refuses two resources aliased to the same old one."""
    resources = declare(mocks, target)
    claimed: dict[str, tuple] = {}
    for key, resource in resources.items():
        for alias in mocks.aliases_of(resource):
            assert alias not in claimed, f"{key} and {claimed.get(alias)} both claim {alias}"
            claimed[alias] = key
        assert resource.urn not in claimed or claimed[resource.urn] == key


# -- the first release itself, from git history ------------------------------------------------------


def first_release_revision() -> str:
    """The commit before the one that replaced DockerDeployment by per-service components."""
    replaced_in = subprocess.run(
        ["git", "-C", ROOT, "rev-list", "-1", "HEAD", "--", "components/docker_deployment.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert replaced_in, "git history has the release with components/docker_deployment.py"
    return f"{replaced_in}^"


@pytest.fixture(scope="module")
def first_release_components(tmp_path_factory):
    """The first release's components/ as the package `first_release.components`."""
    revision = first_release_revision()
    root = tmp_path_factory.mktemp("first_release")
    package = root / "first_release" / "components"
    package.mkdir(parents=True)
    (root / "first_release" / "__init__.py").write_text("")
    names = subprocess.run(
        ["git", "-C", ROOT, "ls-tree", "--name-only", revision, "components/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in names:
        source = subprocess.run(
            ["git", "-C", ROOT, "show", f"{revision}:{name}"], capture_output=True, text=True, check=True
        ).stdout
        (package / name.rsplit("/", 1)[1]).write_text(source)
    sys.path.insert(0, str(root))
    try:
        yield (
            importlib.import_module("first_release.components.cloudservice"),
            importlib.import_module("first_release.components.config"),
        )
    finally:
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m.startswith("first_release")]:
            del sys.modules[module]


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_every_urn_of_the_first_release_is_kept(first_release_components, target):
    cloudservice, config = first_release_components
    old_mocks = install_mocks()
    old_config = config.parse_stack_config(first_release_values(target), project=PROJECT, stack="dev", base_dir=ROOT)
    run(lambda: cloudservice.CloudService(old_config.name_prefix, cloudservice.CloudServiceArgs(config=old_config)))
    old = {r.urn for r in old_mocks.resources if r.custom or r.type.startswith("pulumi:providers:")}
    old |= {r.urn for r in old_mocks.resources if r.type in (CLOUD_SERVICE, CONTAINER_IMAGE, APP_NETWORK)}

    new_mocks = install_mocks()
    new = declare(new_mocks, target)
    kept = {r.urn for r in new.values()} | {alias for r in new.values() for alias in new_mocks.aliases_of(r)}
    kept.add(new_mocks.get(CLOUD_SERVICE, "cloudservice-dev").urn)
    assert old - kept == set(), "resources of the first release the upgrade would replace"
    assert old == set(FIRST_RELEASE[target].values()) | {f"{APP}::cloudservice-dev"}, (
        "the table above is the first release"
    )
