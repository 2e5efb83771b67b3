"""An app written the ordinary Compose way (tests/integration/apps/guestbook), deployed unchanged from
its own compose.yaml on both targets, for real.

Its Dockerfiles build FROM public images (the stack's `baseImages` stand local ones in), its images
run as root (the stack runs them as uid 10001), its store writes to a fresh named volume and says
its port only in its image (`EXPOSE 6379`, no `expose:`), and its values come from the `.env`
beside the file and from the stack (`composeEnv`). It must answer, keep its data across a roll of
the store, and leave nothing behind.
"""

from __future__ import annotations

import json
import shutil

import pytest
from pulumi import automation as auto

from components.conventions import STACK_LABEL
from support.testing import ROOT, free_port, get_json, kubectl, kubectl_json, wait_for

STAND_INS = {"python:3.12-slim": "cloudservice/base:bookworm", "redis:7": "cloudservice/base:bookworm"}


class Guestbook:
    def __init__(self, project, registry, template: str, web_port: int, **config):
        if not (project.directory / "apps" / "guestbook").exists():
            shutil.copytree(
                ROOT / "tests" / "integration" / "apps" / "guestbook", project.directory / "apps" / "guestbook"
            )
        self.environment = {"WEB_PORT": str(web_port)}
        self.stack = project.stack(
            template,
            config={"compose": "apps/guestbook/compose.yaml", "baseImages": json.dumps(STAND_INS), **config},
            secrets={"registryPassword": registry.password},
        )
        self.logs: list[str] = []
        self.outputs: dict = {}

    def up(self, **environment: str) -> None:
        self.environment.update(environment)
        self.stack.set_config("cloudservice:composeEnv", auto.ConfigValue(value=json.dumps(self.environment)))
        self.outputs = self.stack.up(on_output=self.logs.append).outputs

    @property
    def url(self) -> str:
        return self.outputs["url"].value

    def visit(self) -> dict:
        """One visit; retried while a rolled store comes back (the web keeps answering meanwhile)."""

        def answer():
            status, body = get_json(f"{self.url}/")
            return body if status == 200 else None

        return wait_for(answer, timeout=60, interval=1, what=f"an answer from {self.url}/")


def _deploy(project, registry, template: str, web_port: int, **config) -> Guestbook:
    app = Guestbook(project, registry, template, web_port, **config)
    app.up()
    return app


@pytest.fixture(scope="module")
def on_docker(project, registry, docker_client):
    app = _deploy(project, registry, "dev", free_port())
    app.target = "docker"
    yield app
    app.stack.destroy()
    app.stack.workspace.remove_stack(app.stack.name)


@pytest.fixture(scope="module")
def on_kubernetes(project, registry, cluster):
    app = _deploy(project, registry, "staging", 8000, replicas="1")
    app.target = "kubernetes"
    yield app
    app.stack.destroy()
    app.stack.workspace.remove_stack(app.stack.name)


@pytest.fixture(params=["docker", "kubernetes"])
def guestbook(request):
    return request.getfixturevalue(f"on_{request.param}")


def test_it_answers_with_the_dotenv_value_and_counts_in_its_store(guestbook):
    first, second = guestbook.visit(), guestbook.visit()
    assert first["greeting"] == "hello from the .env"
    assert second["hits"] == first["hits"] + 1, "the web reaches the store by its name, on its image's port"


def test_pulumi_up_said_where_the_port_came_from(guestbook):
    assert any("services.store.ports: from the image's EXPOSE: 6379/tcp" in line for line in guestbook.logs)


def test_the_store_runs_unprivileged_and_keeps_its_data_across_a_roll(guestbook, docker_client):
    before = guestbook.visit()["hits"]
    guestbook.up(STORE_RELEASE="2")  # a changed environment: a new store container / pod
    assert guestbook.visit()["hits"] == before + 1, "the append-only file on the volume survived the new store"
    if guestbook.target == "docker":
        (store,) = docker_client.containers.list(
            filters={"label": [f"{STACK_LABEL}={guestbook.stack.name}", "app.kubernetes.io/name=store"]}
        )
        assert store.attrs["Config"]["User"] == "10001:10001" and "RELEASE=2" in store.attrs["Config"]["Env"]
    else:
        namespace = guestbook.outputs["namespace"].value
        (pod,) = kubectl_json("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=store")["items"]
        assert pod["spec"]["securityContext"]["runAsUser"] == 10001
        assert kubectl("-n", namespace, "exec", pod["metadata"]["name"], "--", "id", "-u").strip() == "10001"


def test_destroy_leaves_nothing(guestbook, docker_client):
    guestbook.stack.destroy()
    if guestbook.target == "docker":
        label = {"label": f"{STACK_LABEL}={guestbook.stack.name}"}
        assert docker_client.containers.list(all=True, filters=label) == []
        assert docker_client.volumes.list(filters=label) == []
        assert docker_client.networks.list(filters=label) == []
    else:
        namespace = guestbook.outputs["namespace"].value
        wait_for(
            lambda: namespace not in kubectl("get", "namespaces", "-o", "name"),
            timeout=120,
            what=f"namespace {namespace} to be gone",
        )
