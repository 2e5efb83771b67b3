"""The staging stack (Kubernetes target) on the real cluster: up with the policy pack, no-op,
zero-downtime rollout, rollback by config, data in the PVC, self-healing, hardening in the running
pods and the Pod Security the namespace enforces, secrets (encrypted in the state and in etcd),
destroy. The tests run in order."""

import base64
import json
import re
from collections import Counter

import pytest
import yaml
from pulumi import automation as auto

from components.conventions import STACK_LABEL
from components.pod_security import namespace_labels
from support.testing import (
    ROOT,
    STATE_DIR,
    Prober,
    changed_resources,
    edit_app_version,
    get_json,
    http,
    kubectl,
    kubectl_json,
    step_events,
    wait_for,
)

APP_SECRET = "staging-secret-4d1e8b"
# etcd (plain http on loopback, as the API server reaches it) and the key the API server encrypts Secrets with.
ETCD_RANGE = "http://127.0.0.1:2379/v3/kv/range"
SECRETS_KEY = STATE_DIR / "cluster" / "pki" / "secrets-encryption.key"
MIN_REQUESTS = 500
# Everything every command of this module printed (and every error it raised): searched for secrets last.
OUTPUT: list[str] = []


def web_pods(namespace: str) -> dict[str, str]:
    """Name to UID of the web pods that exist (terminating ones included)."""
    pods = kubectl_json("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=web")["items"]
    return {pod["metadata"]["name"]: pod["metadata"]["uid"] for pod in pods}


class Lifecycle:
    def __init__(self, stack: auto.Stack):
        self.stack = stack
        self.url = ""
        self.namespace = ""
        self.first_images: dict = {}

    def up_under_load(self, **kwargs) -> tuple[auto.UpResult, Prober]:
        """`up` while the prober runs, until every web pod that ran before is gone; at least
        MIN_REQUESTS requests and not one failed."""
        before = web_pods(self.namespace)
        with Prober(self.url) as prober:
            result = self.stack.up(on_output=OUTPUT.append, **kwargs)
            wait_for(
                lambda: not set(before) & set(web_pods(self.namespace)),
                timeout=180,
                what="the web pods of the previous version to be gone",
            )
        print("rollout:", prober.report())
        assert prober.failures == Counter(), prober.report()
        assert prober.requests >= MIN_REQUESTS, prober.report()
        return result, prober


@pytest.fixture(scope="module")
def staging(project, registry, cluster):
    services = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["services"]["value"]
    services["web"]["secretEnv"] = {"APP_SECRET": "appSecret"}
    stack = project.stack(
        "staging",
        config={"services": json.dumps(services)},
        secrets={"registryPassword": registry.password, "appSecret": APP_SECRET},
    )
    lifecycle = Lifecycle(stack)
    yield lifecycle
    stack.destroy(on_output=OUTPUT.append)
    stack.workspace.remove_stack(stack.name)


def notes(url):
    status, body = get_json(url + "/notes")
    return body["notes"] if status == 200 else None


def test_up_with_the_policy_pack_rolls_out_from_the_private_registry(staging, project, registry):
    """The stack as built is compliant: `up` with the production policy pack passes."""
    result = staging.stack.up(policy_packs=[str(project.directory / "policy")], on_output=OUTPUT.append)
    outputs = {k: v.value for k, v in result.outputs.items()}
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
    staging.stack.preview(expect_no_changes=True, on_output=OUTPUT.append)


def _in_pod(namespace: str, pod: str, script: str) -> str:
    return kubectl("-n", namespace, "exec", pod, "--", "sh", "-c", script)


