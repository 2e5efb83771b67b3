"""policy/: each production rule passes on what our components declare and fires on a violation,
through the pure functions, through the pack's analyzer (as the engine calls it), and in a served
pack process."""

from __future__ import annotations

import copy
import os
import runpy
import subprocess
import sys

import pytest
import rules  # policy/rules.py (pytest.ini: pythonpath)
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from harness import (
    REGISTRY,
    ROOT,
    app_args,
    default_services,
    docker_config,
    kubernetes_config,
    make_config,
    stack_values,
)
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from recorder import CONTAINER, DEPLOYMENT, JOB, fake_digest, install_mocks, run, unwrap_secrets

from components.cloudservice import CloudService
from components.image import Engine

POLICY_DIR = os.path.join(ROOT, "policy")

PACK = runpy.run_path(os.path.join(POLICY_DIR, "__main__.py"), run_name="cloudservice_policy_pack")
RULE_NAMES = [rule.name for rule in rules.RULES]
IMAGES, LIMITS, PROBES, NON_ROOT, PRIVILEGED, READ_ONLY, CAPABILITIES = RULE_NAMES
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown-string sentinel in a preview


def declared(config, stack="dev", stack_outputs=None):
    """(type, workload name, props) of every Container, Deployment and Job the app declares for `config`."""
    mocks = install_mocks(stack=stack, stack_outputs=stack_outputs)
    run(lambda: CloudService(config.name_prefix, app_args(config)))
    return [
        (r.type, r.name.removeprefix(f"{config.name_prefix}-"), unwrap_secrets(r.inputs))
        for r in mocks.resources
        if r.type in (CONTAINER, DEPLOYMENT, JOB)
    ]


