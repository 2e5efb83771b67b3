"""The staging stack (Kubernetes target) on the real cluster: up, no-op, zero-downtime rollout,
rollback by config, data in the PVC, self-healing, destroy. The tests run in order."""

import threading
import time
from collections import Counter

import pytest
from pulumi import automation as auto

from support.testing import (
    STACK_LABEL, changed_resources, edit_app_version, get_json, http, kubectl, kubectl_json, step_events, wait_for,
)


class Prober:
    """Requests the app continuously from another thread, counting every answer."""

    def __init__(self, url: str):
        self.url = url
        self.statuses: Counter = Counter()
        self.versions: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body = get_json(self.url + "/")
                self.statuses[status] += 1
                if status == 200:
                    self.versions[body["version"]] += 1
            except OSError as error:
                self.statuses[f"error: {getattr(error, 'reason', error)}"] += 1
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def failures(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)


class Lifecycle:
    def __init__(self, stack: auto.Stack):
        self.stack = stack
        self.url = ""
        self.namespace = ""
        self.first_images: dict = {}


@pytest.fixture(scope="module")
def staging(project, registry, cluster):
    stack = project.stack("staging", secrets={"registryPassword": registry.password})
    lifecycle = Lifecycle(stack)
    yield lifecycle
    stack.destroy()
    stack.workspace.remove_stack(stack.name)


def notes(url):
    status, body = get_json(url + "/notes")
    return body["notes"] if status == 200 else None


def test_up_rolls_out_from_the_private_registry(staging, registry):
    outputs = {k: v.value for k, v in staging.stack.up().outputs.items()}
    staging.url, staging.namespace, staging.first_images = outputs["url"], outputs["namespace"], outputs["images"]
    ns = staging.namespace

    web = kubectl_json("-n", ns, "get", "deployment", "web")
    assert web["status"]["readyReplicas"] == 2 == web["spec"]["replicas"]
    pods = kubectl_json("-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        # Pulled by digest from the authenticated registry, with the stack's imagePullSecret.
        assert pod["spec"]["containers"][0]["image"] == staging.first_images["web"]
        assert pod["spec"]["imagePullSecrets"] == [{"name": "registry-credentials"}]
        assert pod["status"]["containerStatuses"][0]["imageID"].endswith(staging.first_images["web"].split("@")[1])
    secret = kubectl_json("-n", ns, "get", "secret", "registry-credentials")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"

    status, home = get_json(staging.url + "/")
    assert status == 200 and home["version"] == "1"
    for note in ("alpha", "beta", "gamma"):
        assert get_json(staging.url + "/notes", "POST", note.encode())[0] == 201
    assert notes(staging.url) == ["alpha", "beta", "gamma"]
    claim = kubectl_json("-n", ns, "get", "pvc", "redis-data")
    assert claim["status"]["phase"] == "Bound"


def test_no_changes_right_after_up(staging):
    staging.stack.preview(expect_no_changes=True)


def test_image_update_rolls_out_with_zero_failed_requests(staging, project):
    edit_app_version(project, "2")
    events = []
    with Prober(staging.url) as prober:
        result = staging.stack.up(on_event=events.append)
        wait_for(lambda: get_json(staging.url + "/")[1]["version"] == "2", timeout=60, what="version 2")
        time.sleep(1)
    print(f"rollout: {sum(prober.statuses.values())} requests, statuses {dict(prober.statuses)}, "
          f"versions {dict(prober.versions)}")
    assert prober.failures == 0, prober.statuses
    assert prober.versions["1"] > 0 and prober.versions["2"] > 0
    assert changed_resources(events) == {
        ("docker:index/remoteImage:RemoteImage", f"cloudservice-{staging.stack.name}-web"),
        ("docker:index/registryImage:RegistryImage", f"cloudservice-{staging.stack.name}-web"),
        ("kubernetes:apps/v1:Deployment", f"cloudservice-{staging.stack.name}-web"),
    }
    assert result.outputs["images"].value["redis"] == staging.first_images["redis"]
    assert notes(staging.url) == ["alpha", "beta", "gamma"]


def test_rollback_by_config(staging):
    staging.stack.set_config("cloudservice:images.web", auto.ConfigValue(staging.first_images["web"]), path=True)
    with Prober(staging.url) as prober:
        staging.stack.up()
        wait_for(lambda: get_json(staging.url + "/")[1]["version"] == "1", timeout=60, what="version 1 again")
    assert prober.failures == 0, prober.statuses
    assert notes(staging.url) == ["alpha", "beta", "gamma"]


def test_deleted_pods_are_replaced_and_the_stack_stays_converged(staging):
    ns = staging.namespace
    kubectl("-n", ns, "delete", "pod", "-l", "app.kubernetes.io/name=redis", "--wait=true")
    kubectl("-n", ns, "delete", "pod", "-l", "app.kubernetes.io/name=web", "--wait=false")
    wait_for(lambda: notes(staging.url) == ["alpha", "beta", "gamma"], timeout=120, what="the app with its data")
    wait_for(lambda: kubectl_json("-n", ns, "get", "deployment", "web")["status"].get("readyReplicas") == 2,
             timeout=120, what="both web replicas")
    staging.stack.refresh()
    staging.stack.preview(expect_no_changes=True)


def test_prod_promotes_the_digests_staging_runs_without_building(staging, project, registry):
    """Build once, deploy many: prod takes staging's images by StackReference, passes the policies."""
    prod = project.stack("prod", config={"imagesFrom": f"organization/cloudservice/{staging.stack.name}"},
                         secrets={"registryPassword": registry.password})
    try:
        events = []
        result = prod.up(policy_packs=[str(project.directory / "policy")], on_event=events.append)
        types = {m.type for m in step_events(events)}
        assert not any(t.startswith("docker:") for t in types), types  # nothing built, pushed or pulled
        assert result.outputs["images"].value == staging.stack.outputs()["images"].value
        namespace = result.outputs["namespace"].value
        web = kubectl_json("-n", namespace, "get", "deployment", "web")
        assert web["status"]["readyReplicas"] == 3
        assert web["spec"]["template"]["spec"]["containers"][0]["image"] == result.outputs["images"].value["web"]
        assert get_json(result.outputs["url"].value + "/")[0] == 200
    finally:
        prod.destroy()
        prod.workspace.remove_stack(prod.name)


def test_destroy_leaves_no_object_with_the_stack_label(staging):
    staging.stack.destroy()
    selector = f"{STACK_LABEL}={staging.stack.name}"
    leftovers = kubectl("get", "all,pvc,secret,configmap,namespace", "-A", "-l", selector, "-o", "name")
    assert leftovers.strip() == ""
    assert kubectl("get", "namespace", staging.namespace, check=False) == ""
    assert not _answers(staging.url)


def _answers(url: str) -> bool:
    try:
        return http("GET", url + "/", timeout=2)[0] == 200
    except OSError:
        return False
