"""Faults in the middle of a run, on the real platform: the Docker engine restarted once the first
container of an `up` has started, the registry stopped while an `up` pushes, the node (kubelet and
the cluster's containerd) restarted under a running stack. Each fault is made the platform's own way
(platform/lib.sh's daemon helpers, platform/up.sh and platform/cluster/up.sh to bring it back), and
the platform is whole again afterwards (last test: its smoke checks). The tests run in order."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import pytest
from pulumi import automation as auto

from components.conventions import SERVICE_LABEL, STACK_LABEL
from support.testing import (
    ROOT,
    STATE_DIR,
    RegistryCredentials,
    edit_app_version,
    free_port,
    get_json,
    http,
    kubectl_json,
    step_events,
    wait_for,
)
from support.traffic import Prober

pytestmark = pytest.mark.exclusive  # restarts the engine, the registry and the node under running stacks

RECORDS = [f"record {n}" for n in range(20)]
READY_TIMEOUT = 15
"""The dev stack's readyTimeout: how long `up` waits for a container the stopped engine cannot report."""
OUTAGE_BOUND = 120
"""Seconds within which the app answers again through its Service after the node restarted."""
BALLAST_MB = 24
"""Incompressible bytes in the web image, so that its push lasts long enough to be cut in the middle."""
CHECK = "pulumi-python:dynamic/cloudservice:RolloutCheck"

# The platform's own ways to stop its parts (platform/down.sh and platform/cluster/down.sh, one part each).
STOP_ENGINE = (
    "RUN_DIR=$STATE_DIR/docker; pid_of dockerd >/dev/null || die 'no dockerd of the platform'; stop_daemon dockerd 60"
)
STOP_REGISTRY = (
    "DAEMON_EXES[registry]=docker-registry; RUN_DIR=$STATE_DIR/registry; "
    "pid_of registry >/dev/null || die 'no registry of the platform'; stop_daemon registry 10"
)
STOP_NODE = (
    "source platform/cluster/common.sh; pid_of kubelet >/dev/null && pid_of containerd >/dev/null || die 'no node'; "
    "stop_daemon kubelet; stop_daemon containerd"
)


def platform(script: str) -> None:
    """Runs `script` with platform/lib.sh's helpers, from the repository, as the platform's scripts run."""
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\nsource platform/lib.sh\n{script}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(result.stderr)  # what it did, shown with a failure
    assert result.returncode == 0, f"{script}: {result.stderr[-3000:]}"


class InBackground:
    """An Automation API command on another thread; `then` runs once it has ended."""

    def __init__(self, command: Callable[[], object], then: Callable[[], None] = lambda: None):
        self.error: Optional[auto.CommandError] = None

        def run() -> None:
            try:
                command()
            except auto.CommandError as error:
                self.error = error
            finally:
                then()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def failure(self, timeout: float) -> str:
        """The command's error message, once it has failed (it must)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"still running after {timeout}s"
        assert self.error is not None, "it succeeded"
        print(self.error)
        return str(self.error)


def notes(url: str):
    status, body = get_json(url + "/notes")
    return body["notes"] if status == 200 else None


def converge(stack: auto.Stack) -> set[tuple[str, str, str]]:
    """`up`, then a preview that finds nothing to change; returns the (op, type, name) of each step the
    `up` took."""
    events: list = []
    stack.up(on_event=events.append)
    stack.preview(expect_no_changes=True)
    steps = {(m.op.value, m.type, m.urn.rsplit("::", 1)[1]) for m in step_events(events) if m.op.value != "same"}
    print("steps:", steps)
    return steps


# -- Docker target: the engine and the registry ----------------------------------------------------


class Dev:
    def __init__(self, stack: auto.Stack, url: str):
        self.stack, self.url = stack, url


@pytest.fixture(scope="module")
def dev(project, registry, docker_client):
    stack = project.stack(
        "dev",
        config={"portOffset": str(free_port() - 8080), "readyTimeout": str(READY_TIMEOUT)},
        secrets={"registryPassword": registry.password},
    )
    url = stack.up().outputs["url"].value
    for record in RECORDS:
        assert get_json(url + "/notes", "POST", record.encode())[0] == 201
    yield Dev(stack, url)
    stack.destroy()
    stack.workspace.remove_stack(stack.name)


def containers(docker_client, stack_name: str) -> dict[str, object]:
    """The stack's service containers by service name (the one-shot volume step has no service label)."""
    found = docker_client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={stack_name}"})
    return {c.labels[SERVICE_LABEL]: c for c in found if SERVICE_LABEL in c.labels}


