"""Two CloudServices in one stack (the demo app twice, under two names), on both targets: every
child is named from its component, so nothing clashes, each app keeps its own data and, on Docker,
its own network (one app's containers can neither resolve nor reach the other's)."""

from __future__ import annotations

import pytest
from pulumi import automation as auto

from components.conventions import STACK_LABEL
from support.testing import free_ports, get_json, http, kubectl_json

PROGRAM = '''
"""Two instances of the demo app in one stack."""
import dataclasses
import os

import pulumi

from components.cloudservice import CloudService, CloudServiceArgs
from components.config import load_stack_config
from components.spec import DockerSettings

config = load_stack_config(base_dir=os.path.dirname(os.path.abspath(__file__)))
second = pulumi.Config("second")
targets = {config.name_prefix: config.target_settings}
if config.target == "docker":
    targets[f"{config.name_prefix}-second"] = DockerSettings(host=config.docker.host, port_offset=second.require_int("portOffset"))
else:
    targets[f"{config.name_prefix}-second"] = dataclasses.replace(config.kubernetes, namespace=second.require("namespace"))
for name, target in targets.items():
    app = CloudService(name, CloudServiceArgs.of(config, target))
    pulumi.export(name, app.url)
'''

# Run in a container: for each host, whether its redis port takes a connection (3 s at most).
REACH = """
import socket, sys
def reach(host):
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return "unresolved"
    try:
        socket.create_connection((address, 6379), timeout=3).close()
        return "connected"
    except OSError:
        return "unreachable"
print(*(reach(host) for host in sys.argv[1:]))
"""


@pytest.mark.parametrize("template", ["dev", "staging"], ids=["docker", "kubernetes"])
def test_two_apps_in_one_stack(project, registry, template, docker_client, request):
    if template == "staging":
        request.getfixturevalue("cluster")
    (project.directory / "__main__.py").write_text(PROGRAM)
    first_port, second_port = free_ports(2)
    config = {"portOffset": str(first_port - 8080)} if template == "dev" else {"replicas": "1"}
    stack = project.stack(template, config=config, secrets={"registryPassword": registry.password})
    second_namespace = f"{stack.name.lower()}-second"
    stack.set_config("second:portOffset", auto.ConfigValue(value=str(second_port - 8080)))
    stack.set_config("second:namespace", auto.ConfigValue(value=second_namespace))
    try:
        outputs = stack.up().outputs
        first, second = outputs[f"cloudservice-{stack.name}"].value, outputs[f"cloudservice-{stack.name}-second"].value
        assert first != second
        assert http("POST", f"{first}/notes", b"only in the first app")[0] in (200, 201)
        assert get_json(f"{first}/notes")[1]["notes"] == ["only in the first app"]
        assert get_json(f"{second}/notes")[1]["notes"] == [], "each app has its own store"

        if template == "dev":
            names = {c.name for c in docker_client.containers.list(filters={"label": f"{STACK_LABEL}={stack.name}"})}
            prefix = f"cloudservice-{stack.name}"
            assert names == {f"{prefix}-web", f"{prefix}-redis", f"{prefix}-second-web", f"{prefix}-second-redis"}
            assert {n.name for n in docker_client.networks.list(filters={"label": f"{STACK_LABEL}={stack.name}"})} == {
                prefix,
                f"{prefix}-second",
            }
            # Each app's network is its own: the first app's web reaches its redis, not the second's.
            second_redis = docker_client.containers.get(f"{prefix}-second-redis")
            (second_address,) = [n["IPAddress"] for n in second_redis.attrs["NetworkSettings"]["Networks"].values()]
            probe = docker_client.containers.get(f"{prefix}-web").exec_run(
                ["python3", "-c", REACH, "redis", f"{prefix}-second-redis", second_address]
            )
            assert probe.output.decode().split() == ["connected", "unresolved", "unreachable"], probe.output
        else:
            for namespace in (f"cloudservice-{stack.name.lower()}", second_namespace):
                deployments = kubectl_json("get", "deployments", "-n", namespace)["items"]
                assert {d["metadata"]["name"] for d in deployments} == {"web", "redis"}
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)
