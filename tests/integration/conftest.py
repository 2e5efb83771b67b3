"""Integration fixtures. Each one checks the real part it needs and fails loudly when it is
missing: these tests never skip (run `make platform` first, or `make test`, which does)."""

import shutil
import subprocess

import docker
import pytest

from support.testing import STATE_DIR, ProjectCopy, RegistryCredentials, http, kubectl


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


@pytest.fixture(scope="session")
def cluster():
    kubeconfig = STATE_DIR / "cluster" / "admin.kubeconfig"
    if not kubeconfig.is_file():
        pytest.fail("no cluster kubeconfig; run `make cluster`", pytrace=False)
    ready = kubectl("get", "--raw", "/readyz", check=False)
    if ready.strip() != "ok":
        pytest.fail(f"cluster not ready (/readyz: {ready!r}); run `make cluster`", pytrace=False)
    return kubeconfig


@pytest.fixture(scope="module")
def project(tmp_path_factory, pulumi_cli) -> ProjectCopy:
    return ProjectCopy(tmp_path_factory.mktemp("project"))