@pytest.fixture(scope="module")
def _declared():
    """Declared once per module (each declaration is a whole program run); tests get copies. The real
    Engine is put back after: a module-scoped fixture is outside each test's own clean-up."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "image_id", Engine.image_id)
        return {
            "docker": {name: props for typ, name, props in declared(docker_config()) if typ == CONTAINER},
            "kubernetes": {
                name: props for typ, name, props in declared(kubernetes_config(replicas=2)) if typ == DEPLOYMENT
            },
        }


@pytest.fixture
def docker_props(_declared):
    return copy.deepcopy(_declared["docker"])


@pytest.fixture
def kubernetes_props(_declared):
    return copy.deepcopy(_declared["kubernetes"])


def container_of(props: dict) -> dict:
    return props["spec"]["template"]["spec"]["containers"][0]


def pod_of(props: dict) -> dict:
    return props["spec"]["template"]["spec"]


# -- what our components declare is compliant ----------------------------------------------------


def _stacks():
    promoted = {s: f"localhost:5000/cloudservice/{s}@{fake_digest(s)}" for s in ("web", "redis")}
    return {
        "docker": lambda: declared(docker_config()),
        "docker-without-push": lambda: declared(make_config(target="docker")),
        "kubernetes": lambda: declared(kubernetes_config(replicas=2)),
        "prod": lambda: declared(
            make_config("prod", **{**stack_values("prod"), "registryPassword": "pw"}),
            stack="prod",
            stack_outputs={"organization/cloudservice/staging": {"images": promoted}},
        ),
        "docker-v2": lambda: declared(_v2_config("docker")),
        "kubernetes-v2": lambda: declared(_v2_config("kubernetes")),
    }


def _v2_config(target: str):
    """The app with what spec v2 adds, none of it an opt-out: a worker, named ports (one below 1024),
    command/args, a config file, a secret env var and file, a job the web service waits for."""
    services = default_services()
    del services["web"]["port"], services["web"]["publish"]
    services["web"].update(
        ports={"http": {"port": 80, "publish": 8080}, "metrics": {"port": 9100}},
        args=["--port", "80"],
        files={"/etc/web/redis.conf": "app/redis/redis.conf"},
        secretEnv={"DB_PASSWORD": "dbPassword"},
        secretFiles={"/run/secrets/db": "dbPassword"},
        dependsOn={"migrate": "completed"},
    )
    services["worker"] = {"build": "app/web", "command": ["python3", "-m", "worker"], "links": ["redis"]}
    jobs = {"migrate": {"build": "app/web", "args": ["migrate"], "dependsOn": {"redis": "healthy"}}}
    return make_config(target=target, services=services, jobs=jobs, dbPassword="db-pw", **REGISTRY)


@pytest.mark.parametrize("stack", sorted(_stacks()))
def test_components_pass_every_rule(mocks, stack):
    resources = _stacks()[stack]()
    types = {typ for typ, _, _ in resources}
    # On Docker the secret file comes with its carrier (created, never started, out of the rules' scope)
    # and redis's volume with the step that makes it writable for redis's user (rules.prepares_a_volume).
    on_docker = stack.startswith("docker")
    helpers = {"redis-data-owner"} if on_docker else set()
    if stack.endswith("-v2"):
        assert types == ({CONTAINER} if on_docker else {DEPLOYMENT, JOB})
        helpers |= {"web-secrets"} if on_docker else set()
        assert {name for _, name, _ in resources} == {"web", "redis", "worker", "migrate"} | helpers
    else:
        assert types == ({CONTAINER} if on_docker else {DEPLOYMENT})
        assert {name for _, name, _ in resources} == {"web", "redis"} | helpers
    for typ, name, props in resources:
        assert rules.violations(typ, props) == {}, f"{typ} {name}"


def test_a_container_that_never_starts_is_out_of_scope(docker_props):
    carrier = {"image": "busybox:latest", "start": False, "mustRun": False}
    assert rules.violations(CONTAINER, carrier) == {}
    assert rules.violations(CONTAINER, {**carrier, "start": True}) != {}, "a started one is checked like any other"


# -- each rule fires on a violation (and only that rule) ------------------------------------------


def _docker(change):
    return "docker", change


def _k8s(change):
    return "kubernetes", change


def _set_image(image):
    def change(props):
        if "spec" in props:
            container_of(props)["image"] = image
        else:
            props["image"] = image

    return change


def _pop(*path):
    def change(props):
        node = props
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)

    return change


def _put(value, *path):
    def change(props):
        node = props
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _in_container(change):
    return lambda props: change(container_of(props))


def _in_pod(change):
    return lambda props: change(pod_of(props))


def _add_init_container(**overrides):
    def change(props):
        init = copy.deepcopy(container_of(props))
        init.update(name="migrate", **overrides)
        for probe in ("readinessProbe", "livenessProbe", "lifecycle"):
            init.pop(probe, None)
        pod_of(props)["initContainers"] = [init]

    return change


# (id, (target, change), rule that must fire, text its message must contain)
VIOLATIONS = [
    ("docker-tag", _docker(_set_image("redis:7")), IMAGES, "uses a tag"),
    ("docker-latest", _docker(_set_image("redis:latest")), IMAGES, ":latest"),
    ("docker-untagged", _docker(_set_image("localhost:5000/cloudservice/web")), IMAGES, "no tag"),
    ("docker-bad-digest", _docker(_set_image("redis@sha256:1234")), IMAGES, "malformed digest"),
    ("docker-no-image", _docker(_pop("image")), IMAGES, "no image"),
    ("k8s-tag", _k8s(_set_image("localhost:5000/cloudservice/web:c-1234")), IMAGES, "uses a tag"),
    ("k8s-latest", _k8s(_set_image("localhost:5000/cloudservice/web:latest")), IMAGES, ":latest"),
    ("k8s-untagged", _k8s(_set_image("redis")), IMAGES, "no tag"),
    ("k8s-init-container-tag", _k8s(_add_init_container(image="busybox:1.36")), IMAGES, 'init container "migrate"'),
    ("docker-no-memory", _docker(_pop("memory")), LIMITS, "memory"),
    ("docker-zero-memory", _docker(_put(0, "memory")), LIMITS, "memory"),
    ("docker-no-cpus", _docker(_pop("cpus")), LIMITS, "CPU"),
    ("docker-zero-cpus", _docker(_put("0", "cpus")), LIMITS, "CPU"),
    ("k8s-no-limits", _k8s(_in_container(_pop("resources", "limits"))), LIMITS, "no cpu and no memory limit"),
    ("k8s-no-cpu-limit", _k8s(_in_container(_pop("resources", "limits", "cpu"))), LIMITS, "no cpu limit"),
    (
        "k8s-zero-memory-limit",
        _k8s(_in_container(_put("0", "resources", "limits", "memory"))),
        LIMITS,
        "no memory limit",
    ),
    (
        "k8s-requests-only",
        _k8s(_in_container(_put({"requests": {"cpu": "1", "memory": "1Gi"}}, "resources"))),
        LIMITS,
        "limit",
    ),
    ("k8s-no-readiness", _k8s(_in_container(_pop("readinessProbe"))), PROBES, "readinessProbe"),
    ("k8s-no-liveness", _k8s(_in_container(_pop("livenessProbe"))), PROBES, "livenessProbe"),
    ("k8s-empty-probe", _k8s(_in_container(_put({}, "readinessProbe"))), PROBES, "readinessProbe"),
    ("docker-published-no-healthcheck", _docker(_pop("healthcheck")), PROBES, "healthcheck"),
    ("docker-healthcheck-none", _docker(_put({"tests": ["NONE"]}, "healthcheck")), PROBES, "healthcheck"),
    ("docker-no-user", _docker(_pop("user")), NON_ROOT, "default user"),
    ("docker-root", _docker(_put("root", "user")), NON_ROOT, "root"),
    ("docker-uid-0", _docker(_put("0:0", "user")), NON_ROOT, "root"),
    ("k8s-no-run-as-non-root", _k8s(_in_pod(_pop("securityContext", "runAsNonRoot"))), NON_ROOT, "runAsNonRoot"),
    ("k8s-pod-uid-0", _k8s(_in_pod(_put(0, "securityContext", "runAsUser"))), NON_ROOT, "runAsUser: 0"),
    ("k8s-container-uid-0", _k8s(_in_container(_put(0, "securityContext", "runAsUser"))), NON_ROOT, "runAsUser: 0"),
    (
        "k8s-container-overrides-non-root",
        _k8s(_in_container(_put(False, "securityContext", "runAsNonRoot"))),
        NON_ROOT,
        "runAsNonRoot",
    ),
    ("docker-privileged", _docker(_put(True, "privileged")), PRIVILEGED, "privileged"),
    ("docker-new-privileges", _docker(_pop("securityOpts")), PRIVILEGED, "no-new-privileges"),
    ("k8s-privileged", _k8s(_in_container(_put(True, "securityContext", "privileged"))), PRIVILEGED, "privileged"),
    (
        "k8s-escalation-allowed",
        _k8s(_in_container(_put(True, "securityContext", "allowPrivilegeEscalation"))),
        PRIVILEGED,
        "allowPrivilegeEscalation",
    ),
    (
        "k8s-escalation-unset",
        _k8s(_in_container(_pop("securityContext", "allowPrivilegeEscalation"))),
        PRIVILEGED,
        "allowPrivilegeEscalation",
    ),
    ("docker-writable-root", _docker(_put(False, "readOnly")), READ_ONLY, "writable root file system"),
    ("docker-read-only-unset", _docker(_pop("readOnly")), READ_ONLY, "readOnly: true"),
    (
        "k8s-writable-root",
        _k8s(_in_container(_put(False, "securityContext", "readOnlyRootFilesystem"))),
        READ_ONLY,
        "writable root",
    ),
    (
        "k8s-read-only-unset",
        _k8s(_in_container(_pop("securityContext", "readOnlyRootFilesystem"))),
        READ_ONLY,
        "readOnlyRootFilesystem",
    ),
    (
        "docker-capability-added",
        _docker(_put({"drops": ["ALL"], "adds": ["NET_ADMIN"]}, "capabilities")),
        CAPABILITIES,
        "adds capabilities NET_ADMIN",
    ),
    ("docker-capabilities-kept", _docker(_pop("capabilities")), CAPABILITIES, "drop ALL"),
    (
        "k8s-capability-added",
        _k8s(_in_container(_put({"drop": ["ALL"], "add": ["SYS_ADMIN"]}, "securityContext", "capabilities"))),
        CAPABILITIES,
        "adds capabilities SYS_ADMIN",
    ),
    (
        "k8s-capabilities-kept",
        _k8s(_in_container(_put({"drop": ["NET_RAW"]}, "securityContext", "capabilities"))),
        CAPABILITIES,
        "drop ALL",
    ),
]


@pytest.mark.parametrize("case,rule,text", [c[1:] for c in VIOLATIONS], ids=[c[0] for c in VIOLATIONS])
def test_each_rule_fires_on_its_violation(docker_props, kubernetes_props, case, rule, text):
    target, change = case
    props = copy.deepcopy((docker_props if target == "docker" else kubernetes_props)["web"])
    typ = CONTAINER if target == "docker" else DEPLOYMENT
    assert rules.violations(typ, props) == {}
    change(props)
    found = rules.violations(typ, props)
    assert set(found) == {rule}, f"expected only {rule} to fire, got {found}"
    assert any(text in message for message in found[rule]), found[rule]


def test_every_rule_has_violation_cases():
    assert {c[2] for c in VIOLATIONS} == set(RULE_NAMES)
    for rule in RULE_NAMES:
        targets = {c[1][0] for c in VIOLATIONS if c[2] == rule}
        assert targets == {"docker", "kubernetes"}, f"{rule} is exercised on both targets"


# -- each opt-out of the spec is flagged --------------------------------------------------------------


@pytest.mark.parametrize(
    "opt_out,rule",
    [
        ({"user": "image"}, NON_ROOT),
        ({"readOnly": False}, READ_ONLY),
        ({"capabilities": ["NET_BIND_SERVICE"]}, CAPABILITIES),
    ],
    ids=["user-image", "read-only-false", "capabilities"],
)
@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_each_spec_opt_out_fires_its_rule(mocks, target, opt_out, rule):
    services = default_services()
    services["web"].update(opt_out)
    config = make_config(target=target, services=services, **REGISTRY)
    found = {name: rules.violations(typ, props) for typ, name, props in declared(config)}
    assert set(found["web"]) == {rule}, f"only {rule} fires on web: {found['web']}"
    assert found["redis"] == {}, "the other service stays compliant"


# -- what the rules accept -----------------------------------------------------------------------


def test_compliant_variants_pass(docker_props, kubernetes_props):
    redis = copy.deepcopy(docker_props["redis"])
    redis.pop("healthcheck")
    assert rules.violations(CONTAINER, redis) == {}, "an unpublished container needs no health check"
    web = copy.deepcopy(docker_props["web"])
    web.update(user="nobody", securityOpts=["no-new-privileges"], memory=64.0, cpus="1")
    assert rules.violations(CONTAINER, web) == {}
    deployment = copy.deepcopy(kubernetes_props["web"])
    pod_of(deployment)["securityContext"] = {}
    container_of(deployment)["securityContext"].update(runAsNonRoot=True, runAsUser=1000)
    assert rules.violations(DEPLOYMENT, deployment) == {}, "the container's securityContext is enough"
    container_of(deployment)["securityContext"].pop("runAsUser")
    assert rules.violations(DEPLOYMENT, deployment) == {}, "runAsNonRoot alone makes the kubelet verify the user"


def test_other_workload_kinds_are_checked(kubernetes_props):
    template = copy.deepcopy(kubernetes_props["web"]["spec"]["template"])
    container = template["spec"]["containers"][0]
    container.pop("readinessProbe")
    container.pop("livenessProbe")
    job = {"spec": {"template": template}}
    assert rules.violations("kubernetes:batch/v1:Job", job) == {}, "batch pods need no probes"
    container["image"] = "busybox:latest"
    cron = {"spec": {"jobTemplate": {"spec": {"template": template}}}}
    assert set(rules.violations("kubernetes:batch/v1:CronJob", cron)) == {IMAGES}
    assert set(rules.violations("kubernetes:apps/v1:StatefulSet", {"spec": {"template": template}})) == {IMAGES, PROBES}
    assert set(rules.violations("kubernetes:core/v1:Pod", {"spec": template["spec"]})) == {IMAGES}


@pytest.mark.parametrize(
    "typ",
    [
        "kubernetes:core/v1:Service",
        "kubernetes:core/v1:Namespace",
        "docker:index/network:Network",
        "docker:index/remoteImage:RemoteImage",
        "pulumi:providers:docker",
    ],
)
def test_other_resources_are_out_of_scope(typ):
    assert rules.violations(typ, {"image": "redis:latest", "privileged": True}) == {}


def test_malformed_props_are_violations_not_crashes():
    for props in (
        {},
        {"spec": None},
        {"spec": {"template": {"spec": {"containers": "web"}}}},
        {"spec": {"template": {"spec": {"containers": [None, 3]}}}},
    ):
        rules.violations(DEPLOYMENT, props)
    assert set(rules.violations(CONTAINER, {})) == {IMAGES, LIMITS, NON_ROOT, PRIVILEGED, READ_ONLY, CAPABILITIES}


# -- the pack, as the engine runs it ---------------------------------------------------------------


def analyze(resource_type: str, props: dict, name: str = "web") -> list:
    """Runs the pack's policies on one resource through pulumi_policy's analyzer service."""
    servicer = _PolicyAnalyzerServicer(PACK["PACK_NAME"], "0.1.0", PACK["POLICIES"], PACK["ENFORCEMENT"])
    request = proto.AnalyzeRequest(
        type=resource_type,
        name=name,
        urn=f"urn:pulumi:prod::cloudservice::{resource_type}::{name}",
        properties=json_format.ParseDict(props, struct_pb2.Struct()),
    )
    return list(servicer.Analyze(request, None).diagnostics)


def test_pack_is_named_mandatory_and_has_one_policy_per_rule():
    assert PACK["PACK_NAME"] == "cloudservice-production"
    assert PACK["ENFORCEMENT"] == EnforcementLevel.MANDATORY
    assert [policy.name for policy in PACK["POLICIES"]] == RULE_NAMES
    assert all(policy.description for policy in PACK["POLICIES"])
    with open(os.path.join(POLICY_DIR, "PulumiPolicy.yaml"), encoding="utf-8") as handle:
        manifest = yaml.safe_load(handle)
    runtime = manifest["runtime"]
    assert (runtime if isinstance(runtime, str) else runtime["name"]) == "python"
    assert manifest["version"] and manifest["description"]
    if isinstance(runtime, dict) and "virtualenv" in runtime.get("options", {}):
        venv = os.path.normpath(os.path.join(POLICY_DIR, runtime["options"]["virtualenv"]))
        assert os.path.isfile(os.path.join(venv, "bin", "python")), f"policy virtualenv {venv} does not exist"


def test_analyzer_passes_our_resources(docker_props, kubernetes_props):
    for name, props in docker_props.items():
        assert analyze(CONTAINER, props, name) == []
    for name, props in kubernetes_props.items():
        assert analyze(DEPLOYMENT, props, name) == []


@pytest.mark.parametrize("case,rule,text", [c[1:] for c in VIOLATIONS[::3]], ids=[c[0] for c in VIOLATIONS[::3]])
def test_analyzer_reports_mandatory_violations(docker_props, kubernetes_props, case, rule, text):
    target, change = case
    props = copy.deepcopy((docker_props if target == "docker" else kubernetes_props)["web"])
    change(props)
    diagnostics = analyze(CONTAINER if target == "docker" else DEPLOYMENT, props)
    assert [d.policyName for d in diagnostics] and {d.policyName for d in diagnostics} == {rule}
    assert all(
        d.enforcementLevel == proto.MANDATORY and d.policyPackName == "cloudservice-production" for d in diagnostics
    )
    assert any(text in d.message for d in diagnostics)


def test_unknown_image_in_a_preview_is_advisory_not_a_violation(kubernetes_props):
    """A digest is only known once the image is pushed: the image rule cannot judge it in a preview."""
    props = copy.deepcopy(kubernetes_props["web"])
    container_of(props)["image"] = UNKNOWN
    diagnostics = analyze(DEPLOYMENT, props)
    assert [d.policyName for d in diagnostics] == [IMAGES]
    assert diagnostics[0].enforcementLevel == proto.ADVISORY
    assert "can't run policy" in diagnostics[0].message


def test_served_pack_answers_the_engine():
    """`python -m pulumi.policy ENGINE policy` (how the CLI starts a Python pack) serves the analyzer."""
    import grpc

    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", POLICY_DIR],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), (
            f"the pack printed no port: {port!r} {process.stderr.read() if process.poll() is not None else ''}"
        )
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
            assert info.name == "cloudservice-production"
            assert [p.name for p in info.policies] == RULE_NAMES
            assert {p.enforcementLevel for p in info.policies} == {proto.MANDATORY}
            response = stub.Analyze(
                proto.AnalyzeRequest(
                    type=CONTAINER,
                    name="web",
                    urn="urn:pulumi:prod::cloudservice::docker:index/container:Container::web",
                    properties=json_format.ParseDict({"image": "redis:latest", "user": "root"}, struct_pb2.Struct()),
                ),
                timeout=10,
            )
            assert {d.policyName for d in response.diagnostics} == {
                IMAGES,
                LIMITS,
                NON_ROOT,
                PRIVILEGED,
                READ_ONLY,
                CAPABILITIES,
            }
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_only_the_exact_volume_owner_step_may_run_as_root_with_chown(docker_props):
    """The step that makes redis's new volume writable runs as root with CHOWN: spared by the root and
    capability rules, and only while it is nothing more than that one chown."""
    step = docker_props["redis-data-owner"]
    assert step["user"] == "0:0" and step["capabilities"] == {"drops": ["ALL"], "adds": ["CHOWN"]}
    assert rules.violations(CONTAINER, step) == {}
    for change in (
        {"entrypoints": ["sh", "-c", "chown 10002:10002 /data"]},
        {"command": ["--recursive"]},
        {"capabilities": {"drops": ["ALL"], "adds": ["CHOWN", "SYS_ADMIN"]}},
        {"networkMode": "bridge"},
        {"mustRun": True},
    ):
        assert set(rules.violations(CONTAINER, {**step, **change})) >= {NON_ROOT}, change
    assert set(rules.violations(CONTAINER, {**step, "capabilities": {"adds": ["CHOWN"]}})) == {CAPABILITIES}
