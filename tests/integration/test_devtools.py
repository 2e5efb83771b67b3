"""`make status`, `make logs` and `make dev` for real, on both targets: a project copy that has the
Makefile and scripts too, a stack on the real engine or cluster, and the commands as a user types them.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
import uuid

import pytest

from components.conventions import SERVICE_LABEL, STACK_LABEL
from support.processes import OutputWatcher
from support.testing import ROOT, ProjectCopy, edit_app_version, free_port, get_json, http, kubectl_json, wait_for


class MakeProject:
    """A project copy with a stack that is up, and `make` run in it on that stack's backend."""

    def __init__(self, project: ProjectCopy, stack):
        self.project, self.stack = project, stack
        self.outputs = {key: value.value for key, value in stack.outputs().items()}

    def make(self, target: str, **variables: str) -> OutputWatcher:
        """Starts `make TARGET STACK=... VAR=...` (long-running ones are stopped by the test)."""
        settings = [f"{key}={value}" for key, value in {"STACK": self.stack.name, **variables}.items()]
        return OutputWatcher(
            ["make", "--no-print-directory", target, *settings], cwd=self.project.directory, env=self.project.env
        )

    def status_text(self) -> str:
        """`make status`, as printed."""
        result = self.project.make("status", self.stack.name)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def status(self) -> dict[str, list[str]]:
        """`make status`, its table read back: service -> [state, digest, url]; its disk lines."""
        lines = self.status_text().splitlines()
        header = lines.index(next(line for line in lines if line.startswith("SERVICE")))
        columns = [match.start() for match in re.finditer(r"\S+(?: \S+)*", lines[header])]
        rows = {}
        for line in lines[header + 1 :]:
            if not line or line.startswith(" "):
                break
            cells = [line[start:end].strip() for start, end in zip(columns, [*columns[1:], None])]
            rows[cells[0]] = cells[1:]
        return {"header": lines[:header], "disk": [line for line in lines if line.startswith("disk: ")], **rows}


def make_project(
    tmp_path_factory, template: str, registry, config: dict | None = None, apps: tuple[str, ...] = ()
) -> MakeProject:
    """`apps`: test apps (tests/integration/apps/<name>) the stack's config builds, copied to apps/<name>."""
    project = ProjectCopy(tmp_path_factory.mktemp(f"make-{template}"))
    for name in apps:
        shutil.copytree(ROOT / "tests" / "integration" / "apps" / name, project.directory / "apps" / name)
    project.add_make_files()
    stack = project.stack(template, config=config, secrets={"registryPassword": registry.password})
    stack.up()
    return MakeProject(project, stack)


@pytest.fixture(scope="module")
def on_docker(tmp_path_factory, registry, docker_client, pulumi_cli):
    made = make_project(tmp_path_factory, "dev", registry, config={"portOffset": str(free_port() - 8080)})
    yield made
    made.stack.destroy()
    made.stack.workspace.remove_stack(made.stack.name)


@pytest.fixture(scope="module")
def on_kubernetes(tmp_path_factory, registry, cluster, docker_client, pulumi_cli):
    made = make_project(tmp_path_factory, "staging", registry)
    yield made
    made.stack.destroy()
    made.stack.workspace.remove_stack(made.stack.name)


def containers(docker_client, stack: str) -> dict:
    """Service -> (container ID, start time), as the engine reports them (one-shot steps have no service label)."""
    listed = docker_client.containers.list(all=True, filters={"label": [f"{STACK_LABEL}={stack}", SERVICE_LABEL]})
    return {c.labels["app.kubernetes.io/name"]: (c.id, c.attrs["State"]["StartedAt"]) for c in listed}


def pods(namespace: str) -> dict[str, set[str]]:
    """Service -> UIDs of its running pods."""
    found: dict[str, set[str]] = {}
    for pod in kubectl_json("get", "pods", "-n", namespace)["items"]:
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
            found.setdefault(pod["metadata"]["labels"]["app.kubernetes.io/name"], set()).add(pod["metadata"]["uid"])
    return found


def version(url: str) -> str:
    status, document = get_json(url + "/")
    assert status == 200, document
    return document["version"]


def check_status(made: MakeProject, expected_states: dict[str, str]) -> None:
    status = made.status()
    assert f"stack {made.stack.name} on {made.outputs['target']}" in status["header"][0]
    for service, state in expected_states.items():
        row_state, digest, url = status[service]
        assert row_state == state, status
        assert digest == made.outputs["digests"][service], (
            f"{service} runs {digest}, the stack pushed {made.outputs['digests'][service]}"
        )
        assert url == made.outputs["urls"].get(service, "-")
    # The space images take, which `make gc` frees: the engine's (as `docker system df`) and the registry's.
    engine, registry = status["disk"]
    assert re.fullmatch(r"disk: engine [0-9.]+ [kMGT]?B in [0-9]+ images, containers .*, build cache .*", engine), (
        engine
    )
    assert re.match(r"disk: registry [0-9.]+ [kMGT]?B ", registry), registry