def test_running_pods_are_hardened(staging):
    """What the pods can do, asked inside them: their user, a read-only root, no capabilities, no new
    privileges, and the limits the kernel enforces."""
    ns = staging.namespace
    for service, uid in (("web", "10001"), ("redis", "10002")):
        pod = kubectl_json("-n", ns, "get", "pods", "-l", f"app.kubernetes.io/name={service}")["items"][0]
        name = pod["metadata"]["name"]
        report = _in_pod(
            ns,
            name,
            "id -u; id -g; touch /hardening-probe 2>/dev/null && echo writable || echo read-only; "
            "touch /tmp/probe && echo tmp-writable; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status; "
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        )
        lines = report.split()
        assert lines[:2] == [uid, uid], (service, report)
        assert "read-only" in lines and "writable" not in lines and "tmp-writable" in lines, (service, report)
        # A non-root process has no effective capabilities anyway: the bounding set shows they were dropped.
        status = dict(re.findall(r"^(CapEff|CapPrm|CapBnd|NoNewPrivs):\s+(\S+)$", report, re.MULTILINE))
        assert status == {"CapPrm": "0" * 16, "CapEff": "0" * 16, "CapBnd": "0" * 16, "NoNewPrivs": "1"}, (
            service,
            report,
        )
        limit = pod["spec"]["containers"][0]["resources"]["limits"]["memory"]
        assert int(lines[-1]) == int(limit.removesuffix("Mi")) * 1024 * 1024, (service, report)


def _running_pods(namespace: str) -> dict[str, str]:
    """Name to UID of the namespace's pods, each of them running and ready."""
    pods = kubectl_json("-n", namespace, "get", "pods")["items"]
    for pod in pods:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        assert pod["status"]["phase"] == "Running" and ready, (pod["metadata"]["name"], pod["status"])
    return {pod["metadata"]["name"]: pod["metadata"]["uid"] for pod in pods}


def test_the_namespace_refuses_root_privileged_or_capable_pods(staging, tmp_path):
    """The cluster enforces the hardening, whoever creates the pod: the stack's namespace is
    `restricted`, and the API server refuses the web pod made root, privileged or given a capability,
    while the pod as the stack builds it is admitted and the stack's own pods keep running."""
    ns = staging.namespace
    labels = kubectl_json("get", "namespace", ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted", labels
    assert {k: v for k, v in labels.items() if k.startswith("pod-security.kubernetes.io/")} == namespace_labels(
        "restricted"
    )
    before = _running_pods(ns)
    assert len(before) == 3, "two web pods and one redis pod"

    def create(name: str, spec: dict, *flags: str) -> None:
        manifest = tmp_path / f"{name}.json"
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))
        kubectl("-n", ns, "create", "-f", str(manifest), *flags)

    built = kubectl_json("-n", ns, "get", "deployment", "web")["spec"]["template"]["spec"]
    create("pod-security-as-built", built, "--dry-run=server")  # admitted: what the variants change is refused
    (container,) = built["containers"]
    hardened = container["securityContext"]
    # privileged=true with allowPrivilegeEscalation=false is invalid before admission: the field goes.
    privileged = {k: v for k, v in hardened.items() if k != "allowPrivilegeEscalation"} | {"privileged": True}
    capable = hardened["capabilities"] | {"add": ["NET_RAW"]}  # in Docker's default set, outside restricted's
    variants = {
        "root": (
            built | {"securityContext": built["securityContext"] | {"runAsNonRoot": False, "runAsUser": 0}},
            ["runAsNonRoot != true", "runAsUser=0"],
        ),
        "privileged": (
            built | {"containers": [container | {"securityContext": privileged}]},
            ['privileged (container "web" must not set securityContext.privileged=true)'],
        ),
        "capability": (
            built | {"containers": [container | {"securityContext": hardened | {"capabilities": capable}}]},
            ["unrestricted capabilities", 'container "web" must not include "NET_RAW"'],
        ),
    }
    try:
        for variant, (spec, reasons) in variants.items():
            with pytest.raises(AssertionError) as refused:
                create(f"pod-security-{variant}", spec)
            message = str(refused.value)
            assert f'pods "pod-security-{variant}" is forbidden: violates PodSecurity "restricted:v1.32"' in message
            for reason in reasons:
                assert reason in message, (variant, message)
    finally:  # a pod the namespace wrongly admitted must not outlive the test
        kubectl(
            "-n", ns, "delete", "pod", *(f"pod-security-{v}" for v in variants), "--ignore-not-found", "--wait=false"
        )
    assert _running_pods(ns) == before


