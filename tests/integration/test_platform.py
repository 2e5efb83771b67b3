"""The offline platform: the toolchain built from Go modules, the engine, the authenticated registry,
the cluster's metrics API."""

import base64
import json
import os
import re
import socket
import socketserver
import subprocess
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
from pulumi import automation as auto

from support.testing import ROOT, http, kubectl, kubectl_json, read_env_file, registry_manifest_status

VERSIONS = read_env_file(ROOT / "versions.env")


def test_pulumi_cli_is_the_pinned_build(pulumi_cli):
    assert pulumi_cli == f"v{VERSIONS['PULUMI_VERSION']}"


@pytest.mark.parametrize("disabled", ["true", "false"])
def test_the_cli_writes_its_automatic_log_only_when_not_disabled(tmp_path, pulumi_cli, disabled):
    """Our CLI build's opt-out (toolchain/pulumi-cli/patches): env.sh's PULUMI_DISABLE_AUTOMATIC_LOGGING
    keeps commands from logging to PULUMI_HOME/logs; set to false, the CLI logs as upstream's does."""
    home = tmp_path / "pulumi-home"
    env = {**os.environ, "PULUMI_HOME": str(home), "PULUMI_DISABLE_AUTOMATIC_LOGGING": disabled}
    subprocess.run(["pulumi", "version"], env=env, capture_output=True, check=True)
    logs = list((home / "logs").glob("*.log"))
    assert (logs == []) if disabled == "true" else (len(logs) == 1), logs