def check_logs(made: MakeProject) -> None:
    every = made.make("logs")
    try:
        every.wait_for("redis | ", timeout=60)
        marker = f"/notes?{uuid.uuid4().hex}"
        get_json(made.outputs["url"] + marker)  # web logs every request
        line = every.wait_for(marker, timeout=60)
        assert line.startswith("web   | ") and '"GET /notes?' in line, line
    finally:
        every.stop()
    redis_only = made.make("logs", SERVICE="redis")
    try:
        redis_only.wait_for("redis | ", timeout=60)
        time.sleep(2)  # web's own last lines would have come by now
        assert not [line for line in redis_only.lines if line.startswith("web")], redis_only.lines
    finally:
        redis_only.stop()


def test_status_shows_digest_health_and_url_on_docker(on_docker):
    check_status(on_docker, {"redis": "healthy", "web": "healthy"})


def test_logs_follow_every_service_or_one_on_docker(on_docker):
    check_logs(on_docker)


def test_status_shows_digest_readiness_and_url_on_kubernetes(on_kubernetes):
    check_status(on_kubernetes, {"redis": "1/1 ready", "web": "2/2 ready"})


def test_logs_follow_every_service_or_one_on_kubernetes(on_kubernetes):
    check_logs(on_kubernetes)


def test_dev_loop_rolls_only_the_saved_service_on_docker(on_docker, docker_client):
    url = on_docker.outputs["url"]
    dev = on_docker.make("dev")
    logs = on_docker.make("logs")
    try:
        dev.wait_for("[dev] watching", timeout=300)
        before = containers(docker_client, on_docker.stack.name)
        # A save that changes nothing Docker would see starts no update.
        redis_conf = on_docker.project.directory / "app" / "redis" / "redis.conf"
        redis_conf.write_text(redis_conf.read_text())
        mark = dev.mark()
        new_version = f"dev-{uuid.uuid4().hex[:6]}"
        edit_app_version(on_docker.project, new_version)
        live = dev.wait_for("[dev] web is live at", timeout=180, since=mark)
        assert url in live
        assert version(url) == new_version
        assert not [line for line in dev.lines[mark:] if "redis" in line and "[dev]" in line], dev.lines[mark:]
        after = containers(docker_client, on_docker.stack.name)
        assert after["redis"] == before["redis"], "redis was restarted or replaced"
        assert after["web"][0] != before["web"][0], "web was not replaced"
        # `make logs` follows the new web container from its start.
        logs.wait_for(f"web   | cloudservice {new_version} listening", timeout=60)
    finally:
        dev.stop()
        logs.stop()
    assert dev.process.returncode in (0, 130, -signal.SIGINT), dev.lines[-20:]  # stopped by Ctrl-C, no error


def test_dev_loop_rolls_only_the_saved_service_on_kubernetes(on_kubernetes):
    url, namespace = on_kubernetes.outputs["url"], on_kubernetes.outputs["namespace"]
    dev = on_kubernetes.make("dev")
    try:
        dev.wait_for("[dev] watching", timeout=300)
        before = pods(namespace)
        mark = dev.mark()
        new_version = f"dev-{uuid.uuid4().hex[:6]}"
        edit_app_version(on_kubernetes.project, new_version)
        dev.wait_for("[dev] web is live at", timeout=300, since=mark)
        # The rollout is done, but an old pod in its preStop drain may take a request until kube-proxy
        # has caught up: within seconds the new version answers every request.
        deadline = time.monotonic() + 15
        answers = [version(url) for _ in range(10)]
        while answers != [new_version] * 10 and time.monotonic() < deadline:
            time.sleep(0.5)
            answers = [version(url) for _ in range(10)]
        assert answers == [new_version] * 10
        after = pods(namespace)
        assert after["redis"] == before["redis"], "redis was rolled"
        assert not after["web"] & before["web"], "web still runs an old pod"
    finally:
        dev.stop()


def test_pulumi_watch_finds_its_helper_and_updates_on_save(on_docker):
    """`pulumi watch` itself, offline: its pulumi-watch helper is beside the CLI (make toolchain)."""
    url = on_docker.outputs["url"]
    watch = OutputWatcher(
        ["pulumi", "watch", "--stack", on_docker.stack.name, "--path", "app/web"],
        cwd=on_docker.project.directory,
        env=on_docker.project.env,
    )
    try:
        watch.wait_for("Watch mode enabled", timeout=120)
        time.sleep(2)  # the CLI says so once the helper started, not once it watches: a save before is missed
        new_version = f"watch-{uuid.uuid4().hex[:6]}"
        edit_app_version(on_docker.project, new_version)
        watch.wait_for("Update complete", timeout=180)
        assert version(url) == new_version
    finally:
        watch.stop()


