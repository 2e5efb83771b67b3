"""Interrupted runs converge. A plain `pulumi up` is killed with SIGKILL at a point of its work (what
a cancelled CI job, an OOM kill or a closed laptop does); then devtools/recover.py, which `make up`
and `make destroy` run first, and a plain `up` bring the stack to what the program declares: the
app answers, a preview finds nothing to change, the data written before is intact, and destroy
leaves nothing. No Docker or kubectl command by hand. The tests run in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest
from pulumi import automation as auto

from components.conventions import STACK_LABEL
from support.testing import edit_app_version, free_port, get_json, kubectl, recover, wait_for

RECORDS = [f"record {n}" for n in range(20)]


def kill_up_when(project, stack: auto.Stack, point: Callable[[dict], bool], delay: float = 0.0) -> dict:
    """Runs `pulumi up` (the CLI itself, as a user would) and SIGKILLs it `delay` seconds after the
    first engine event for which `point(event)` is true; returns that event."""
    events = project.directory / f"events-{uuid.uuid4().hex[:6]}.jsonl"
    log = (project.directory / f"{events.stem}.log").open("w")
    cli = subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--stack", stack.name, "--event-log", str(events)],
        cwd=project.directory,
        env={**os.environ, **project.env, "PULUMI_DEBUG_COMMANDS": "true"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(events.exists, timeout=60, interval=0.05, what="the engine's event log")
        line = b""
        with events.open("rb") as stream:
            while cli.poll() is None:
                line += stream.readline()
                if not line.endswith(b"\n"):
                    time.sleep(0.05)
                    continue
                event, line = json.loads(line), b""
                if point(event):
                    time.sleep(delay)
                    cli.send_signal(signal.SIGKILL)
                    assert cli.wait(timeout=30) == -signal.SIGKILL
                    return event
        raise AssertionError(f"up ended (exit {cli.returncode}) before the point to kill it at; see {log.name}")
    finally:
        if cli.poll() is None:
            cli.kill()
        log.close()


def step(event: dict, kind: str, type_: str, name: str) -> bool:
    """`event` is the engine starting (resourcePreEvent) or finishing (resOutputsEvent) a real step
    on resource `name` of type `type_`."""
    metadata = (event.get(kind) or {}).get("metadata") or {}
    return (
        metadata.get("type") == type_
        and metadata.get("urn", "").endswith(f"::{name}")
        and metadata.get("op") not in ("same", "read", None)
    )


def converge(stack: auto.Stack) -> auto.UpResult:
    result = stack.up()
    stack.preview(expect_no_changes=True)
    assert not stack.export_stack().deployment.get("pending_operations")
    return result


def plugins_left(project) -> list[int]:
    """Processes still running in the project copy (plugins a killed CLI left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) == project.directory.resolve():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def notes(url: str):
    status, body = get_json(url + "/notes")
    return body["notes"] if status == 200 else None


# -- Docker target --------------------------------------------------------------------------------


class Dev:
    def __init__(self, stack: auto.Stack, host_port: int):
        self.stack = stack
        self.url = f"http://127.0.0.1:{host_port}"


@pytest.fixture(scope="module")
def dev(project, registry, docker_client):
    host_port = free_port()
    stack = project.stack(
        "dev", config={"portOffset": str(host_port - 8080)}, secrets={"registryPassword": registry.password}
    )
    yield Dev(stack, host_port)
    recover(project, stack.name)
    stack.destroy()
    stack.workspace.remove_stack(stack.name)


def labelled(docker_client, stack_name: str) -> dict[str, list[str]]:
    label = {"label": f"{STACK_LABEL}={stack_name}"}
    return {
        "containers": sorted(c.name for c in docker_client.containers.list(all=True, filters=label)),
        "networks": sorted(n.name for n in docker_client.networks.list(filters=label)),
        "volumes": sorted(v.name for v in docker_client.volumes.list(filters=label)),
    }


