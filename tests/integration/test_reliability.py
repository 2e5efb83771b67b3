"""Reliability and security on the real platform: bad input, faults, concurrency, data, secrets,
hardening and policies. Each test would fail if what it guards broke."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import yaml
from pulumi import automation as auto

from support.testing import (
    ROOT, STACK_LABEL, STATE_DIR, edit_app_version, free_port, get_json, wait_for,
)

APP_SECRET = "app-secret-7f3c9a51e2"
RECORDS = 60


def default_services() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["services"]["value"]


def labelled(docker_client, stack_name):
    label = {"label": f"{STACK_LABEL}={stack_name}"}
    return (docker_client.containers.list(all=True, filters=label) + docker_client.networks.list(filters=label)
            + docker_client.volumes.list(filters=label))


@pytest.fixture(scope="module")
def app(project, registry, docker_client):
    """A dev stack whose web service also gets an app secret through secretEnv."""
    services = default_services()
    services["web"]["secretEnv"] = {"APP_SECRET": "appSecret"}
    stack = project.stack(
        "dev", config={"portOffset": str(free_port() - 8080), "services": json.dumps(services)},
        secrets={"registryPassword": registry.password, "appSecret": APP_SECRET},
    )
    logs: list[str] = []
    result = stack.up(on_output=logs.append)
    yield stack, result.outputs["url"].value, logs
    stack.destroy()
    stack.workspace.remove_stack(stack.name)


def web_container(docker_client, stack_name, service="web"):
    return docker_client.containers.list(
        all=True, filters={"label": [f"{STACK_LABEL}={stack_name}", f"app.kubernetes.io/name={service}"]}
    )[0]


# -- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("config, secrets, key", [
    ({"target": "swarm"}, {}, "target"),
    ({"services": json.dumps({"web": {"build": "app/web", "port": 70000}})}, {}, "services.web.port"),
    ({"registryPassword": "plaintext"}, {}, "registryPassword"),
    ({"kubernetes": json.dumps({"serviceType": "Ingress"})}, {}, "kubernetes.serviceType"),
])
def test_bad_config_fails_before_any_resource(project, docker_client, config, secrets, key):
    stack = project.stack("dev", config=config, secrets=secrets)
    try:
        with pytest.raises(auto.CommandError) as failure:
            stack.up()
        message = str(failure.value)
        assert f"{key}: expected" in message and "Traceback" not in message
        assert [r for r in stack.export_stack().deployment.get("resources", [])
                if r["type"] != "pulumi:pulumi:Stack"] == []
        assert labelled(docker_client, stack.name) == []
    finally:
        stack.workspace.remove_stack(stack.name, force=True)


# -- secrets and hardening ----------------------------------------------------------------------

def test_secrets_never_appear_in_plaintext(app, project, registry, docker_client):
    stack, _, logs = app
    container = web_container(docker_client, stack.name)
    assert f"APP_SECRET={APP_SECRET}" in container.attrs["Config"]["Env"]  # delivered to the app...
    # The state file as stored (the Automation API's export decrypts secrets on purpose).
    state = project.state_file(stack.name).read_text()
    outputs = json.dumps({k: (v.value if not v.secret else "[secret]") for k, v in stack.outputs().items()})
    config_file = project.stack_file(stack.name).read_text()
    for secret in (registry.password, APP_SECRET):  # ...and nowhere else in plaintext
        for where, text in {"state file": state, "outputs": outputs,
                            "stack config": config_file, "logs": "\n".join(logs)}.items():
            assert secret not in text, f"secret in plaintext in the {where}"
    assert '"ciphertext"' in state


def test_containers_are_hardened(app, docker_client):
    stack, _, _ = app
    for service, user in (("web", "10001:10001"), ("redis", "10002:10002")):
        host = web_container(docker_client, stack.name, service).attrs["HostConfig"]
        config = web_container(docker_client, stack.name, service).attrs["Config"]
        assert config["User"] == user
        assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges:true"]
        assert host["Memory"] > 0 and host["Memory"] == host["MemorySwap"] and host["NanoCpus"] > 0
        assert host["RestartPolicy"]["Name"] == "unless-stopped"


# -- data and faults ----------------------------------------------------------------------------

def test_data_survives_faults_updates_and_reruns(app, project, registry, docker_client):
    stack, url, _ = app
    for n in range(RECORDS):
        assert get_json(url + "/notes", "POST", f"record {n}".encode())[0] == 201
    expected = [f"record {n}" for n in range(RECORDS)]

    def notes():
        status, body = get_json(url + "/notes")
        return body["notes"] if status == 200 else None

    # A container removed out of band is restored by refresh + up.
    web_container(docker_client, stack.name).remove(force=True)
    stack.refresh()
    stack.up()
    assert wait_for(notes, timeout=60, what="the app back") == expected

    # A container killed out of band (the engine does not restart it) is restored too.
    web_container(docker_client, stack.name, "redis").kill()
    stack.refresh()
    stack.up()
    assert wait_for(notes, timeout=60, what="redis back with its data") == expected

    # The registry goes away during an update: a clear error, no corrupt state...
    edit_app_version(project, "fault")
    registry_pid = int((STATE_DIR / "registry" / "registry.pid").read_text())
    os.kill(registry_pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{registry_pid}"), timeout=30, what="the registry to stop")
    try:
        with pytest.raises(auto.CommandError) as failure:
            stack.up()
        assert "localhost:5000" in str(failure.value)
        assert not stack.export_stack().deployment.get("pending_operations")
        assert notes() == expected  # the running app was not touched
    finally:
        subprocess.run([str(ROOT / "platform" / "up.sh")], check=True, capture_output=True)
    # ...and once it is back, up converges.
    stack.up()
    stack.preview(expect_no_changes=True)
    assert get_json(url + "/")[1]["version"] == "fault"
    assert notes() == expected


def test_a_second_up_on_the_same_stack_is_refused_while_one_runs(app, project):
    stack, url, _ = app
    edit_app_version(project, "locked")
    first: dict = {}
    runner = threading.Thread(target=lambda: first.setdefault("result", stack.up()))
    runner.start()
    try:
        second = auto.select_stack(stack.name, work_dir=str(project.directory),
                                   opts=auto.LocalWorkspaceOptions(work_dir=str(project.directory), env_vars=project.env))
        time.sleep(2)
        with pytest.raises(auto.CommandError) as refused:
            second.up()
        assert "locked" in str(refused.value)
    finally:
        runner.join(timeout=600)
    assert first["result"].summary.result == "succeeded"
    stack.preview(expect_no_changes=True)
    assert get_json(url + "/")[1]["version"] == "locked"


# -- unreachable engine or cluster ----------------------------------------------------------------

def test_unreachable_docker_engine_is_named(project, registry):
    stack = project.stack("dev", config={"dockerHost": "tcp://127.0.0.1:1"},
                          secrets={"registryPassword": registry.password})
    try:
        with pytest.raises(auto.CommandError) as failure:
            stack.up()
        assert "127.0.0.1:1" in str(failure.value)
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name, force=True)


def test_unreachable_cluster_is_named(project, registry, tmp_path):
    kubeconfig = tmp_path / "unreachable.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "nobody"}}],
        "users": [{"name": "nobody", "user": {"token": "none"}}],
    }))
    stack = project.stack("staging", config={"kubernetes": json.dumps({"kubeconfig": str(kubeconfig)})},
                          secrets={"registryPassword": registry.password})
    try:
        with pytest.raises(auto.CommandError) as failure:
            stack.up()
        message = str(failure.value)
        assert "127.0.0.1:1" in message and "unreachable" in message.lower()
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name, force=True)


# -- policies through the engine ----------------------------------------------------------------

def test_policy_pack_blocks_a_mutable_tag_and_passes_the_stack_as_built(project, registry, cluster):
    policy = str(project.directory / "policy")
    services = default_services()
    services["redis"] = {**services["redis"], "image": "localhost:5000/cloudservice/base:latest"}
    del services["redis"]["build"]
    stack = project.stack("staging", config={"services": json.dumps(services)},
                          secrets={"registryPassword": registry.password})
    try:
        with pytest.raises(auto.CommandError) as failure:
            stack.preview(policy_packs=[policy])
        assert "no-mutable-image-tags" in str(failure.value) and "mandatory" in str(failure.value)
    finally:
        stack.workspace.remove_stack(stack.name, force=True)
