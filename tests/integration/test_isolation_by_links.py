"""`isolation: links` on the real engine and cluster: one app spec on both targets, where `client`
links to `search` and `loner` links to nothing. client connects to search; loner, in the same stack,
is kept from it: on Docker it cannot resolve the name nor reach the address (the two share no
network), on Kubernetes its connections to the Service and to the pod are dropped (kube-router
enforces `network-to-search`)."""

from __future__ import annotations

import json
import shutil

import pytest

from support.testing import PYTHON_CONNECT, ROOT, kubectl, kubectl_json, wait_for

APP = "cluster-features"  # `http` serves GETs on 8080, `idle` is a container to run commands in
SERVICES = {
    "search": {"build": f"apps/{APP}", "args": ["http"], "env": {"SERVICE": "search"}, "port": 8080, "health": "/"},
    "client": {"build": f"apps/{APP}", "args": ["idle"], "links": ["search"], "memory": 64},
    "loner": {"build": f"apps/{APP}", "args": ["idle"], "memory": 64},
}
KEPT = {"ConnectionRefusedError", "TimeoutError", "gaierror", "OSError"}


@pytest.fixture(scope="module")
def app_dir(project):
    shutil.copytree(ROOT / "tests" / "integration" / "apps" / APP, project.directory / "apps" / APP)


def up(project, registry, stack_name: str):
    stack = project.stack(
        stack_name,
        config={"services": json.dumps(SERVICES), "isolation": "links", "replicas": "1"},
        secrets={"registryPassword": registry.password},
    )
    return stack, stack.up().outputs


@pytest.fixture(scope="module")
def on_docker(project, app_dir, registry, docker_client):
    stack, _ = up(project, registry, "dev")
    try:
        yield (
            f"cloudservice-{stack.name}",
            lambda service: docker_client.containers.get(f"cloudservice-{stack.name}-{service}"),
        )
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


@pytest.fixture(scope="module")
def on_cluster(project, app_dir, registry, cluster):
    stack, outputs = up(project, registry, "staging")
    namespace = outputs["namespace"].value

    def run_in(service: str, *command: str) -> str:
        (pod,) = kubectl_json("-n", namespace, "get", "pods", "-l", f"app.kubernetes.io/name={service}")["items"]
        return kubectl("-n", namespace, "exec", pod["metadata"]["name"], "--", *command).strip()

    try:
        yield namespace, run_in
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


def test_on_docker_a_workload_reaches_what_it_links_to_and_nothing_else(on_docker):
    prefix, container = on_docker

    def connect(service: str, host: str) -> str:
        return container(service).exec_run(["python3", "-c", PYTHON_CONNECT, host, "8080"])[1].decode().strip()

    search = container("search")
    assert list(search.attrs["NetworkSettings"]["Networks"]) == [f"{prefix}-to-search"]
    assert list(container("client").attrs["NetworkSettings"]["Networks"]) == [f"{prefix}-to-search"]
    assert list(container("loner").attrs["NetworkSettings"]["Networks"]) == [f"{prefix}-to-loner"]
    address = next(iter(search.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    assert connect("client", "search") == "connected"
    assert connect("loner", "search") == "gaierror", "loner shares no network with search: no name"
    assert connect("loner", address) in KEPT - {"gaierror"}, "nor a route to its address"


def test_on_kubernetes_a_workload_reaches_what_it_links_to_and_nothing_else(on_cluster):
    namespace, run_in = on_cluster
    policies = {p["metadata"]["name"] for p in kubectl_json("-n", namespace, "get", "networkpolicies")["items"]}
    assert {"network-to-search", "network-to-loner"} <= policies and "network-default" not in policies
    search = kubectl_json("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=search")["items"][0]

    def kept(host: str) -> str:
        # A new pod's rules follow its start by a sync: waited for briefly.
        return wait_for(
            lambda: (outcome := run_in("loner", "python3", "-c", PYTHON_CONNECT, host, "8080")) in KEPT and outcome,
            timeout=30,
            what=f"loner to be kept from {host}:8080 (is kube-router running?)",
        )

    assert run_in("client", "python3", "-c", PYTHON_CONNECT, "search", "8080") == "connected"
    assert kept("search") in {"ConnectionRefusedError", "TimeoutError"}, "through the Service"
    assert kept(search["status"]["podIP"]) in {"ConnectionRefusedError", "TimeoutError"}, "to the pod"
