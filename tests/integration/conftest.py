"""Integration fixtures. Each one checks the real part it needs and fails loudly when it is
missing: these tests never skip (run `make platform` first, or `make test`, which does)."""

import shutil
import subprocess
import time

import docker
import pytest

from support.testing import STATE_DIR, ProjectCopy, RegistryCredentials, http, kubectl, kubectl_json


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure means the same: no engine
        pytest.fail(f"Docker engine unreachable ({error}); run `make platform`", pytrace=False)
    return client


@pytest.fixture(scope="session")
def registry() -> RegistryCredentials:
    try:
        credentials = RegistryCredentials.load()
        status, _, _ = http("GET", f"{credentials.url}/v2/", auth=(credentials.username, credentials.password))
    except (OSError, KeyError) as error:
        pytest.fail(f"local registry unavailable ({error}); run `make platform`", pytrace=False)
    if status != 200:
        pytest.fail(f"local registry refused its own credentials (HTTP {status})", pytrace=False)
    return credentials


@pytest.fixture(scope="session")
def pulumi_cli():
    if shutil.which("pulumi") is None:
        pytest.fail("pulumi CLI not on PATH; run `make toolchain` and `. scripts/env.sh`", pytrace=False)
    return subprocess.run(["pulumi", "version"], capture_output=True, text=True, check=True).stdout.strip()


# Taints the node controller puts on a node whose kubelet stopped reporting: nothing schedules there.
DOWN_TAINTS = {"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"}
NODE_GRACE = 60


def nodes_down() -> list[str]:
    """Each node that is not Ready or carries a down taint, as a sentence."""
    down = []
    for node in kubectl_json("get", "nodes")["items"]:
        ready = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}.get("Ready")
        taints = sorted({t["key"] for t in node["spec"].get("taints", [])} & DOWN_TAINTS)
        if ready != "True" or taints:
            down.append(f"node {node['metadata']['name']} is down (Ready: {ready}, taints: {taints})")
    return down


@pytest.fixture(scope="module")
def cluster():
    """Checked for every module that needs it: a node lost by an earlier module (a fault test, the
    machine) fails the next ones within a minute, instead of each waiting out its own timeouts."""
    kubeconfig = STATE_DIR / "cluster" / "admin.kubeconfig"
    if not kubeconfig.is_file():
        pytest.fail("no cluster kubeconfig; run `make cluster`", pytrace=False)
    ready = kubectl("get", "--raw", "/readyz", check=False)
    if ready.strip() != "ok":
        pytest.fail(f"cluster not ready (/readyz: {ready!r}); run `make cluster`", pytrace=False)
    down = nodes_down()
    deadline = time.monotonic() + NODE_GRACE
    while down and time.monotonic() < deadline:  # a node just restarted (a fault test) is back within seconds
        time.sleep(2)
        down = nodes_down()
    if down:
        pytest.fail(
            f"{'; '.join(down)}: see the kubelet's log under the cluster's logs, then `make cluster`", pytrace=False
        )
    return kubeconfig


@pytest.fixture(scope="module")
def project(tmp_path_factory, pulumi_cli) -> ProjectCopy:
    return ProjectCopy(tmp_path_factory.mktemp("project"))
