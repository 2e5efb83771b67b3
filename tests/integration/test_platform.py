"""The offline platform: the toolchain built from Go modules, the engine, the authenticated registry."""

import subprocess
import textwrap
import uuid

import pytest
from pulumi import automation as auto

from support.testing import ROOT, http, read_env_file, registry_manifest_status

VERSIONS = read_env_file(ROOT / "versions.env")


def test_pulumi_cli_is_the_pinned_build(pulumi_cli):
    assert pulumi_cli == f"v{VERSIONS['PULUMI_VERSION']}"


def test_plugins_are_installed_at_the_pinned_versions(pulumi_cli):
    listing = subprocess.run(["pulumi", "plugin", "ls"], capture_output=True, text=True, check=True).stdout
    installed = {tuple(line.split()[:3]) for line in listing.splitlines()[1:] if line.strip()}
    assert ("docker", "resource", VERSIONS["PULUMI_DOCKER_VERSION"]) in installed
    assert ("kubernetes", "resource", VERSIONS["PULUMI_KUBERNETES_VERSION"]) in installed


def test_a_program_creates_and_destroys_a_docker_network(tmp_path, docker_client):
    """A real program through the CLI, the Python language host and the docker plugin."""
    (tmp_path / "Pulumi.yaml").write_text("name: platform-check\nruntime: {name: python, options: {virtualenv: venv}}\n")
    (tmp_path / "__main__.py").write_text(textwrap.dedent("""
        import pulumi, pulumi_docker as docker
        net = docker.Network("net", name=pulumi.Config().require("networkName"),
                             labels=[docker.NetworkLabelArgs(label="cloudservice.dev/check", value="platform")])
        pulumi.export("id", net.id)
    """))
    (tmp_path / "venv").symlink_to(ROOT / "venv")
    (tmp_path / "state").mkdir()
    name = f"cloudservice-check-{uuid.uuid4().hex[:8]}"
    stack = auto.create_stack("check", work_dir=str(tmp_path), opts=auto.LocalWorkspaceOptions(
        env_vars={"PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}"}))
    stack.set_config("networkName", auto.ConfigValue(name))
    try:
        network_id = stack.up().outputs["id"].value
        network = docker_client.networks.get(network_id)
        assert network.name == name and network.attrs["Driver"] == "bridge"
        stack.destroy()
        assert docker_client.networks.list(names=[name]) == []
    finally:
        stack.destroy()
        stack.workspace.remove_stack("check")


@pytest.fixture(scope="module")
def probe_image(docker_client, registry):
    """A tiny image tagged for the local registry (built from the local base, nothing pulled)."""
    repository = f"{registry.server}/cloudservice/platform-probe"
    tag = uuid.uuid4().hex[:8]
    docker_client.images.get(VERSIONS["BASE_IMAGE"]).tag(repository, tag)
    yield repository, tag
    docker_client.images.remove(f"{repository}:{tag}")


def push(docker_client, repository, tag, username, password) -> list:
    return list(docker_client.images.push(
        repository, tag, stream=True, decode=True, auth_config={"username": username, "password": password}
    ))


def test_push_with_the_right_credentials_succeeds(docker_client, registry, probe_image):
    repository, tag = probe_image
    events = push(docker_client, repository, tag, registry.username, registry.password)
    assert not [e for e in events if "error" in e], events
    path = repository.split("/", 1)[1]
    assert registry_manifest_status(registry, path, tag, (registry.username, registry.password)) == 200


def test_push_with_wrong_credentials_fails(docker_client, registry, probe_image):
    repository, tag = probe_image
    events = push(docker_client, repository, tag, registry.username, "wrong-password")
    errors = [e["error"] for e in events if "error" in e]
    assert errors and ("unauthorized" in errors[0] or "authentication required" in errors[0]), events


def test_anonymous_access_is_refused(registry):
    for path in ("/v2/", "/v2/_catalog", "/v2/cloudservice/base/manifests/bookworm"):
        status, _, headers = http("GET", registry.url + path)
        assert status == 401 and "Basic" in headers.get("WWW-Authenticate", ""), path
    assert http("GET", registry.url + "/v2/_catalog", auth=(registry.username, "wrong"))[0] == 401