# Live update: one service of the test app tests/integration/apps/live, its site/ synced into the
# running containers by `make dev` (sync+restart on Docker; sync on Kubernetes, where a restarted
# container starts from its image).
LIVE_BOUND = 10.0  # seconds from a save to the synced file answering (a rebuild and roll takes longer)


def live_services(action: str) -> str:
    return json.dumps(
        {
            "live": {
                "build": "apps/live",
                "port": 8000,
                "publish": 8080,
                "health": "/healthz",
                "readOnly": False,
                "sync": [{"path": "apps/live/site", "target": "/srv/site", "action": action, "ignore": ["*.swp"]}],
            }
        }
    )


@pytest.fixture(scope="module")
def live_on_docker(tmp_path_factory, registry, docker_client, pulumi_cli):
    config = {"portOffset": str(free_port() - 8080), "services": live_services("sync+restart")}
    made = make_project(tmp_path_factory, "dev", registry, config=config, apps=("live",))
    yield made
    made.stack.destroy()
    made.stack.workspace.remove_stack(made.stack.name)


@pytest.fixture(scope="module")
def live_on_kubernetes(tmp_path_factory, registry, cluster, docker_client, pulumi_cli):
    made = make_project(
        tmp_path_factory, "staging", registry, config={"services": live_services("sync")}, apps=("live",)
    )
    yield made
    made.stack.destroy()
    made.stack.workspace.remove_stack(made.stack.name)


def fetch(url: str) -> str:
    status, body, _ = http("GET", url)
    assert status == 200, (url, status, body)
    return body.decode()


def check_live_update(made: MakeProject, instances, answer: str) -> None:
    """A save under the sync path answers (`answer`: /boot after a restart, /file without) with the
    new content in the same containers, with no image built; `make status` flags it; a Dockerfile save
    then rebuilds and rolls, which bakes the synced file into the image and clears the flag."""
    url, site = made.outputs["url"], made.project.directory / "apps" / "live"
    dev = made.make("dev")
    try:
        dev.wait_for("[dev] watching", timeout=300)
        before, images_before = instances(), made.stack.outputs()["images"].value
        mark = dev.mark()
        message = f"synced-{uuid.uuid4().hex[:6]}\n"
        (site / "site" / "message.txt").write_text(message)
        live = dev.wait_for("[dev] live is live at", timeout=60, since=mark)
        took = float(re.search(r"\(([0-9.]+)s after the save\)", live).group(1))
        assert fetch(url + answer) == message
        assert took < LIVE_BOUND, live
        assert instances() == before, "the containers were replaced: not a live update"
        assert not [line for line in dev.lines[mark:] if "rebuilding" in line], dev.lines[mark:]
        assert made.stack.outputs()["images"].value == images_before
        assert "note: live is live-updated (1 file synced by `make dev`: /srv/site/message.txt): run `pulumi up`" in (
            made.status_text()
        )
        # A save of the Dockerfile rebuilds and rolls, with `pulumi up`: the image now has the synced file.
        mark = dev.mark()
        dockerfile = site / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + "# rebuilt\n")
        dev.wait_for("[dev] live: rebuilding (Dockerfile changed)", timeout=60, since=mark)
        dev.wait_for("[dev] live is live at", timeout=300, since=mark)
        assert made.stack.outputs()["images"].value != images_before
        wait_for(lambda: not instances() & before, timeout=60, interval=0.5, what="the old containers to go")
        # The image has the synced file: a new container read it at its start (old pods may drain a moment).
        wait_for(lambda: fetch(url + "/boot") == message, timeout=30, interval=0.5, what="the baked file to answer")
        assert "live-updated" not in made.status_text()
    finally:
        dev.stop()
        print("\n".join(dev.lines))  # the loop's own account, with its timings


def test_dev_loop_live_updates_a_synced_save_on_docker(live_on_docker, docker_client):
    def instances() -> set[str]:
        return {containers(docker_client, live_on_docker.stack.name)["live"][0]}

    check_live_update(live_on_docker, instances, "/boot")


def test_dev_loop_live_updates_a_synced_save_on_kubernetes(live_on_kubernetes):
    namespace = live_on_kubernetes.outputs["namespace"]
    check_live_update(live_on_kubernetes, lambda: pods(namespace).get("live", set()), "/file")