def test_the_cli_still_refuses_a_plaintext_value_that_looks_like_a_secret(tmp_path, pulumi_cli):
    """Our CLI build loads the password strength estimator's word lists when first asked
    (toolchain/pulumi-cli/patches): `pulumi config set` still sees a secret in a plaintext token."""
    (tmp_path / "Pulumi.yaml").write_text("name: secret-check\nruntime: python\n")
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp_path}"}
    subprocess.run(["pulumi", "stack", "init", "check"], cwd=tmp_path, env=env, check=True, capture_output=True)
    refused = subprocess.run(
        ["pulumi", "config", "set", "apiToken", "xK9mQ2vL7pR4zW8aB3cD"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "looks like a secret" in refused.stderr, refused.stderr
    plain = subprocess.run(["pulumi", "config", "set", "apiToken", "abc"], cwd=tmp_path, env=env, capture_output=True)
    assert plain.returncode == 0, plain.stderr


def test_plugins_are_installed_at_the_pinned_versions(pulumi_cli):
    listing = subprocess.run(["pulumi", "plugin", "ls"], capture_output=True, text=True, check=True).stdout
    installed = {tuple(line.split()[:3]) for line in listing.splitlines()[1:] if line.strip()}
    assert ("docker", "resource", VERSIONS["PULUMI_DOCKER_VERSION"]) in installed
    assert ("kubernetes", "resource", VERSIONS["PULUMI_KUBERNETES_VERSION"]) in installed


def program_stack(directory: Path, project: str, program: str) -> auto.Stack:
    """A stack `check` of a Python project in `directory` on the project's venv, with its own file backend."""
    (directory / "Pulumi.yaml").write_text(
        f"name: {project}\nruntime: {{name: python, options: {{virtualenv: venv}}}}\n"
    )
    (directory / "__main__.py").write_text(textwrap.dedent(program))
    (directory / "venv").symlink_to(ROOT / "venv")
    (directory / "state").mkdir()
    return auto.create_stack(
        "check",
        work_dir=str(directory),
        opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_BACKEND_URL": f"file://{directory / 'state'}"}),
    )


def test_a_program_creates_and_destroys_a_docker_network(tmp_path, docker_client):
    """A real program through the CLI, the Python language host and the docker plugin."""
    stack = program_stack(
        tmp_path,
        "platform-check",
        """
        import pulumi, pulumi_docker as docker
        net = docker.Network("net", name=pulumi.Config().require("networkName"),
                             labels=[docker.NetworkLabelArgs(label="cloudservice.dev/check", value="platform")])
        pulumi.export("id", net.id)
        """,
    )
    name = f"cloudservice-check-{uuid.uuid4().hex[:8]}"
    stack.set_config("networkName", auto.ConfigValue(name))
    try:
        network_id = stack.up().outputs["id"].value
        network = docker_client.networks.get(network_id)
        assert network.name == name and network.attrs["Driver"] == "bridge"
        stack.destroy()
        assert docker_client.networks.list(names=[name]) == []
    finally:
        stack.destroy()
        stack.workspace.remove_stack("check")


class RecordingEngine:
    """A socket in front of the Docker engine that passes everything through and keeps each request's
    method and path, as the engine would log them."""

    REQUEST = re.compile(rb"^(GET|HEAD|POST|PUT|DELETE) (\S+) HTTP/1\.[01]\r$", re.MULTILINE)

    def __init__(self, path: Path):
        self.requests: list[str] = []
        recorder = self

        class Relay(socketserver.BaseRequestHandler):
            def handle(self):
                with socket.socket(socket.AF_UNIX) as engine:
                    engine.connect("/var/run/docker.sock")
                    threading.Thread(target=self.relay, args=(engine, self.request), daemon=True).start()
                    self.relay(self.request, engine, record=True)

            @staticmethod
            def relay(source, target, record=False):
                try:
                    while data := source.recv(65536):
                        if record:
                            recorder.requests += [
                                b" ".join(m.groups()).decode() for m in recorder.REQUEST.finditer(data)
                            ]
                        target.sendall(data)
                except OSError:  # the other side closed
                    pass

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Relay)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"unix://{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_container_of_an_image_the_engine_has_is_created_without_listing_every_image(tmp_path, docker_client):
    """Our patch of the docker plugin: as `docker run`, it inspects the one image (upstream lists every
    image on the engine for each container: 50-70 ms each with the 880 images of a busy engine)."""
    engine = RecordingEngine(tmp_path / "docker.sock")
    stack = program_stack(
        tmp_path,
        "image-check",
        """
        import pulumi, pulumi_docker as docker
        config = pulumi.Config()
        engine = docker.Provider("engine", host=config.require("engine"))
        container = docker.Container("app", name=config.require("name"), image="cloudservice/base:bookworm",
                                     command=["sleep", "600"], opts=pulumi.ResourceOptions(provider=engine))
        pulumi.export("id", container.id)
        """,
    )
    name = f"cloudservice-check-{uuid.uuid4().hex[:8]}"
    stack.set_all_config({"engine": auto.ConfigValue(engine.url), "name": auto.ConfigValue(name)})
    try:
        container_id = stack.up().outputs["id"].value
        assert docker_client.containers.get(container_id).status == "running"
        paths = [request.split()[1].split("?")[0] for request in engine.requests]
        assert any(path.endswith("/images/cloudservice/base:bookworm/json") for path in paths), engine.requests
        assert not [path for path in paths if path.endswith("/images/json")], engine.requests
    finally:
        stack.destroy()
        stack.workspace.remove_stack("check")
        engine.close()


def cli_project(directory: Path, program: str):
    """A Python project in `directory` on the project's venv with one stack, and a function that runs
    `pulumi` on it as a user types it (the dynamic provider host is found beside the CLI)."""
    (directory / "Pulumi.yaml").write_text(
        "name: dynamic-check\nruntime: {name: python, options: {virtualenv: venv}}\n"
    )
    (directory / "__main__.py").write_text(textwrap.dedent(program))
    (directory / "venv").symlink_to(ROOT / "venv")
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{directory}"}

    def pulumi(*args: str) -> str:
        result = subprocess.run(
            ["pulumi", *args, "--stack", "check", "--non-interactive"],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    subprocess.run(["pulumi", "stack", "init", "check"], cwd=directory, env=env, check=True, capture_output=True)
    return pulumi


def test_python_dynamic_resources_run_in_the_programs_virtualenv_through_the_cli(tmp_path, pulumi_cli):
    """The dynamic provider host beside the CLI (pulumi-resource-pulumi-python): `pulumi up` on the
    command line creates a `pulumi.dynamic` resource, whose provider runs with the program's venv."""
    pulumi = cli_project(
        tmp_path,
        """
        import sys
        import pulumi
        from pulumi import dynamic

        class Where(dynamic.ResourceProvider):
            def create(self, props):
                import sys
                return dynamic.CreateResult("where", {"python": sys.prefix})

        class Probe(dynamic.Resource):
            python: pulumi.Output[str]

            def __init__(self, name):
                super().__init__(Where(), name, {"python": None})

        pulumi.export("provider", Probe("probe").python)
        pulumi.export("program", sys.prefix)
        """,
    )
    pulumi("up", "--yes", "--skip-preview")
    outputs = json.loads(pulumi("stack", "output", "--json"))
    venv = (tmp_path / "venv").resolve()
    assert Path(outputs["provider"]).resolve() == Path(outputs["program"]).resolve() == venv
    pulumi("destroy", "--yes")


def test_python_dynamic_resources_are_created_side_by_side(tmp_path, pulumi_cli):
    """The SDK's provider server answers 4 calls at a time; ours as many as the engine makes, so a
    readiness check per service waits beside the others. Each create here waits until all 8 have
    started: with 4 at a time they never would, and the creates fail after 60 s."""
    pulumi = cli_project(
        tmp_path,
        f"""
        import time
        from pathlib import Path
        from pulumi import dynamic

        ARRIVED = Path({str(tmp_path / "arrived")!r})
        COUNT = 8

        class Barrier(dynamic.ResourceProvider):
            def create(self, props):
                (ARRIVED / props["name"]).touch()
                deadline = time.monotonic() + 60
                while len(list(ARRIVED.iterdir())) < COUNT:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {{len(list(ARRIVED.iterdir()))}} of {{COUNT}} creates started")
                    time.sleep(0.05)
                return dynamic.CreateResult(props["name"], props)

        class Waiter(dynamic.Resource):
            def __init__(self, name):
                super().__init__(Barrier(), name, {{"name": name}})

        ARRIVED.mkdir(exist_ok=True)
        for index in range(COUNT):
            Waiter(f"waiter-{{index}}")
        """,
    )
    pulumi("up", "--yes", "--skip-preview", "--parallel", "16")
    assert len(list((tmp_path / "arrived").iterdir())) == 8
    pulumi("destroy", "--yes")


@pytest.fixture(scope="module")
def probe_image(docker_client, registry):
    """A tiny image tagged for the local registry (built from the local base, nothing pulled)."""
    repository = f"{registry.server}/cloudservice/platform-probe"
    tag = uuid.uuid4().hex[:8]
    docker_client.images.get(VERSIONS["BASE_IMAGE"]).tag(repository, tag)
    yield repository, tag
    docker_client.images.remove(f"{repository}:{tag}")


def push(docker_client, repository, tag, username, password) -> list:
    return list(
        docker_client.images.push(
            repository, tag, stream=True, decode=True, auth_config={"username": username, "password": password}
        )
    )


def test_push_with_the_right_credentials_succeeds(docker_client, registry, probe_image):
    repository, tag = probe_image
    events = push(docker_client, repository, tag, registry.username, registry.password)
    assert not [e for e in events if "error" in e], events
    path = repository.split("/", 1)[1]
    assert registry_manifest_status(registry, path, tag, (registry.username, registry.password)) == 200


def test_push_with_wrong_credentials_fails(docker_client, registry, probe_image):
    repository, tag = probe_image
    events = push(docker_client, repository, tag, registry.username, "wrong-password")
    errors = [e["error"] for e in events if "error" in e]
    assert errors and ("unauthorized" in errors[0] or "authentication required" in errors[0]), events


def test_anonymous_access_is_refused(registry):
    for path in ("/v2/", "/v2/_catalog", "/v2/cloudservice/base/manifests/bookworm"):
        status, _, headers = http("GET", registry.url + path)
        assert status == 401 and "Basic" in headers.get("WWW-Authenticate", ""), path
    assert http("GET", registry.url + "/v2/_catalog", auth=(registry.username, "wrong"))[0] == 401


def test_the_metrics_api_serves_the_nodes_usage_through_the_aggregation_layer(cluster):
    """metrics-server, registered with the API server as v1beta1.metrics.k8s.io (its certificate
    checked against the cluster CA), answers with the node's CPU and memory use, scraped from the
    kubelet whose certificate it checks against the same CA; `kubectl top` works."""
    service = kubectl_json("get", "apiservice", "v1beta1.metrics.k8s.io")
    conditions = {c["type"]: c for c in service["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True", conditions["Available"]
    assert not service["spec"].get("insecureSkipTLSVerify")
    assert base64.b64decode(service["spec"]["caBundle"]) == (cluster.parent / "pki" / "ca.crt").read_bytes()

    (node,) = kubectl_json("get", "nodes")["items"]
    name = node["metadata"]["name"]
    usage = json.loads(kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/nodes/{name}"))["usage"]
    for resource, unit in (("cpu", r"n|u|m|"), ("memory", r"Ki|Mi|")):
        match = re.fullmatch(rf"(\d+)({unit})", usage[resource])
        assert match and int(match.group(1)) > 0, usage
    assert kubectl("top", "nodes", "--no-headers").split()[0] == name
    kubectl("top", "pods", "--all-namespaces")  # answers, whatever runs

    pid = (cluster.parent / "run" / "metrics-server.pid").read_text().strip()
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert f"--kubelet-certificate-authority={cluster.parent / 'pki' / 'ca.crt'}" in arguments, arguments
    assert not [a for a in arguments if a.startswith("--kubelet-insecure-tls")], arguments