def test_a_changed_pod_security_level_relabels_the_namespace_in_place(staging):
    """An opt-out that lowers the level (a capability outside baseline: privileged) is an update of the
    namespace's labels, never a replacement (which would delete everything in it)."""
    original = staging.stack.get_config("cloudservice:services")
    services = json.loads(original.value)
    services["web"]["capabilities"] = ["NET_ADMIN"]
    staging.stack.set_config("cloudservice:services", auto.ConfigValue(json.dumps(services)))
    events: list = []
    try:
        staging.stack.preview(on_event=events.append, on_output=OUTPUT.append)
    finally:
        staging.stack.set_config("cloudservice:services", original)
    (namespace,) = [m for m in step_events(events) if m.type == "kubernetes:core/v1:Namespace"]
    assert namespace.op == "update", namespace
    assert set(namespace.detailed_diff) == {
        f'metadata.labels["pod-security.kubernetes.io/{mode}"]' for mode in ("enforce", "warn", "audit")
    }, namespace.detailed_diff


def test_image_update_rolls_out_with_zero_failed_requests(staging, project):
    edit_app_version(project, "2")
    events = []
    result, prober = staging.up_under_load(on_event=events.append)
    assert prober.versions["1"] > 0 and prober.versions["2"] > 0, prober.report()
    assert set(prober.versions) == {"1", "2"} and prober.last_version == "2", prober.report()
    web = f"cloudservice-{staging.stack.name}-web"
    assert changed_resources(events) == {
        ("docker:index/remoteImage:RemoteImage", web),
        ("docker:index/registryImage:RegistryImage", web),
        ("kubernetes:apps/v1:Deployment", web),
        ("pulumi-python:dynamic/cloudservice:RolloutCheck", f"{web}-ready"),  # the rollout is waited for
    }
    assert result.outputs["images"].value["redis"] == staging.first_images["redis"]
    assert notes(staging.url) == ["alpha", "beta", "gamma"]


def test_rollback_by_config_serves_the_first_version_again(staging):
    staging.stack.set_config("cloudservice:images.web", auto.ConfigValue(staging.first_images["web"]), path=True)
    result, prober = staging.up_under_load()
    assert result.outputs["images"].value["web"] == staging.first_images["web"]
    # The second version served until the first was ready again; once its pods are gone, only the first.
    assert set(prober.versions) == {"1", "2"} and prober.last_version == "1", prober.report()
    assert {get_json(staging.url + "/")[1]["version"] for _ in range(20)} == {"1"}
    assert notes(staging.url) == ["alpha", "beta", "gamma"]


def test_deleted_pods_are_replaced_and_the_stack_stays_converged(staging):
    ns = staging.namespace

    def pods() -> dict[str, dict]:
        return {pod["metadata"]["uid"]: pod for pod in kubectl_json("-n", ns, "get", "pods")["items"]}

    def ready_replacements():
        current = [pod for uid, pod in pods().items() if uid not in deleted]
        ready = [
            pod
            for pod in current
            if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        ]
        return len(ready) == 3 and len(current) == 3

    deleted = set(pods())
    assert len(deleted) == 3, "two web pods and one redis pod"
    kubectl("-n", ns, "delete", "pod", "-l", "app.kubernetes.io/name=redis", "--wait=true")
    kubectl("-n", ns, "delete", "pod", "-l", "app.kubernetes.io/name=web", "--wait=false")
    wait_for(ready_replacements, timeout=180, what="three new pods (new UIDs), ready")
    wait_for(lambda: notes(staging.url) == ["alpha", "beta", "gamma"], timeout=120, what="the app with its data")
    staging.stack.refresh(on_output=OUTPUT.append)
    staging.stack.preview(expect_no_changes=True, on_output=OUTPUT.append)


def test_prod_promotes_the_digests_staging_runs_without_building(staging, project, registry):
    """Build once, deploy many: prod takes staging's images by StackReference, passes the policies."""
    prod = project.stack(
        "prod",
        config={"imagesFrom": f"organization/cloudservice/{staging.stack.name}"},
        secrets={"registryPassword": registry.password},
    )
    try:
        events = []
        result = prod.up(
            policy_packs=[str(project.directory / "policy")], on_event=events.append, on_output=OUTPUT.append
        )
        types = {m.type for m in step_events(events)}
        assert not any(t.startswith("docker:") for t in types), types  # nothing built, pushed or pulled
        assert result.outputs["images"].value == staging.stack.outputs()["images"].value
        namespace = result.outputs["namespace"].value
        web = kubectl_json("-n", namespace, "get", "deployment", "web")
        assert web["status"]["readyReplicas"] == 3
        assert web["spec"]["template"]["spec"]["containers"][0]["image"] == result.outputs["images"].value["web"]
        assert get_json(result.outputs["url"].value + "/")[0] == 200
    finally:
        prod.destroy(on_output=OUTPUT.append)
        prod.workspace.remove_stack(prod.name)


