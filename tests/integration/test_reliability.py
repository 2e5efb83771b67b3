"""Reliability and security on the real platform: bad input, faults, concurrency, data, secrets,
hardening and policies. Each test would fail if what it guards broke."""

import json
import os
import re
import signal
import subprocess
import textwrap
import threading

import docker
import pytest
import yaml
from pulumi import automation as auto
from rules import RULES  # policy/rules.py (pytest.ini: pythonpath)

from components.conventions import STACK_LABEL
from support.testing import ROOT, STATE_DIR, edit_app_version, free_port, get_json, recover, wait_for

pytestmark = pytest.mark.exclusive  # stops the registry in the middle of a push

APP_SECRET = "app-secret-7f3c9a51e2"
RECORDS = 60
REGISTRY_IMAGE = "docker:index/registryImage:RegistryImage"
# Everything every command of this module printed (and every error it raised): searched for secrets last.
OUTPUT: list[str] = []


def default_services() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["services"]["value"]


def labelled(docker_client, stack_name):
    label = {"label": f"{STACK_LABEL}={stack_name}"}
    return (
        docker_client.containers.list(all=True, filters=label)
        + docker_client.networks.list(filters=label)
        + docker_client.volumes.list(filters=label)
    )


@pytest.fixture(scope="module")
def app(project, registry, docker_client):
    """A dev stack whose web service also gets an app secret through secretEnv."""
    services = default_services()
    services["web"]["secretEnv"] = {"APP_SECRET": "appSecret"}
    stack = project.stack(
        "dev",
        config={"portOffset": str(free_port() - 8080), "services": json.dumps(services)},
        secrets={"registryPassword": registry.password, "appSecret": APP_SECRET},
    )
    result = stack.up(on_output=OUTPUT.append)
    yield stack, result.outputs["url"].value
    stack.destroy(on_output=OUTPUT.append)
    stack.workspace.remove_stack(stack.name)


def failure_of(command, *args, **kwargs) -> auto.CommandError:
    """Runs a command that must fail; returns its error (and keeps its message for the secret search)."""
    with pytest.raises(auto.CommandError) as failure:
        command(*args, on_output=OUTPUT.append, **kwargs)
    OUTPUT.append(str(failure.value))
    return failure.value


def web_container(docker_client, stack_name, service="web"):
    return docker_client.containers.list(
        all=True, filters={"label": [f"{STACK_LABEL}={stack_name}", f"app.kubernetes.io/name={service}"]}
    )[0]


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, secrets, key",
    [
        ({"target": "swarm"}, {}, "target"),
        ({"services": json.dumps({"web": {"build": "app/web", "port": 70000}})}, {}, "services.web.port"),
        ({"registryPassword": "plaintext"}, {}, "registryPassword"),
        ({"kubernetes": json.dumps({"serviceType": "Ingress"})}, {}, "kubernetes.serviceType"),
    ],
)
def test_bad_config_fails_before_any_resource(project, docker_client, config, secrets, key):
    stack = project.stack("dev", config=config, secrets=secrets)
    try:
        with pytest.raises(auto.CommandError) as failure:
            stack.up()
        message = str(failure.value)
        assert f"{key}: expected" in message and "Traceback" not in message
        assert [
            r for r in stack.export_stack().deployment.get("resources", []) if r["type"] != "pulumi:pulumi:Stack"
        ] == []
        assert labelled(docker_client, stack.name) == []
    finally:
        stack.workspace.remove_stack(stack.name, force=True)


# -- secrets and hardening ----------------------------------------------------------------------


def test_secrets_never_appear_in_plaintext(app, project, registry, docker_client):
    stack, _ = app
    container = web_container(docker_client, stack.name)
    assert f"APP_SECRET={APP_SECRET}" in container.attrs["Config"]["Env"]  # delivered to the app...
    # The state file as stored (the Automation API's export decrypts secrets on purpose).
    state = project.state_file(stack.name).read_text()
    outputs = json.dumps({k: (v.value if not v.secret else "[secret]") for k, v in stack.outputs().items()})
    config_file = project.stack_file(stack.name).read_text()
    for secret in (registry.password, APP_SECRET):  # ...and nowhere else in plaintext
        for where, text in {"state file": state, "outputs": outputs, "stack config": config_file}.items():
            assert secret not in text, f"secret in plaintext in the {where}"
    assert '"ciphertext"' in state


def test_containers_are_hardened(app, docker_client):
    stack, _ = app
    for service, user in (("web", "10001:10001"), ("redis", "10002:10002")):
        host = web_container(docker_client, stack.name, service).attrs["HostConfig"]
        config = web_container(docker_client, stack.name, service).attrs["Config"]
        assert config["User"] == user
        assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges:true"]
        assert host["Memory"] > 0 and host["Memory"] == host["MemorySwap"] and host["NanoCpus"] > 0
        assert host["RestartPolicy"]["Name"] == "unless-stopped"


# -- data and faults ----------------------------------------------------------------------------


def notes_of(url):
    status, body = get_json(url + "/notes")
    return body["notes"] if status == 200 else None