def test_an_engine_restart_during_up_fails_it_clearly_and_the_containers_come_back_with_their_data(
    dev, project, docker_client
):
    before = {name: c.id for name, c in containers(docker_client, dev.stack.name).items()}
    edit_app_version(project, "during-engine-restart")
    # Subscribed before the up starts, so that the start of its first container cannot be missed.
    started = docker_client.events(
        decode=True, filters={"type": "container", "event": "start", "label": [f"{STACK_LABEL}={dev.stack.name}"]}
    )
    up = InBackground(dev.stack.up, then=started.close)
    first = next(iter(started), None)
    assert first is not None, f"up ended before any container of the stack started: {up.error}"
    assert first["Actor"]["Attributes"].get(SERVICE_LABEL) == "web", first  # the new version's container
    try:
        platform(STOP_ENGINE)
        # Down for longer than the stack's readyTimeout: `up` gives up waiting, and says on what.
        message = up.failure(timeout=READY_TIMEOUT + 120)
    finally:
        platform("platform/up.sh")
    assert re.search(
        rf"service web did not become ready within {READY_TIMEOUT}s: the Docker engine at \S+ does not answer", message
    ), message

    # The engine restarts the containers by their restart policy: the new web and the redis it had.
    def running() -> bool:
        now = containers(docker_client, dev.stack.name)
        return all(c.status == "running" for c in now.values()) and now

    now = wait_for(running, timeout=60, what="the stack's containers running again")
    assert {name: c.id for name, c in now.items()} == {**before, "web": first["id"]}
    assert wait_for(lambda: notes(dev.url), timeout=60, what="the app answering with its data") == RECORDS
    assert get_json(dev.url + "/")[1]["version"] == "during-engine-restart"
    # The next up only confirms what runs (the check that timed out) and drops the image version the
    # failed up replaced (kept in the engine); then there is nothing to do.
    assert converge(dev.stack) == {
        ("update", CHECK, f"cloudservice-{dev.stack.name}-web-ready"),
        ("delete-replaced", "docker:index/remoteImage:RemoteImage", f"cloudservice-{dev.stack.name}-web"),
    }
    assert {name: c.id for name, c in containers(docker_client, dev.stack.name).items()} == {
        **before,
        "web": first["id"],
    }
    assert notes(dev.url) == RECORDS


def read_new_lines(log: Path, offset: int) -> tuple[list[str], int]:
    with log.open("rb") as stream:
        stream.seek(offset)
        data = stream.read()
    complete = data[: data.rfind(b"\n") + 1]
    return complete.decode(errors="replace").splitlines(), offset + len(complete)


