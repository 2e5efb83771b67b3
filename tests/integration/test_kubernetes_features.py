"""What Compose files need, on the real cluster: an alias Service, a UDP port, named volumes (one
read-only) and an ephemeral path, and a NetworkPolicy per Compose network. One stack, one `up`.

The app (tests/integration/apps/cluster-features) is one image in three roles: `search` serves
HTTP and is also `es` (a Compose container_name other services use), `echo` echoes UDP on any host
port (publish 0), and `client` idles, for commands run in the namespace. The cluster's bridge
network plugin does not enforce NetworkPolicies: their objects and the pods' labels are checked,
not the isolation.
"""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from components.conventions import STACK_LABEL
from support.testing import ROOT, kubectl, kubectl_json, wait_for

APP = "cluster-features"
SERVICES = {
    "search": {
        "build": f"apps/{APP}",
        "args": ["http"],
        "env": {"SERVICE": "search"},
        "port": 8080,
        "health": "/healthz",
        "aliases": ["es"],
        "networks": ["back"],
        "ephemeral": ["/scratch"],
        "volumes": {
            "data": {"path": "/data", "size": "16Mi"},
            "extra": {"path": "/extra", "size": "16Mi"},
            "seed": {"path": "/seed", "size": "16Mi", "readOnly": True},
        },
    },
    "echo": {
        "build": f"apps/{APP}",
        "args": ["udp"],
        "networks": ["front"],
        "ports": {"dns": {"port": 5353, "publish": 0, "protocol": "udp"}},
    },
    "client": {"build": f"apps/{APP}", "args": ["idle"], "networks": ["front", "back"], "memory": 64},
}
NETWORKS = {"front": {}, "back": {}}
PYTHON_GET = "import urllib.request; print(urllib.request.urlopen('http://es:8080/', timeout=3).read().decode())"
PYTHON_UDP = (
    "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); "
    "s.sendto(b'ping', ('echo', 5353)); print(s.recvfrom(64)[0].decode())"
)


class Deployed:
    def __init__(self, stack, namespace: str):
        self.stack, self.namespace = stack, namespace

    def pod(self, service: str) -> str:
        pods = kubectl_json("-n", self.namespace, "get", "pods", "-l", f"app.kubernetes.io/name={service}")["items"]
        running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
        assert running, f"no running {service} pod"
        return running[0]

    def run_in(self, service: str, *command: str, check: bool = True) -> str:
        return kubectl("-n", self.namespace, "exec", self.pod(service), "--", *command, check=check)


@pytest.fixture(scope="module")
def deployed(project, registry, cluster):
    shutil.copytree(ROOT / "tests" / "integration" / "apps" / APP, project.directory / "apps" / APP)
    stack = project.stack(
        "staging",
        config={"services": json.dumps(SERVICES), "networks": json.dumps(NETWORKS), "replicas": "1"},
        secrets={"registryPassword": registry.password},
    )
    try:
        yield Deployed(stack, stack.up().outputs["namespace"].value)
    finally:  # a failed `up` leaves objects too
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


def test_a_pod_reaches_a_service_by_its_alias(deployed):
    service = kubectl_json("-n", deployed.namespace, "get", "service", "es")
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["selector"]["app.kubernetes.io/name"] == "search"
    # A Service just made ready can precede kube-proxy's rule for it: retried briefly.
    answer = wait_for(
        lambda: deployed.run_in("client", "python3", "-c", PYTHON_GET, check=False).strip(),
        timeout=30,
        what="an answer from http://es:8080/",
    )
    assert json.loads(answer) == {"service": "search", "path": "/"}


def test_a_udp_port_answers_through_its_service(deployed):
    service = kubectl_json("-n", deployed.namespace, "get", "service", "echo")
    (port,) = service["spec"]["ports"]
    # Any host port: the Service port is the container's, on a NodePort.
    assert (port["protocol"], port["port"], service["spec"]["type"]) == ("UDP", 5353, "NodePort")
    from_pod = wait_for(
        lambda: deployed.run_in("client", "python3", "-c", PYTHON_UDP, check=False).strip(),
        timeout=30,
        what="a UDP answer from echo:5353",
    )
    assert from_pod == "echo:ping"

    def from_host() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(2)
            probe.sendto(b"host", ("127.0.0.1", port["nodePort"]))
            return probe.recvfrom(64)[0]

    assert wait_for(from_host, timeout=30, what=f"a UDP answer on node port {port['nodePort']}") == b"echo:host"


def test_volumes_and_ephemeral_paths_are_writable_by_the_user_and_read_only_ones_are_not(deployed):
    report = deployed.run_in(
        "search",
        "sh",
        "-c",
        (
            "id -u; for dir in /scratch /data /extra /seed; do "
            "touch $dir/probe 2>/dev/null && echo $dir writable || echo $dir read-only; done"
        ),
    ).splitlines()
    assert report == ["10001", "/scratch writable", "/data writable", "/extra writable", "/seed read-only"], report
    claims = {
        c["metadata"]["name"]: c["status"]["phase"]
        for c in kubectl_json("-n", deployed.namespace, "get", "pvc")["items"]
    }
    assert claims == {"search-data": "Bound", "search-extra": "Bound", "search-seed": "Bound"}


def test_each_network_is_a_network_policy_over_its_pods(deployed):
    stack = {STACK_LABEL: deployed.stack.name}
    policies = {
        p["metadata"]["name"]: p["spec"]
        for p in kubectl_json("-n", deployed.namespace, "get", "networkpolicies")["items"]
    }
    assert set(policies) == {"network-front", "network-back", "published-echo", "same-namespace-only"}, (
        "default is joined by none"
    )
    no_network = [{"key": f"network.cloudservice.dev/{n}", "operator": "DoesNotExist"} for n in ("front", "back")]
    assert sorted(policies["same-namespace-only"]["podSelector"]["matchExpressions"], key=str) == sorted(
        no_network, key=str
    )
    for network in ("front", "back"):
        members = {"matchLabels": {f"network.cloudservice.dev/{network}": "true", **stack}}
        assert policies[f"network-{network}"]["podSelector"] == members
        assert policies[f"network-{network}"]["ingress"] == [{"from": [{"podSelector": members}]}]
    assert policies["published-echo"]["ingress"] == [{"ports": [{"port": 5353, "protocol": "UDP"}]}]
    for service, networks in (("search", {"back"}), ("echo", {"front"}), ("client", {"front", "back"})):
        labels = kubectl_json("-n", deployed.namespace, "get", "pod", deployed.pod(service))["metadata"]["labels"]
        assert {key.split("/")[1] for key in labels if key.startswith("network.cloudservice.dev/")} == networks, service


def test_destroy_leaves_nothing_labelled(deployed):
    deployed.stack.destroy()
    selector = f"{STACK_LABEL}={deployed.stack.name}"
    kinds = "all,pvc,secret,configmap,networkpolicy,namespace"
    assert kubectl("get", kinds, "-A", "-l", selector, "-o", "name").strip() == ""
