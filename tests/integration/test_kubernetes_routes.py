"""Routes on the real cluster: two services behind the cluster's one entry point (Traefik, run by
`make cluster`), by path and by host, over https checked against the platform's local CA; the stack's
`url` and `urls` are the entry point's; and a rollout of the routed service through the entry point
fails no request. The tests run in order.

Requests go to 127.0.0.1 with the route's host as SNI and Host (support/testing.py `http`), as
curl does for `*.localhost` names.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections import Counter

import pytest
import yaml
from pulumi import automation as auto

from support.testing import ENTRY_POINT_CA, ROOT, edit_app_version, get_json, http, kubectl, kubectl_json, wait_for
from support.traffic import Prober

BURNER = "cpu-burner"  # answers any path with its pod's name
# Each request is a new https connection (about 50 ms here): the rollout spans a few hundred of them.
MIN_REQUESTS = 100


def https_port() -> int:
    versions = dict(
        line.split("=", 1) for line in (ROOT / "versions.env").read_text().splitlines() if line[:1].isalpha()
    )
    return int(versions["CLUSTER_HTTPS_PORT"])


class Routed:
    def __init__(self, stack: auto.Stack, burner_host: str):
        self.stack, self.burner_host = stack, burner_host
        self.outputs: dict = {}

    @property
    def namespace(self) -> str:
        return self.outputs["namespace"]

    @property
    def host(self) -> str:
        """The stack's own host on the shared entry point."""
        return f"{self.namespace}.apps.localhost"

    def web_pods(self) -> set[str]:
        pods = kubectl_json("-n", self.namespace, "get", "pods", "-l", "app.kubernetes.io/name=web")["items"]
        return {pod["metadata"]["name"] for pod in pods}


@pytest.fixture(scope="module")
def routed(project, registry, cluster):
    shutil.copytree(ROOT / "tests" / "integration" / "apps" / BURNER, project.directory / "apps" / BURNER)
    services = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["services"]["value"]
    services["burner"] = {"build": f"apps/{BURNER}", "port": 8080, "health": "/healthz", "replicas": 1}
    burner_host = f"burner-{uuid.uuid4().hex[:6]}.apps.localhost"
    routes = [{"service": "web"}, {"service": "burner", "path": "/burner"}, {"service": "burner", "host": burner_host}]
    stack = project.stack(
        "staging",
        config={"services": json.dumps(services), "routes": json.dumps(routes)},
        secrets={"registryPassword": registry.password},
    )
    deployed = Routed(stack, burner_host)
    try:
        yield deployed
    finally:  # a failed `up` leaves objects too
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


def test_the_entry_point_runs_with_its_own_least_privileged_identity_and_a_constrained_ca(cluster):
    """`make cluster`'s router serves the IngressClass `cloudservice` as `cloudservice:router`, which may
    read what routing needs and write nothing but the Ingresses' status; the CA it serves a
    certificate of is trusted for loopback names only, its key readable by its owner only."""
    assert kubectl_json("get", "ingressclass", "cloudservice")["spec"]["controller"] == "traefik.io/ingress-controller"
    expected = {
        "watch ingresses.networking.k8s.io": "yes",
        "list endpointslices.discovery.k8s.io": "yes",
        "get secrets": "yes",
        "update ingresses.networking.k8s.io --subresource=status": "yes",
        "update ingresses.networking.k8s.io": "no",
        "create secrets": "no",
        "create pods": "no",
        "delete services": "no",
    }
    granted = {
        question: kubectl("auth", "can-i", *question.split(), "-A", "--as", "cloudservice:router", check=False).strip()
        for question in expected
    }
    assert granted == expected
    assert (ENTRY_POINT_CA.parent / "ca.key").stat().st_mode & 0o777 == 0o600
    constraints = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "nameConstraints", "-in", str(ENTRY_POINT_CA)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "critical" in constraints and "DNS:localhost" in constraints and "IP:127.0.0.0/255.0.0.0" in constraints


def test_up_routes_two_services_by_path_and_by_host_over_https(routed):
    routed.outputs = {key: output.value for key, output in routed.stack.up().outputs.items()}
    port, host = https_port(), routed.host
    assert routed.outputs["url"] == f"https://{host}:{port}/"
    # web's route wins over its published port; burner has two routes, each under its own key.
    assert routed.outputs["urls"] == {
        "web": f"https://{host}:{port}/",
        "burner/burner": f"https://{host}:{port}/burner",
        f"burner@{routed.burner_host}/": f"https://{routed.burner_host}:{port}/",
    }
    ingress = kubectl_json("-n", routed.namespace, "get", "ingress", "routes")
    assert ingress["spec"]["ingressClassName"] == "cloudservice"

    def served():
        # Routes reach the entry point a moment after `up` (the router watches the Ingresses).
        status, body = get_json(routed.outputs["url"])
        return status == 200 and body

    home = wait_for(served, timeout=30, what=f"the entry point to serve {routed.outputs['url']}")
    assert home["version"] == "1", "by path: / is web's"
    status, body, _ = http("GET", f"https://{host}:{port}/burner/anything")
    assert status == 200 and body.decode().startswith("burner-"), "by path: /burner is burner's (its pod's name)"
    status, body, _ = http("GET", f"https://{routed.burner_host}:{port}/")
    assert status == 200 and body.decode().startswith("burner-"), "by host: burner's own host is burner's"
    status, _, _ = http("GET", f"https://unrouted-{uuid.uuid4().hex[:6]}.apps.localhost:{port}/")
    assert status == 404, "a host no route names is served nothing"
    # The router writes its address into the Ingress's status (kubectl get ingress shows it).
    wait_for(
        lambda: kubectl_json("-n", routed.namespace, "get", "ingress", "routes")["status"]["loadBalancer"].get(
            "ingress"
        ),
        timeout=30,
        what="the Ingress's address",
    )


def test_the_entry_point_serves_the_certificate_of_the_platforms_local_ca(routed):
    """A client that trusts the system's CAs only refuses it; one that trusts the local CA accepts it,
    also for the bare loopback address."""
    port = https_port()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=5, context=ssl.create_default_context())
    trusting = ssl.create_default_context(cafile=ENTRY_POINT_CA)
    with pytest.raises(urllib.error.HTTPError, match="404"):  # verified: no route for a bare address
        urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=5, context=trusting)


def test_a_rollout_through_the_entry_point_fails_no_request(routed, project):
    before = routed.web_pods()
    edit_app_version(project, "2")
    with Prober(routed.outputs["url"].rstrip("/")) as prober:
        routed.stack.up()
        wait_for(lambda: not before & routed.web_pods(), timeout=180, what="the web pods of version 1 to be gone")
        wait_for(lambda: prober.last_version == "2", timeout=30, what="version 2 through the entry point")
    print("rollout through the entry point:", prober.report())
    assert prober.failures == Counter(), prober.report()
    assert prober.versions["1"] > 0 and prober.versions["2"] > 0, prober.report()
    assert prober.requests >= MIN_REQUESTS, prober.report()