def test_a_registry_stopped_during_a_push_fails_up_and_the_running_version_keeps_serving(
    dev, project, registry, docker_client
):
    web = project.directory / "app" / "web"
    dockerfile = (web / "Dockerfile").read_text()
    (web / "ballast").write_bytes(os.urandom(BALLAST_MB << 20))
    (web / "Dockerfile").write_text(dockerfile.replace("COPY server.py .", "COPY server.py ballast ./"))
    edit_app_version(project, "after-registry-outage")
    running = containers(docker_client, dev.stack.name)["web"].id
    version = get_json(dev.url + "/")[1]["version"]
    log = STATE_DIR / "registry" / "registry.log"
    offset = log.stat().st_size
    # The registry names each request it serves as it begins: a layer's upload under way is the push
    # in progress (its manifest, last, is not there yet).
    uploading = re.compile(r'msg="authorized request".*http\.request\.method=PATCH.*uri="?/v2/cloudservice/web/blobs/')
    try:
        with Prober(dev.url) as prober:
            up = InBackground(dev.stack.up)
            seen: list[str] = []
            while up.thread.is_alive() and not any(uploading.search(line) for line in seen):
                lines, offset = read_new_lines(log, offset)
                seen += lines
                time.sleep(0.02)
            assert any(uploading.search(line) for line in seen), f"up ended before the web push began: {up.error}"
            platform(STOP_REGISTRY)
            message = up.failure(timeout=300)
        print("registry outage:", prober.report())
        assert "localhost:5000" in message, message
        assert prober.failures == Counter() and set(prober.versions) == {version}, prober.report()
        lines, _ = read_new_lines(log, offset)
        assert not [line for line in seen + lines if "PUT /v2/cloudservice/web/manifests/" in line], (
            "the push completed"
        )
        assert containers(docker_client, dev.stack.name)["web"].id == running
    finally:
        platform("platform/up.sh")
        (web / "ballast").unlink()
        (web / "Dockerfile").write_text(dockerfile)
    # Once the registry is back, up converges: the new version runs, with the data of the old one.
    assert ("replace", "docker:index/container:Container", f"cloudservice-{dev.stack.name}-web") in converge(dev.stack)
    assert get_json(dev.url + "/")[1]["version"] == "after-registry-outage"
    assert notes(dev.url) == RECORDS


# -- Kubernetes target: the node -------------------------------------------------------------------


def pod_containers(namespace: str, stack_name: str) -> dict[str, str]:
    """Pod name to its containers' IDs, for every pod of the stack."""
    pods = kubectl_json("-n", namespace, "get", "pods", "-l", f"{STACK_LABEL}={stack_name}")["items"]
    return {
        pod["metadata"]["name"]: ",".join(sorted(c.get("containerID", "") for c in pod["status"]["containerStatuses"]))
        for pod in pods
    }


def daemon_pid(name: str) -> str:
    return (STATE_DIR / "cluster" / "run" / f"{name}.pid").read_text().strip()


def test_a_node_restart_under_a_running_stack_ends_within_a_bound_with_the_data_intact(project, registry, cluster):
    stack = project.stack("staging", secrets={"registryPassword": registry.password})
    try:
        outputs = stack.up().outputs
        url, namespace = outputs["url"].value, outputs["namespace"].value
        for record in RECORDS:
            assert get_json(url + "/notes", "POST", record.encode())[0] == 201
        before = pod_containers(namespace, stack.name)
        api_server = daemon_pid("kube-apiserver")
        with Prober(url, timeout=2) as prober:
            wait_for(lambda: prober.succeeded_in_a_row >= 20, timeout=30, what="the prober's first answers")
            platform(STOP_NODE)
            # As after a reboot: the pods' leftover processes are killed, containerd and kubelet start.
            platform("platform/cluster/up.sh")
            wait_for(
                lambda: prober.succeeded_in_a_row >= 100,
                timeout=OUTAGE_BOUND,
                interval=0.2,
                what="the app answering through its Service again",
            )
        print("node restart:", prober.report())
        assert prober.failed > 0 and prober.outage <= OUTAGE_BOUND, prober.report()
        assert daemon_pid("kube-apiserver") == api_server
        after = pod_containers(namespace, stack.name)
        assert after.keys() == before.keys(), (before, after)  # the same pods, back...
        assert all(after[pod] != before[pod] for pod in before), (before, after)  # ...in new containers
        assert wait_for(lambda: notes(url), timeout=60, what="the notes") == RECORDS
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


# -- last: the platform is whole -------------------------------------------------------------------


def test_the_platform_is_whole_after_the_faults(docker_client):
    docker_client.ping()
    platform("RUN_DIR=$STATE_DIR/docker pid_of dockerd")  # the platform's own engine, which down.sh stops
    credentials = RegistryCredentials.load()
    assert http("GET", credentials.url + "/v2/", auth=(credentials.username, credentials.password))[0] == 200
    platform("platform/cluster/smoke-test.sh")