def test_data_survives_faults_and_reruns(app, docker_client):
    stack, url = app
    for n in range(RECORDS):
        assert get_json(url + "/notes", "POST", f"record {n}".encode())[0] == 201
    expected = [f"record {n}" for n in range(RECORDS)]

    # A container removed out of band is restored by refresh + up.
    removed = web_container(docker_client, stack.name)
    removed.remove(force=True)
    stack.refresh(on_output=OUTPUT.append)
    stack.up(on_output=OUTPUT.append)
    assert web_container(docker_client, stack.name).id != removed.id
    assert wait_for(lambda: notes_of(url), timeout=60, what="the app back") == expected

    # A container killed out of band (the engine does not restart it) is restored too.
    killed = web_container(docker_client, stack.name, "redis")
    killed.kill()
    stack.refresh(on_output=OUTPUT.append)
    stack.up(on_output=OUTPUT.append)
    assert web_container(docker_client, stack.name, "redis").status == "running"
    assert wait_for(lambda: notes_of(url), timeout=60, what="redis back with its data") == expected


def _stop_registry_when_the_web_push_starts(stack_name: str, pid: int, stopped: threading.Event):
    """An engine event handler: the moment the engine starts pushing the web image, the registry dies."""

    def on_event(event):
        step = event.resource_pre_event and event.resource_pre_event.metadata
        pushes_web = step and step.type == REGISTRY_IMAGE and step.urn.endswith(f"::cloudservice-{stack_name}-web")
        if pushes_web and not stopped.is_set():
            os.kill(pid, signal.SIGKILL)
            stopped.set()

    return on_event


def test_a_registry_outage_during_the_push_leaves_the_running_service_alone(app, project, docker_client):
    stack, url = app
    running = web_container(docker_client, stack.name)
    version = get_json(url + "/")[1]["version"]
    notes = notes_of(url)
    edit_app_version(project, "after-outage")
    registry_pid = int((STATE_DIR / "registry" / "registry.pid").read_text())
    stopped = threading.Event()
    try:
        error = failure_of(
            stack.up, on_event=_stop_registry_when_the_web_push_starts(stack.name, registry_pid, stopped)
        )
        assert stopped.is_set(), f"the up failed before the web push: {error}"
        assert "localhost:5000" in str(error)
        assert not stack.export_stack().deployment.get("pending_operations")
        # The service that ran before still runs, untouched, with its data.
        assert web_container(docker_client, stack.name).id == running.id
        assert get_json(url + "/")[1]["version"] == version
        assert notes_of(url) == notes
    finally:
        subprocess.run([str(ROOT / "platform" / "up.sh")], check=True, capture_output=True)
    # Once the registry is back, up converges.
    stack.up(on_output=OUTPUT.append)
    stack.preview(expect_no_changes=True, on_output=OUTPUT.append)
    assert get_json(url + "/")[1]["version"] == "after-outage"
    assert notes_of(url) == notes


def test_a_second_up_is_refused_while_the_first_holds_the_lock(app, project):
    stack, url = app
    edit_app_version(project, "first-of-two")
    holds_lock = threading.Event()  # any engine event: the CLI takes the stack's lock before the engine starts
    first: dict = {}

    def run_first():
        try:
            first["result"] = stack.up(on_event=lambda event: holds_lock.set(), on_output=OUTPUT.append)
        except auto.CommandError as error:
            first["error"] = error

    runner = threading.Thread(target=run_first)
    runner.start()
    try:
        assert holds_lock.wait(timeout=120), "the first up sent no engine event"
        second = auto.select_stack(
            stack.name,
            work_dir=str(project.directory),
            opts=auto.LocalWorkspaceOptions(work_dir=str(project.directory), env_vars=project.env),
        )
        # As `make up` would: the recovery leaves the lock of a command that runs alone...
        assert "left alone" in recover(project, stack.name)
        with pytest.raises(auto.ConcurrentUpdateError):  # ...and the second up is refused
            second.up(on_output=OUTPUT.append)
        assert runner.is_alive(), "the first up was over before the second was refused"
    finally:
        runner.join(timeout=600)
    assert "error" not in first, first.get("error")
    assert first["result"].summary.result == "succeeded"
    stack.preview(expect_no_changes=True, on_output=OUTPUT.append)
    assert get_json(url + "/")[1]["version"] == "first-of-two"


# -- unreachable engine or cluster ----------------------------------------------------------------

CONFIG_ERROR = "invalid stack configuration"


def test_unreachable_docker_engine_is_named(project, registry):
    stack = project.stack(
        "dev", config={"dockerHost": "tcp://127.0.0.1:1"}, secrets={"registryPassword": registry.password}
    )
    try:
        message = str(failure_of(stack.up))
        assert "tcp://127.0.0.1:1" in message or "127.0.0.1:1:" in message, message
        assert re.search(r"cannot connect|connection refused", message, re.IGNORECASE), message
        assert CONFIG_ERROR not in message
    finally:
        stack.destroy(on_output=OUTPUT.append)
        stack.workspace.remove_stack(stack.name, force=True)


