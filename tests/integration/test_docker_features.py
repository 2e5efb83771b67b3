"""The Docker target honours the spec's Compose-level fields, on the real engine: one stack, one `up`.

Three services of one image (tests/integration/apps/features: HTTP on 8000, a UDP echo on 9000):
`store` (back network only; a named volume written at each start as the default user 10001; an
alias; ephemeral paths), `web` (front only) and `api` (both; its ports on any free host port).
"""

from __future__ import annotations

import json
import shutil
import socket

import docker
import pytest
from pulumi import automation as auto

from components.conventions import STACK_LABEL
from support.testing import ROOT, wait_for

FIXTURE = "apps/features"
HEALTH = "/healthz"


def services(generation: str) -> str:
    """The app spec; `generation` is the store's env value (a new one replaces its container)."""
    return json.dumps(
        {
            "store": {
                "build": FIXTURE,
                "port": 8000,
                "health": HEALTH,
                "networks": ["back"],
                "aliases": ["db"],
                "volume": {"path": "/data", "size": "64Mi"},
                "env": {"DATA_DIR": "/data", "GENERATION": generation},
                "ephemeral": ["/scratch", "/cache"],
            },
            "web": {"build": FIXTURE, "port": 8000, "health": HEALTH, "networks": ["front"]},
            "api": {
                "build": FIXTURE,
                "health": HEALTH,
                "networks": ["front", "back"],
                "ports": {
                    "http": {"port": 8000, "publish": 0},
                    "echo": {"port": 9000, "publish": 0, "protocol": "udp"},
                },
            },
        }
    )


class Features:
    def __init__(self, project, stack, docker_client):
        self.project, self.stack, self.docker_client = project, stack, docker_client
        self.outputs = stack.up().outputs

    def container(self, service: str):
        return self.docker_client.containers.get(f"cloudservice-{self.stack.name}-{service}")

    def run(self, service: str, code: str, *args: str) -> tuple[int, str]:
        """Python run in the service's container, as its user (`docker exec`)."""
        exit_code, output = self.container(service).exec_run(["python3", "-c", code, *args])
        return exit_code, output.decode().strip()

    def resolve(self, service: str, host: str) -> tuple[int, str]:
        return self.run(service, "import socket, sys; print(socket.gethostbyname(sys.argv[1]))", host)

    def made(self) -> dict:
        """The names of what the engine has with the stack's label."""
        label = {"label": f"{STACK_LABEL}={self.stack.name}"}
        client = self.docker_client
        return {
            "containers": [c.name for c in client.containers.list(all=True, filters=label)],
            "networks": [n.name for n in client.networks.list(filters=label)],
            "volumes": [v.name for v in client.volumes.list(filters=label)],
        }


@pytest.fixture(scope="module")
def features(project, registry, docker_client):
    shutil.copytree(ROOT / "tests" / "integration" / FIXTURE, project.directory / FIXTURE, dirs_exist_ok=True)
    stack = project.stack(
        "dev",
        config={"services": services("1"), "networks": json.dumps({"front": {}, "back": {}})},
        secrets={"registryPassword": registry.password},
    )
    try:
        yield Features(project, stack, docker_client)
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


def test_no_changes_right_after_up(features):
    """Nothing the engine reads back (picked host ports, tmpfs, anonymous volumes, the exited owner step)
    looks like drift."""
    features.stack.preview(expect_no_changes=True)


def test_networks_are_created_only_as_named(features):
    app = f"cloudservice-{features.stack.name}"
    assert sorted(features.made()["networks"]) == [f"{app}-back", f"{app}-front"], "no default network: none uses it"
    joined = {
        service: sorted(features.container(service).attrs["NetworkSettings"]["Networks"])
        for service in ("store", "web", "api")
    }
    assert joined == {"store": [f"{app}-back"], "web": [f"{app}-front"], "api": [f"{app}-back", f"{app}-front"]}


def test_a_service_on_front_only_cannot_resolve_one_on_back_only(features):
    code, output = features.resolve("web", "store")
    assert code != 0 and "gaierror" in output, output
    assert features.resolve("web", "api")[0] == 0


def test_a_service_on_both_networks_reaches_both(features):
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    for service in ("store", "web"):
        assert features.run("api", fetch, f"http://{service}:8000/")[1] == "ok", service


def test_an_alias_resolves_to_its_service(features):
    code, alias = features.resolve("api", "db")
    assert code == 0, alias
    assert alias == features.resolve("api", "store")[1]


def test_udp_port_on_any_host_port_answers(features):
    urls = features.outputs["urls"].value
    assert urls["api"].startswith("http://127.0.0.1:"), urls
    bound = features.container("api").attrs["NetworkSettings"]["Ports"]["9000/udp"][0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(1)

        def echoed():
            client.sendto(b"ping", ("127.0.0.1", int(bound["HostPort"])))
            return client.recvfrom(64)[0] == b"ping"

        assert wait_for(echoed, timeout=20, what="the UDP echo")
    http_port = features.container("api").attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"]
    assert urls["api"] == f"http://127.0.0.1:{http_port}", "the URL has the host port the engine picked"


def test_ephemeral_paths_exist_and_the_images_own_is_writable(features):
    check = "import os, sys; print(os.path.isdir(sys.argv[1]), os.access(sys.argv[1], os.W_OK))"
    assert features.run("store", check, "/scratch")[1] == "True False", "root-owned: the image has no such directory"
    assert features.run("store", check, "/cache")[1] == "True True", "filled from the image: its owner's"
    anonymous = [m for m in features.container("store").attrs["Mounts"] if m["Destination"] in ("/scratch", "/cache")]
    assert len(anonymous) == 2 and all(m["Type"] == "volume" for m in anonymous)


def test_default_user_writes_its_fresh_volume_and_the_data_survives_a_replacement(features):
    store = features.container("store")
    step = features.container("store-data-owner")
    assert step.attrs["State"]["ExitCode"] == 0 and step.attrs["Config"]["User"] == "0:0"
    assert store.attrs["Config"]["User"] == "10001:10001"
    assert features.run("store", "print(open('/data/starts').read().split())")[1] == "['1']", "written at start"

    # A new env value and a new image: the store is replaced, its volume is not new.
    features.stack.set_config("cloudservice:services", auto.ConfigValue(value=services("2")), path=False)
    with open(features.project.directory / FIXTURE / "probe.py", "a") as probe:
        probe.write("# a new image\n")
    features.stack.up()
    assert features.container("store").id != store.id and features.container("store").image.id != store.image.id
    assert features.container("store-data-owner").id == step.id, "not prepared again"
    assert features.run("store", "print(open('/data/starts').read().split())")[1] == "['1', '2']"


def test_destroy_leaves_nothing(features):
    anonymous = [m["Name"] for m in features.container("store").attrs["Mounts"] if m["Destination"] == "/scratch"]
    assert features.made()["volumes"] == [f"cloudservice-{features.stack.name}-store-data"]
    features.stack.destroy()
    assert features.made() == {"containers": [], "networks": [], "volumes": []}
    with pytest.raises(docker.errors.NotFound):
        features.docker_client.volumes.get(anonymous[0])
