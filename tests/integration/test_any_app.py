"""An app not written for this project, with the same spec on both targets, for real.

polyglot (tests/integration/apps/polyglot) is built the way many images are: a multi-stage build,
no USER (root by default), serving on port 80, with no SIGTERM handler. Its spec uses what real apps
need: two named ports, a worker without a port, args and command overrides, a config file, two
user-named secrets (as an environment variable and as a file), a store with a volume, a migration
job that must complete before the API starts (the API exits if it has not), and an init process.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timedelta

import pytest

from components.conventions import STACK_LABEL
from support.testing import ROOT, changed_resources, free_ports, get_json, http, kubectl_json, wait_for

DB_PASSWORD = "db-pw-5c1e0b7a93"
API_TOKEN = "api-token-e27d44f08b"
CONFIG_FILE = "apps/polyglot-config/config.json"


def polyglot_spec(http_port: int, metrics_port: int) -> tuple[dict, dict]:
    build = "apps/polyglot"
    services = {
        "store": {
            "build": build,
            "args": ["store"],
            "port": 7000,
            "volume": {"path": "/data", "size": "64Mi"},
            "health": {"http": "/healthz", "interval": 1, "retries": 5},
            "init": True,
        },
        "api": {
            "build": build,
            "args": ["serve"],
            "ports": {"http": {"port": 80, "publish": http_port}, "metrics": {"port": 9100, "publish": metrics_port}},
            "links": ["store"],
            "dependsOn": {"migrate": "completed"},
            "env": {"PORT": "80", "METRICS_PORT": "9100"},
            "files": {"/etc/polyglot/config.json": CONFIG_FILE},
            "secretEnv": {"DB_PASSWORD": "dbPassword"},
            "secretFiles": {"/run/secrets/api_token": "apiToken"},
            "health": "/healthz",
            "init": True,
        },
        "worker": {
            "build": build,
            "command": ["python3", "-u", "/app/app.py"],
            "args": ["worker"],
            "links": ["api"],
            "memory": 64,
            "init": True,
        },
    }
    jobs = {"migrate": {"build": build, "args": ["migrate"], "links": ["store"], "dependsOn": {"store": "healthy"}}}
    return services, jobs


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class App:
    def __init__(self, stack, target: str):
        self.stack, self.target = stack, target
        self.outputs: dict = {}

    @property
    def url(self) -> str:
        return self.outputs["url"].value


def _deploy(project, registry, template: str, target: str, http_port: int, metrics_port: int, **config):
    for name in ("polyglot", "polyglot-config"):
        if not (project.directory / "apps" / name).exists():
            shutil.copytree(ROOT / "tests" / "integration" / "apps" / name, project.directory / "apps" / name)
    services, jobs = polyglot_spec(http_port, metrics_port)
    stack = project.stack(
        template,
        config={"services": json.dumps(services), "jobs": json.dumps(jobs), **config},
        secrets={"registryPassword": registry.password, "dbPassword": DB_PASSWORD, "apiToken": API_TOKEN},
    )
    app = App(stack, target)
    logs: list[str] = []
    app.outputs = stack.up(on_output=logs.append).outputs
    app.logs = logs
    return app


@pytest.fixture(scope="module")
def on_docker(project, registry, docker_client):
    http_port, metrics_port = free_ports(2)
    app = _deploy(project, registry, "dev", "docker", http_port, metrics_port)
    app.metrics_url = f"http://127.0.0.1:{metrics_port}"
    yield app
    app.stack.destroy()
    app.stack.workspace.remove_stack(app.stack.name)


@pytest.fixture(scope="module")
def on_kubernetes(project, registry, cluster):
    # On the cluster the published ports are the Service's ports; NodePorts carry them to the host.
    app = _deploy(project, registry, "staging", "kubernetes", 80, 9100, replicas="1")
    namespace = app.outputs["namespace"].value
    metrics = next(
        p for p in kubectl_json("get", "service", "api", "-n", namespace)["spec"]["ports"] if p["name"] == "metrics"
    )
    app.metrics_url = f"http://127.0.0.1:{metrics['nodePort']}"
    yield app
    app.stack.destroy()
    app.stack.workspace.remove_stack(app.stack.name)


@pytest.fixture(params=["docker", "kubernetes"])
def app(request):
    return request.getfixturevalue(f"on_{request.param}")


def status(app: App) -> dict:
    code, body = get_json(f"{app.url}/status")
    assert code == 200, body
    return body


def test_root_image_on_port_80_answers_as_a_non_root_user(app):
    """The image's default user is root and it binds port 80: the spec's non-root user binds it on both
    targets (Docker lowers the unprivileged port start; on Kubernetes the pod's sysctl does)."""
    code, page, _ = http("GET", f"{app.url}/")
    assert code == 200 and b"<h1>polyglot docs</h1>" in page, "the docs generated in the first build stage are served"
    assert status(app)["uid"] == 10001


def test_init_runs_the_command_under_an_init_process(app):
    """Without it the command is PID 1, which gets no default action for SIGTERM: each stop and each
    rollout would wait out the whole grace period (10 s on Docker, 30 s on Kubernetes)."""
    body = status(app)
    init = {"docker": "/sbin/docker-init", "kubernetes": "/pause"}[app.target]
    assert body["pid"] != 1 and body["pid_1"] == init, body


def test_second_port_answers(app):
    code, body, _ = http("GET", f"{app.metrics_url}/metrics")
    assert code == 200 and body.startswith(b"polyglot_beats ")


def test_worker_without_a_port_runs_with_its_command_and_args(app):
    beats = wait_for(lambda: status(app)["worker_beats"] >= 3, timeout=60, what="worker heartbeats")
    assert beats


def test_config_file_and_user_named_secrets_reach_the_container(app):
    body = status(app)
    with open(ROOT / "tests" / "integration" / CONFIG_FILE) as config:
        assert body["config"] == json.load(config)
    assert body["db_password_sha256"] == sha256(DB_PASSWORD), "secretEnv from the user-named secret dbPassword"
    assert body["api_token_sha256"] == sha256(API_TOKEN), "secretFiles from the user-named secret apiToken"


def test_secrets_are_never_in_plaintext(app, project, docker_client):
    state = project.state_file(app.stack.name).read_text()
    outputs = json.dumps({k: v.value for k, v in app.stack.outputs().items() if not v.secret})
    for secret in (DB_PASSWORD, API_TOKEN):
        assert secret not in state, "the state file holds secrets encrypted only"
        assert secret not in outputs and not any(secret in line for line in app.logs)
    if app.target == "docker":
        for container in docker_client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={app.stack.name}"}):
            assert not any(s in json.dumps(container.labels) for s in (DB_PASSWORD, API_TOKEN))


def test_migration_completed_before_the_api_started(app, docker_client):
    if app.target == "docker":

        def container(name):
            return docker_client.containers.list(
                all=True, filters={"label": [f"{STACK_LABEL}={app.stack.name}", f"app.kubernetes.io/name={name}"]}
            )[0].attrs["State"]

        job, api = container("migrate"), container("api")
        assert job["Status"] == "exited" and job["ExitCode"] == 0
        finished, started = job["FinishedAt"], api["StartedAt"]
    else:
        namespace = app.outputs["namespace"].value
        job = kubectl_json("get", "jobs", "-n", namespace, "-l", "app.kubernetes.io/name=migrate")["items"][0]
        assert job["status"].get("succeeded") == 1
        pod = kubectl_json("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=api")["items"][0]
        finished, started = job["status"]["completionTime"], pod["status"]["startTime"]
    assert _time(finished) <= _time(started), f"job finished {finished}, api started {started}"
    assert status(app)["schema"] == "2"


def _time(stamp: str) -> datetime:
    """Docker's nanosecond and Kubernetes' second timestamps, both UTC."""
    seconds, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(seconds) + timedelta(microseconds=int((fraction + "000000")[:6]))


def test_a_changed_config_file_rolls_only_its_service(app, project):
    source = project.directory / CONFIG_FILE
    source.write_text(json.dumps({"greeting": f"hello {app.target}", "level": 2}))
    try:
        events: list = []
        app.stack.up(on_event=events.append)
        changed = {name for _, name in changed_resources(events)}
        assert changed and all("api" in name for name in changed), f"only the api rolls: {changed}"
        wait_for(
            lambda: status(app)["config"] == {"greeting": f"hello {app.target}", "level": 2},
            timeout=60,
            what="the new config file",
        )
    finally:
        shutil.copy(ROOT / "tests" / "integration" / CONFIG_FILE, source)