def test_secrets_are_encrypted_in_the_state(staging, project, registry):
    state = project.state_file(staging.stack.name).read_text()
    assert '"ciphertext"' in state
    for secret in (registry.password, APP_SECRET):
        assert secret not in state
    # ...while the cluster has them, where they belong.
    pull = kubectl_json("-n", staging.namespace, "get", "secret", "registry-credentials")
    assert registry.password in base64.b64decode(pull["data"][".dockerconfigjson"]).decode()
    app = kubectl_json("-n", staging.namespace, "get", "secret", "app-secrets")
    assert base64.b64decode(app["data"]["appSecret"]).decode() == APP_SECRET


def etcd_value(key: str) -> bytes:
    """The raw value etcd stores under `key`, read over loopback through its v3 JSON gateway."""
    status, reply = get_json(ETCD_RANGE, "POST", json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode())
    assert status == 200 and reply.get("kvs"), (key, status, reply)
    return base64.b64decode(reply["kvs"][0]["value"])


def test_the_cluster_stores_the_stacks_secrets_encrypted_in_etcd(staging, registry):
    """What etcd holds of the pull Secret and the app Secret: secretbox ciphertext, neither the
    registry password nor the app secret; the key is readable by root only."""
    for name in ("registry-credentials", "app-secrets"):
        stored = etcd_value(f"/registry/secrets/{staging.namespace}/{name}")
        assert stored.startswith(b"k8s:enc:secretbox:v1:secretbox-1:"), (name, stored[:40])
        for secret in (registry.password, APP_SECRET):
            assert secret.encode() not in stored, name
    assert SECRETS_KEY.stat().st_mode & 0o777 == 0o600


def test_destroy_removes_every_object_by_name(staging):
    ns = staging.namespace
    names = {
        kind: [item["metadata"]["name"] for item in kubectl_json("-n", ns, "get", kind)["items"]]
        for kind in ("deployment", "service", "pvc", "secret")
    }
    stack_secrets = sorted(name for name in names["secret"] if not name.startswith("default-token"))
    assert sorted(names["deployment"]) == ["redis", "web"] and sorted(names["service"]) == ["redis", "web"], names
    assert names["pvc"] == ["redis-data"], names
    assert {"registry-credentials", "app-secrets"} <= set(stack_secrets), names
    volume = kubectl_json("-n", ns, "get", "pvc", "redis-data")["spec"]["volumeName"]
    assert kubectl_json("get", "pv", volume)["spec"]["claimRef"]["namespace"] == ns

    staging.stack.destroy(on_output=OUTPUT.append)
    assert not kubectl("get", "namespace", ns, "--ignore-not-found", "-o", "name").strip()
    for kind, found in names.items():
        for name in found:
            assert not kubectl("-n", ns, "get", kind, name, "--ignore-not-found", "-o", "name").strip(), (kind, name)
    wait_for(
        lambda: not kubectl("get", "pv", volume, "--ignore-not-found", "-o", "name").strip(),
        timeout=60,
        what=f"PersistentVolume {volume} to be deleted",
    )
    selector = f"{STACK_LABEL}={staging.stack.name}"
    assert kubectl("get", "all,pvc,secret,configmap,namespace", "-A", "-l", selector, "-o", "name").strip() == ""
    assert not _answers(staging.url)


def test_no_command_printed_a_secret(registry):
    assert len(OUTPUT) > 50, "the commands' output was not collected"
    printed = "\n".join(OUTPUT)
    for secret in (registry.password, APP_SECRET):
        assert secret not in printed


def _answers(url: str) -> bool:
    try:
        return http("GET", url + "/", timeout=2)[0] == 200
    except OSError:
        return False
