"""Routes and replicas on the real Docker engine: the web service as 3 containers and a second service
behind the stack's router container, by path and by host, over https checked against the platform's
local CA; a replica killed (`docker kill`) or crashed under a steady prober through the router loses no
request, and the engine restarts the crashed one; reads a replica had in flight when it crashed are
answered by another; a rollout through the router fails no request. The tests run in order.

Requests go to 127.0.0.1 with the route's host as SNI and Host (support/testing.py `http`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from pulumi import automation as auto

from components.conventions import STACK_LABEL
from support.testing import (
    ENTRY_POINT_CA,
    ROOT,
    changed_resources,
    edit_app_version,
    free_port,
    get_json,
    http,
    wait_for,
)
from support.traffic import Prober

BURNER = "cpu-burner"  # answers any path with its host name
REPLICAS = 3
BURNER_REPLICAS = 2
# Concurrent reads of 200 ms of CPU each: a replica's share of them takes ~0.8 s (one Python process),
# so a crash 0.4 s after they start finds them all in flight.
IN_FLIGHT = 8
MIN_REQUESTS = 200  # the prober asks one request at a time: ~15 a second on a busy 2-core machine


class Routed:
    def __init__(self, stack: auto.Stack, port: int, burner_host: str):
        self.stack, self.port, self.burner_host = stack, port, burner_host
        self.outputs: dict = {}

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


@pytest.fixture(scope="module")
def routed(project, registry, docker_client):
    shutil.copytree(ROOT / "tests" / "integration" / "apps" / BURNER, project.directory / "apps" / BURNER)
    services = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["services"]["value"]
    del services["web"]["publish"]  # reached through the router only
    services["web"]["replicas"] = REPLICAS
    # A stopping replica stays in the router's rotation until its health check fails: web drains
    # (unready, still serving) for longer than the check's 2 s interval before it exits.
    services["web"]["env"] = {"DRAIN_SECONDS": "3"}
    services["burner"] = {"build": f"apps/{BURNER}", "port": 8080, "health": "/healthz", "replicas": BURNER_REPLICAS}
    burner_host = f"burner-{uuid.uuid4().hex[:6]}.apps.localhost"
    routes = [{"service": "web"}, {"service": "burner", "path": "/burner"}, {"service": "burner", "host": burner_host}]
    port = free_port()
    stack = project.stack(
        "dev",
        config={"services": json.dumps(services), "routes": json.dumps(routes), "routerPort": str(port)},
        secrets={"registryPassword": registry.password},
    )
    deployed = Routed(stack, port, burner_host)
    try:
        yield deployed
    finally:  # a failed `up` leaves containers too
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


def service_containers(docker_client, stack_name: str, service: str = "web") -> list:
    return sorted(
        docker_client.containers.list(
            all=True, filters={"label": [f"{STACK_LABEL}={stack_name}", f"app.kubernetes.io/name={service}"]}
        ),
        key=lambda container: container.name,
    )


def wait_restarted(container, restarts: int) -> None:
    def restarted():
        container.reload()
        return container.attrs["RestartCount"] >= restarts and container.attrs["State"]["Health"]["Status"] == "healthy"

    wait_for(restarted, timeout=60, what=f"the engine to restart {container.name}")


def test_up_routes_two_services_by_path_and_by_host_over_https(routed, docker_client):
    routed.outputs = {key: output.value for key, output in routed.stack.up().outputs.items()}
    url, host_url = routed.url, f"https://{routed.burner_host}:{routed.port}"
    assert routed.outputs["url"] == f"{url}/"
    assert routed.outputs["urls"] == {
        "web": f"{url}/",
        "burner/burner": f"{url}/burner",
        f"burner@{routed.burner_host}/": f"{host_url}/",
    }
    web = f"cloudservice-{routed.stack.name}-web"
    assert [c.name for c in service_containers(docker_client, routed.stack.name)] == [web, f"{web}-2", f"{web}-3"]
    assert all(c.status == "running" for c in service_containers(docker_client, routed.stack.name))

    def served():
        status, body = get_json(f"{url}/")
        return status == 200 and body

    home = wait_for(served, timeout=30, what="the router to serve web")
    assert home["version"] == "1", "by path: / is web's"
    status, body, _ = http("GET", f"{url}/burner/anything")
    assert status == 200 and body.decode() == "burner", "by path: /burner is burner's"
    status, body, _ = http("GET", f"{url}/burnerx")
    assert status == 404 or not body.decode().startswith("burner"), "a prefix matches whole path segments"
    status, body, _ = http("GET", f"{host_url}/")
    assert status == 200 and body.decode() == "burner", "by host: burner's own host is burner's"
    status, _, _ = http("GET", f"https://unrouted-{uuid.uuid4().hex[:6]}.apps.localhost:{routed.port}/notes")
    assert status == 200, "a host no route names falls to the hostless route (web)"


def test_the_router_serves_the_certificate_of_the_platforms_local_ca(routed):
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"https://127.0.0.1:{routed.port}/", timeout=5, context=ssl.create_default_context())
    trusting = ssl.create_default_context(cafile=ENTRY_POINT_CA)
    with urllib.request.urlopen(f"https://127.0.0.1:{routed.port}/", timeout=5, context=trusting) as response:
        assert response.status == 200


def test_a_killed_or_crashed_replica_loses_no_request(routed, docker_client):
    """`docker kill` (a stop, for Docker: no restart follows) and a crash (the process SIGKILLed, as the
    OOM killer does: the engine restarts it) of a replica each, under a steady prober through the router."""
    killed, crashed = service_containers(docker_client, routed.stack.name)[1:]
    with Prober(routed.url) as prober:
        time.sleep(3)
        killed.kill()
        time.sleep(5)
        crashed.reload()
        os.kill(crashed.attrs["State"]["Pid"], signal.SIGKILL)
        wait_restarted(crashed, 1)
        time.sleep(5)  # requests go to it again
    print("killed and crashed replicas:", prober.report())
    assert prober.failures == Counter(), prober.report()
    assert prober.requests >= MIN_REQUESTS, prober.report()
    killed.reload()
    assert killed.status == "exited", "docker kill is a stop for Docker"
    killed.start()
    wait_for(lambda: killed.reload() or killed.attrs["State"]["Health"]["Status"] == "healthy", timeout=60)


def test_reads_in_flight_to_a_replica_that_crashes_are_answered_by_another(routed, docker_client):
    """Upstream Traefik answers 502 to a request its backend dies with; the platform's patched one
    sends a GET again until the backend has begun to answer (platform/traefik-retry-replayable.patch)."""
    crashed = service_containers(docker_client, routed.stack.name, "burner")[-1]
    crashed.reload()
    restarts = crashed.attrs["RestartCount"]
    burn = f"https://{routed.burner_host}:{routed.port}/burn?ms=200"
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        reads = [pool.submit(http, "GET", burn, timeout=30) for _ in range(IN_FLIGHT)]
        time.sleep(0.4)
        os.kill(crashed.attrs["State"]["Pid"], signal.SIGKILL)
        statuses = Counter(read.result()[0] for read in reads)
    assert statuses == Counter({200: IN_FLIGHT}), f"answers to reads in flight at a crash: {statuses}"
    wait_restarted(crashed, restarts + 1)


def test_a_rollout_through_the_router_fails_no_request(routed, project, docker_client):
    before = {c.name: c.id for c in service_containers(docker_client, routed.stack.name)}
    edit_app_version(project, "2")
    events: list = []
    with Prober(routed.url) as prober:
        routed.stack.up(on_event=events.append)
        replaced = {name for _, name in changed_resources(events)}
        assert not any(name.endswith("-router") for name in replaced), f"the rollout replaced the router: {replaced}"
        wait_for(lambda: prober.last_version == "2", timeout=30, what="version 2 through the router")
        time.sleep(2)
    print("rollout through the router:", prober.report())
    after = {c.name: c.id for c in service_containers(docker_client, routed.stack.name)}
    assert set(after) == set(before) and not set(after.values()) & set(before.values()), "every replica replaced"
    assert prober.failures == Counter(), prober.report()
    assert prober.versions["1"] > 0 and prober.versions["2"] > 0, prober.report()
    assert prober.requests >= MIN_REQUESTS, prober.report()


def test_new_routes_and_replicas_reload_the_router_in_place(routed, docker_client):
    """A fourth web replica and a second host for burner only rewrite the router's routes, which
    Traefik reloads: the same router container, no request failed meanwhile, the new host served."""
    router = docker_client.containers.get(f"cloudservice-{routed.stack.name}-router")
    services = json.loads(routed.stack.get_config("services").value)
    services["web"]["replicas"] = REPLICAS + 1
    routes = json.loads(routed.stack.get_config("routes").value)
    new_host = f"burner-{uuid.uuid4().hex[:6]}.apps.localhost"
    routes.append({"service": "burner", "host": new_host})
    routed.stack.set_config("services", auto.ConfigValue(json.dumps(services)))
    routed.stack.set_config("routes", auto.ConfigValue(json.dumps(routes)))
    with Prober(routed.url) as prober:
        routed.stack.up()

        def new_host_served():
            status, body, _ = http("GET", f"https://{new_host}:{routed.port}/")
            return status == 200 and body.decode() == "burner"

        wait_for(new_host_served, timeout=30, what=f"the router to serve {new_host}")
        time.sleep(2)
    print("routes and replicas changed:", prober.report())
    assert docker_client.containers.get(router.name).id == router.id, "the router was replaced"
    assert len(service_containers(docker_client, routed.stack.name)) == REPLICAS + 1
    assert prober.failures == Counter(), prober.report()