def test_killed_right_after_the_network_is_created(dev, project, docker_client):
    kill_up_when(
        project,
        dev.stack,
        lambda e: step(e, "resOutputsEvent", "docker:index/network:Network", f"cloudservice-{dev.stack.name}-network"),
    )
    assert labelled(docker_client, dev.stack.name)["networks"], "the network was not created before the kill"
    recover(project, dev.stack.name)
    assert not plugins_left(project)
    outputs = converge(dev.stack).outputs
    assert outputs["url"].value == dev.url and get_json(dev.url + "/")[0] == 200
    for record in RECORDS:
        assert get_json(dev.url + "/notes", "POST", record.encode())[0] == 201
    assert len(labelled(docker_client, dev.stack.name)["networks"]) == 1


def test_killed_during_the_image_push(dev, project, docker_client):
    edit_app_version(project, "after-killed-push")
    kill_up_when(
        project,
        dev.stack,
        lambda e: step(
            e, "resourcePreEvent", "docker:index/registryImage:RegistryImage", f"cloudservice-{dev.stack.name}-web"
        ),
    )
    recover(project, dev.stack.name)
    converge(dev.stack)
    assert get_json(dev.url + "/")[1]["version"] == "after-killed-push"
    assert notes(dev.url) == RECORDS


def test_killed_during_container_creation(dev, project, docker_client):
    edit_app_version(project, "after-killed-create")
    # The new container exists and is starting (up waits for it to be healthy) when the CLI dies.
    kill_up_when(
        project,
        dev.stack,
        lambda e: step(e, "resourcePreEvent", "docker:index/container:Container", f"cloudservice-{dev.stack.name}-web"),
        delay=1.5,
    )
    recover(project, dev.stack.name)
    converge(dev.stack)
    assert get_json(dev.url + "/")[1]["version"] == "after-killed-create"
    assert wait_for(lambda: notes(dev.url), timeout=30, what="the notes") == RECORDS
    made = labelled(docker_client, dev.stack.name)
    assert [len(names) for names in made.values()] == [3, 1, 1], made  # web, redis, redis's volume owner step


def test_destroy_after_the_interruptions_leaves_nothing(dev, project, docker_client):
    # A kill while the file backend writes the state leaves its metadata sidecar cut off (seen under
    # load), and no command can load the stack any more.
    (project.state_file(dev.stack.name).parent / f"{dev.stack.name}.json.attrs").write_text("")
    with pytest.raises(auto.CommandError, match="failed to load checkpoint"):
        dev.stack.export_stack()
    recover(project, dev.stack.name)
    dev.stack.destroy()
    assert labelled(docker_client, dev.stack.name) == {"containers": [], "networks": [], "volumes": []}
    assert not plugins_left(project)


# -- Kubernetes target ----------------------------------------------------------------------------


def test_killed_during_kubernetes_rollouts(project, registry, cluster):
    """Killed while the first rollout creates the Deployments (their objects are adopted), then while
    an update rolls out (the next up applies it again)."""
    stack = project.stack("staging", secrets={"registryPassword": registry.password})

    def web_deployment(event):
        return step(event, "resourcePreEvent", "kubernetes:apps/v1:Deployment", f"cloudservice-{stack.name}-web")

    try:
        kill_up_when(project, stack, web_deployment, delay=1)
        recover(project, stack.name)
        assert not plugins_left(project)
        outputs = converge(stack).outputs
        url, namespace = outputs["url"].value, outputs["namespace"].value
        for record in RECORDS:
            assert get_json(url + "/notes", "POST", record.encode())[0] == 201

        edit_app_version(project, "after-killed-rollout")
        kill_up_when(project, stack, web_deployment, delay=1)
        recover(project, stack.name)
        assert not plugins_left(project)
        converge(stack)
        assert {get_json(url + "/")[1]["version"] for _ in range(10)} == {"after-killed-rollout"}
        assert notes(url) == RECORDS
    finally:
        recover(project, stack.name)
        stack.destroy()
        stack.workspace.remove_stack(stack.name)
    selector = f"{STACK_LABEL}={stack.name}"
    assert kubectl("get", "all,pvc,secret,namespace", "-A", "-l", selector, "-o", "name").strip() == ""
    assert not kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").strip()
