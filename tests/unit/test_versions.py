"""requirements.txt pins the Pulumi SDKs to the versions the offline toolchain builds (versions.env), and
the namespaces' Pod Security Standards are the cluster's version."""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata

import pytest
from harness import ROOT

from components.pod_security import POD_SECURITY_VERSION
from components.spec import KubernetesSettings

# PyPI package -> the versions.env key it must equal.
PINNED_TO_TOOLCHAIN = {
    "pulumi": "PULUMI_VERSION",
    "pulumi-docker": "PULUMI_DOCKER_VERSION",
    "pulumi-kubernetes": "PULUMI_KUBERNETES_VERSION",
}


def read_versions_env() -> dict[str, str]:
    """KEY=VALUE lines of versions.env (comments and blank lines skipped, optional quotes removed)."""
    values = {}
    with open(os.path.join(ROOT, "versions.env"), encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
            assert match, f"versions.env:{number}: not a KEY=VALUE line: {line!r}"
            values[match.group(1)] = match.group(2).strip().strip("'\"")
    return values


def read_requirements() -> dict[str, str]:
    """Exact pins (`name==version`) of requirements.txt, names normalized as PyPI does."""
    pins = {}
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            match = re.fullmatch(r"([A-Za-z0-9._-]+)\s*==\s*([^\s;]+)", line)
            if match:
                pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


@pytest.mark.parametrize("package,key", sorted(PINNED_TO_TOOLCHAIN.items()))
def test_requirements_pin_the_toolchain_version(package, key):
    versions, pins = read_versions_env(), read_requirements()
    assert key in versions, (
        f"versions.env has no {key}: add `{key}=<version>` (the version requirements.txt pins {package} to)"
    )
    assert package in pins, f"requirements.txt does not pin {package}: add `{package}=={versions[key]}`"
    assert pins[package] == versions[key], (
        f"requirements.txt pins {package}=={pins[package]} but versions.env has {key}={versions[key]}; keep them equal"
    )


@pytest.mark.parametrize("package", sorted(read_requirements()))
def test_virtualenv_matches_the_pins(package):
    """The venv the tests (and the language host) run in has exactly the pinned versions."""
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        pytest.fail(
            f"{package} is pinned in requirements.txt but not installed: venv/bin/pip install -r requirements.txt"
        )
    assert installed == read_requirements()[package], (
        f"{package} {installed} is installed, requirements.txt pins {read_requirements()[package]}"
    )


def test_pulumi_watch_source_is_the_pinned_version():
    """scripts/toolchain.sh caches the pulumi-watch build under versions.env's version: the shipped
    source must be that version, or a changed source would never be rebuilt."""
    with open(os.path.join(ROOT, "toolchain", "pulumi-watch", "Cargo.toml"), "rb") as handle:
        package = tomllib.load(handle)["package"]
    assert package["version"] == read_versions_env()["PULUMI_WATCH_VERSION"], (
        f"toolchain/pulumi-watch is version {package['version']}: set PULUMI_WATCH_VERSION in versions.env to it"
    )


def test_pod_security_standards_are_the_clusters_minor():
    """The levels components/pod_security.py computes follow one version's checks: a cluster upgrade
    (KUBERNETES_VERSION) means checking its lists against the new version's and moving the pin."""
    major, minor, _ = read_versions_env()["KUBERNETES_VERSION"].split(".")
    assert POD_SECURITY_VERSION == f"v{major}.{minor}", (
        f"the cluster is Kubernetes {major}.{minor} but namespaces pin Pod Security {POD_SECURITY_VERSION}"
    )


def test_the_entry_points_defaults_are_the_platforms():
    """The router image is tagged with the Traefik version it runs, and a stack's routes point at the
    https port the cluster's entry point listens on."""
    versions = read_versions_env()
    assert versions["ROUTER_IMAGE"].rsplit(":", 1)[1] == versions["TRAEFIK_VERSION"], (
        "versions.env: ROUTER_IMAGE's tag must be TRAEFIK_VERSION"
    )
    assert KubernetesSettings.https_port == int(versions["CLUSTER_HTTPS_PORT"]), (
        "KubernetesSettings.https_port must be versions.env's CLUSTER_HTTPS_PORT"
    )
