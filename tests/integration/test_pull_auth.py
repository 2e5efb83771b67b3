"""Image pulls on the cluster work the way they do on any real cluster: the node has no registry
credentials of its own, the stack's imagePullSecret is what lets pods pull. A dev stack (Docker
target) builds and pushes images the node has never seen; a cluster stack runs them by digest."""

import json
import re
import time
import uuid

import pytest
from pulumi import automation as auto

from support.testing import edit_app_version, free_port, get_json, kubectl, kubectl_json, wait_for

WEB = "app.kubernetes.io/name=web"
AUTH_ERROR = re.compile(r"401 Unauthorized|unauthorized|authorization failed|no basic auth credentials", re.IGNORECASE)
# The stack's readiness timeout (readyTimeout, 60 s) plus the build of nothing and the engine's own time.
FAIL_FAST_SECONDS = 150


class Builds:
    """The dev stack that builds and pushes; each `push` makes a web image no node has pulled yet."""

    def __init__(self, stack: auto.Stack, project):
        self.stack = stack
        self.project = project

    def push(self) -> dict:
        edit_app_version(self.project, f"pull-{uuid.uuid4().hex[:8]}")
        return self.stack.up().outputs["images"].value


@pytest.fixture(scope="module")
def builds(project, registry, docker_client):
    stack = project.stack(
        "dev", config={"portOffset": str(free_port() - 8080)}, secrets={"registryPassword": registry.password}
    )
    yield Builds(stack, project)
    stack.destroy()
    stack.workspace.remove_stack(stack.name)


@pytest.fixture(scope="module")
def cluster_stack(project, registry, cluster, builds):
    """Runs what the dev stack built (imagesFrom), on the cluster, pulling with its own secret."""
    stack = project.stack(
        "prod",
        config={"imagesFrom": f"organization/cloudservice/{builds.stack.name}", "replicas": "1"},
        secrets={"registryPassword": registry.password},
    )
    yield stack
    stack.destroy()
    stack.workspace.remove_stack(stack.name)


def pulled_by_the_node(namespace: str, image: str) -> bool:
    """The kubelet pulled `image` for a pod of the namespace (it was not on the node before)."""
    events = kubectl_json("-n", namespace, "get", "events", "--field-selector", "reason=Pulled")["items"]
    return any("Successfully pulled image" in e["message"] and image in e["message"] for e in events)


def test_the_node_itself_cannot_pull_from_the_registry(builds, cluster):
    """A pod without an imagePullSecret gets nothing: the node holds no credentials."""
    image = builds.push()["web"]
    namespace = f"it-no-secret-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        kubectl("-n", namespace, "run", "no-secret", f"--image={image}", "--restart=Never")

        def pull_error():
            pod = kubectl_json("-n", namespace, "get", "pod", "no-secret")
            waiting = pod["status"].get("containerStatuses", [{}])[0].get("state", {}).get("waiting", {})
            return waiting if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None

        waiting = wait_for(pull_error, timeout=90, what="the pull to fail")
        events = kubectl("-n", namespace, "get", "events", "--field-selector", "reason=Failed", "-o", "json")
        assert AUTH_ERROR.search(waiting.get("message", "") + events), (waiting, events)
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_stacks_pull_secret_lets_its_pods_pull(cluster_stack, builds):
    result = cluster_stack.up()
    namespace, images = result.outputs["namespace"].value, result.outputs["images"].value
    assert images == builds.stack.outputs()["images"].value
    pods = kubectl_json("-n", namespace, "get", "pods", "-l", WEB)["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert pods[0]["spec"]["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pulled_by_the_node(namespace, images["web"]), "the web image was already on the node: nothing proven"
    assert get_json(result.outputs["url"].value + "/")[0] == 200


def test_a_wrong_pull_secret_fails_fast_and_the_running_version_stays(cluster_stack, builds, registry):
    outputs = cluster_stack.outputs()
    url, namespace = outputs["url"].value, outputs["namespace"].value
    serving = get_json(url + "/")[1]["version"]
    running = {p["metadata"]["uid"] for p in kubectl_json("-n", namespace, "get", "pods", "-l", WEB)["items"]}
    new_web = builds.push()["web"]

    cluster_stack.set_config("cloudservice:registryPassword", auto.ConfigValue("not-the-password", secret=True))
    started = time.monotonic()
    with pytest.raises(auto.CommandError) as failure:
        cluster_stack.up()
    took = time.monotonic() - started
    message = str(failure.value)
    assert new_web.split("@")[1] in message, message  # names the image it could not pull...
    assert AUTH_ERROR.search(message), message  # ...and why
    assert took < FAIL_FAST_SECONDS, f"up failed only after {took:.0f}s"

    # The version that ran before still runs and serves, in the same pods.
    ready = [
        p
        for p in kubectl_json("-n", namespace, "get", "pods", "-l", WEB)["items"]
        if p["metadata"]["uid"] in running and p["status"]["phase"] == "Running"
    ]
    assert len(ready) == len(running), json.dumps([p["metadata"]["name"] for p in ready])
    assert {get_json(url + "/")[1]["version"] for _ in range(10)} == {serving}

    # The right secret again: the new version rolls out.
    cluster_stack.set_config("cloudservice:registryPassword", auto.ConfigValue(registry.password, secret=True))
    cluster_stack.up()
    assert get_json(url + "/")[1]["version"] != serving
    assert pulled_by_the_node(namespace, new_web)
