"""What Compose files need, on the real cluster: an alias Service, a UDP port, named volumes (one
read-only) and an ephemeral path, and a NetworkPolicy per Compose network. One stack, one `up`.

The app (tests/integration/apps/cluster-features) is one image in three roles: `search` serves
HTTP and is also `es` (a Compose container_name other services use), `echo` echoes UDP on any host
port (publish 0), and `client` idles, for commands run in the namespace. The cluster enforces the
NetworkPolicies (kube-router's firewall, platform/cluster/network-policies.sh): connections are
tried from the stack's pods and from a pod of another namespace, and the probes must keep passing.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from datetime import datetime, timezone

import pytest

from components.conventions import STACK_LABEL
from support.testing import PYTHON_CONNECT, ROOT, kubectl, kubectl_json, wait_for

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
REFUSED_OR_DROPPED = {"ConnectionRefusedError", "TimeoutError"}
PYTHON_UDP = (
    "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); "
    "s.sendto(b'ping', (sys.argv[1], 5353)); print(s.recvfrom(64)[0].decode())"
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

    def pod_ip(self, service: str) -> str:
        return kubectl_json("-n", self.namespace, "get", "pod", self.pod(service))["status"]["podIP"]


def connect(namespace: str, pod: str, host: str, port: int) -> str:
    """What a TCP connection from `pod` to host:port ends with: "connected" or the error's name."""
    return kubectl("-n", namespace, "exec", pod, "--", "python3", "-c", PYTHON_CONNECT, host, str(port)).strip()


def refused(namespace: str, pod: str, host: str, port: int) -> str:
    """Waits (briefly: a new pod's rules follow its start) for the connection to be refused or dropped."""
    return wait_for(
        lambda: (outcome := connect(namespace, pod, host, port)) in REFUSED_OR_DROPPED and outcome,
        timeout=30,
        what=f"{namespace}/{pod} to be kept from {host}:{port} (is kube-router running?)",
    )


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


@pytest.fixture(scope="module")
def outsider(deployed):
    """A pod in a namespace of its own, from the app's image (already on the node: nothing to pull)."""
    namespace = f"{deployed.namespace}-outsider"
    (container,) = kubectl_json("-n", deployed.namespace, "get", "pod", deployed.pod("client"))["spec"]["containers"]
    kubectl("create", "namespace", namespace)
    try:
        kubectl(
            "-n",
            namespace,
            "run",
            "outsider",
            f"--image={container['image']}",
            "--image-pull-policy=Never",
            "--restart=Never",
            "--",
            "idle",
        )
        kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/outsider", "--timeout=90s")
        yield namespace
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


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
        lambda: deployed.run_in("client", "python3", "-c", PYTHON_UDP, "echo", check=False).strip(),
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


def test_a_pod_of_another_namespace_is_kept_from_the_stack_but_not_from_its_published_ports(deployed, outsider):
    """`same-namespace-only` and the networks' policies, enforced: the outsider's connections to the
    alias Service and to the pod itself are refused, while the stack's own client connects; the
    published UDP port (`published-echo`) still answers it."""
    search = f"es.{deployed.namespace}.svc.cluster.local"
    assert connect(deployed.namespace, deployed.pod("client"), search, 8080) == "connected"
    assert refused(outsider, "outsider", search, 8080)
    assert refused(outsider, "outsider", deployed.pod_ip("search"), 8080)
    echo = f"echo.{deployed.namespace}.svc.cluster.local"
    answer = wait_for(
        lambda: kubectl(
            "-n", outsider, "exec", "outsider", "--", "python3", "-c", PYTHON_UDP, echo, check=False
        ).strip(),
        timeout=30,
        what="a UDP answer from the published echo port to another namespace",
    )
    assert answer == "echo:ping"


def test_a_workload_off_a_network_cannot_reach_its_members(deployed):
    """`network-back`, enforced: echo (front only) is kept from search (back only) on the Service
    and on the pod, in the same namespace; client (front and back) reaches it."""
    assert connect(deployed.namespace, deployed.pod("client"), "es", 8080) == "connected"
    assert refused(deployed.namespace, deployed.pod("echo"), "es", 8080)
    assert refused(deployed.namespace, deployed.pod("echo"), deployed.pod_ip("search"), 8080)


def test_the_kubelets_probes_still_pass_under_the_policies(deployed):
    """The probes come from the node, which the firewall lets through: search (a pod no other
    namespace or network may reach; readiness on /healthz every 2 s, liveness on its TCP port every
    10 s, restarted after 3 failures) stays Ready and never restarts, for longer than those 3 failures."""
    name = deployed.pod("search")
    (status,) = kubectl_json("-n", deployed.namespace, "get", "pod", name)["status"]["containerStatuses"]
    started = datetime.fromisoformat(status["state"]["running"]["startedAt"].replace("Z", "+00:00"))
    time.sleep(max(0.0, 45 - (datetime.now(timezone.utc) - started).total_seconds()))
    pod = kubectl_json("-n", deployed.namespace, "get", "pod", name)
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["tcpSocket"]["port"] == 8080
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True", pod["status"]
    assert [s["restartCount"] for s in pod["status"]["containerStatuses"]] == [0]


def test_destroy_leaves_nothing_labelled(deployed):
    deployed.stack.destroy()
    selector = f"{STACK_LABEL}={deployed.stack.name}"
    kinds = "all,pvc,secret,configmap,networkpolicy,namespace"
    assert kubectl("get", kinds, "-A", "-l", selector, "-o", "name").strip() == ""