def test_unreachable_cluster_is_named(project, registry, tmp_path):
    kubeconfig = tmp_path / "unreachable.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "gone",
                "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "nobody"}}],
                "users": [{"name": "nobody", "user": {"token": "none"}}],
            }
        )
    )
    stack = project.stack(
        "staging",
        config={"kubernetes": json.dumps({"kubeconfig": str(kubeconfig)})},
        secrets={"registryPassword": registry.password},
    )
    try:
        message = str(failure_of(stack.up))
        assert "127.0.0.1:1" in message and "unreachable" in message.lower(), message
        assert re.search(r"connection refused|connect:", message, re.IGNORECASE), message
        assert CONFIG_ERROR not in message
    finally:
        stack.destroy(on_output=OUTPUT.append)
        stack.workspace.remove_stack(stack.name, force=True)


# -- policies through the engine ----------------------------------------------------------------

VIOLATING_PROGRAM = textwrap.dedent("""
    import pulumi_docker as docker
    import pulumi_kubernetes as k8s

    # Everything the production rules forbid, once on each target: a mutable tag, no limits, no
    # probes or health check, root, privileged, a writable root, capabilities added.
    docker.Container("violating", name="policy-check-violating", image="localhost:5000/cloudservice/web:latest",
                     ports=[docker.ContainerPortArgs(internal=8080)], privileged=True,
                     capabilities=docker.ContainerCapabilitiesArgs(adds=["NET_ADMIN"]))
    k8s.apps.v1.Deployment("violating", metadata={"name": "policy-check-violating", "namespace": "default"}, spec={
        "selector": {"matchLabels": {"app": "violating"}},
        "template": {"metadata": {"labels": {"app": "violating"}}, "spec": {"containers": [{
            "name": "web", "image": "localhost:5000/cloudservice/web:latest", "ports": [{"containerPort": 8080}],
            "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
        }]}},
    })
""")


def test_every_policy_fires_through_the_engine(tmp_path, pulumi_cli, cluster):
    """The pack, as the CLI runs it, rejects a program that breaks each of its rules on each target."""
    (tmp_path / "Pulumi.yaml").write_text("name: policy-check\nruntime: {name: python, options: {virtualenv: venv}}\n")
    (tmp_path / "__main__.py").write_text(VIOLATING_PROGRAM)
    (tmp_path / "venv").symlink_to(ROOT / "venv")
    (tmp_path / "state").mkdir()
    stack = auto.create_stack(
        "check",
        work_dir=str(tmp_path),
        opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}"}),
    )
    try:
        message = str(failure_of(stack.preview, policy_packs=[str(ROOT / "policy")]))
        for rule in RULES:
            for resource in ("docker:index:Container: violating", "kubernetes:apps/v1:Deployment: violating"):
                assert re.search(rf"\[mandatory\]\s+{rule.name}\s+\({re.escape(resource)}\)", message), (
                    f"{rule.name} did not fire on {resource}:\n{message}"
                )
    finally:
        stack.workspace.remove_stack("check", force=True)


def test_policy_pack_blocks_a_mutable_tag_in_the_stack(project, registry, cluster):
    policy = str(project.directory / "policy")
    services = default_services()
    services["redis"] = {**services["redis"], "image": "localhost:5000/cloudservice/base:latest"}
    del services["redis"]["build"]
    stack = project.stack(
        "staging", config={"services": json.dumps(services)}, secrets={"registryPassword": registry.password}
    )
    try:
        message = str(failure_of(stack.preview, policy_packs=[policy]))
        assert re.search(
            rf"\[mandatory\]\s+no-mutable-image-tags\s+\(kubernetes:apps/v1:Deployment: cloudservice-{stack.name}-redis\)",
            message,
        ), message
    finally:
        stack.workspace.remove_stack(stack.name, force=True)


# -- last: destroy, and the secrets in everything this module's commands printed ------------------


def test_destroy_removes_every_object_by_name(app, docker_client):
    stack, _ = app
    label = {"label": f"{STACK_LABEL}={stack.name}"}
    containers = [c.name for c in docker_client.containers.list(all=True, filters=label)]
    networks = [n.name for n in docker_client.networks.list(filters=label)]
    volumes = [v.name for v in docker_client.volumes.list(filters=label)]
    # web, redis, and the step that prepared redis's new volume
    assert (len(containers), len(networks), len(volumes)) == (3, 1, 1), (containers, networks, volumes)
    stack.destroy(on_output=OUTPUT.append)
    for collection, names in (
        (docker_client.containers, containers),
        (docker_client.networks, networks),
        (docker_client.volumes, volumes),
    ):
        for name in names:
            with pytest.raises(docker.errors.NotFound):
                collection.get(name)


def test_no_command_printed_a_secret(registry):
    assert len(OUTPUT) > 100, "the commands' output was not collected"
    printed = "\n".join(OUTPUT)
    for secret in (registry.password, APP_SECRET):
        assert secret not in printed
