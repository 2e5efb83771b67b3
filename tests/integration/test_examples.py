"""The examples, deployed from their Compose files by their committed stacks, on both targets, for
real: up and answering through the published entry point, a no-op second preview, one source
change rolled out with the data kept (and, for the shop, a rollback), destroy leaving nothing.

walkthrough (examples/walkthrough): the getting-started docs site, root image on port 80.
shop (examples/shop): nginx proxy -> API -> PostgreSQL, a migration job, a portless worker.
A bad Compose file is refused before anything exists.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
import yaml
from pulumi import automation as auto

from components.conventions import STACK_LABEL
from support.testing import ROOT, changed_resources, free_port, get_json, http, kubectl, kubectl_json, wait_for

SHOP_DEFAULT_PASSWORD = (ROOT / "examples" / "shop" / "secrets" / "db_password.txt").read_text().strip()


class Example:
    """One example stack and what the test learns about it on the way."""

    def __init__(self, stack: auto.Stack, target: str):
        self.stack, self.target = stack, target
        self.outputs: dict = {}
        self.logs: list[str] = []

    @property
    def url(self) -> str:
        """Without a trailing slash (an entry point's URL has one)."""
        return self.outputs["url"].rstrip("/")

    def up(self, **kwargs) -> auto.UpResult:
        result = self.stack.up(on_output=self.logs.append, **kwargs)
        self.outputs = {key: value.value for key, value in result.outputs.items()}
        return result


@pytest.fixture(scope="module")
def examples(project):
    """The project copy gets the examples: their Compose files name paths inside the project."""
    shutil.copytree(ROOT / "examples", project.directory / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return project.directory / "examples"


def published_port(template: str) -> int:
    """The host port the example's Compose file publishes (the docker stacks move it to a free one)."""
    settings = yaml.safe_load((ROOT / f"Pulumi.{template}.yaml").read_text())["config"]
    compose = yaml.safe_load((ROOT / settings["cloudservice:compose"]).read_text())
    ports = [port for service in compose["services"].values() for port in service.get("ports", [])]
    return int(ports[0].rsplit(":", 2)[-2])


@pytest.fixture
def example(request, project, examples, registry, docker_client):
    """The stack of Pulumi.<name>-<docker|k8s>.yaml; destroyed afterwards whatever the test did."""
    name, target = request.param
    template = f"{name}-{'docker' if target == 'docker' else 'k8s'}"
    if target == "kubernetes":
        request.getfixturevalue("cluster")
    config = {"portOffset": str(free_port() - published_port(template))} if target == "docker" else {}
    stack = project.stack(template, config=config, secrets={"registryPassword": registry.password})
    yield Example(stack, target)
    stack.destroy()
    stack.workspace.remove_stack(stack.name)


def both_targets(name: str):
    return pytest.mark.parametrize(
        "example", [(name, "docker"), (name, "kubernetes")], indirect=True, ids=["docker", "kubernetes"]
    )


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}"
    path.write_text(text.replace(old, new))


def page(url: str) -> str:
    status, body, _ = http("GET", url, timeout=5)
    return body.decode() if status == 200 else ""


def answering(url: str, text: str, what: str) -> str:
    """The page at `url` once it contains `text` (a NodePort or a replaced container may take a moment)."""
    return wait_for(lambda: text in page(url) and page(url), timeout=60, what=what)


def process_user(example: Example, docker_client, service: str) -> str:
    """The user the service's container runs as, as the target declares it."""
    if example.target == "docker":
        return container(docker_client, example, service).attrs["Config"]["User"]
    pod = kubectl_json("get", "pods", "-n", example.outputs["namespace"], "-l", f"app.kubernetes.io/name={service}")[
        "items"
    ][0]
    context = {**pod["spec"].get("securityContext", {}), **pod["spec"]["containers"][0].get("securityContext", {})}
    return f"{context['runAsUser']}:{context['runAsGroup']}"


def containers(docker_client, stack_name: str) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={stack_name}"})


def container(docker_client, example: Example, service: str):
    """The container that runs `service` (named after the stack and the service)."""
    return docker_client.containers.get(f"cloudservice-{example.stack.name}-{service}")


def changed_services(example: Example, events) -> set[str]:
    """The services whose resources an operation created, updated, replaced or deleted (a service's
    rollout check, `<service>-ready`, runs again with it)."""
    prefix = f"cloudservice-{example.stack.name}-"
    return {name.removeprefix(prefix).removesuffix("-ready") for _, name in changed_resources(events)}


def resources_in_state(stack: auto.Stack) -> list[str]:
    """Types of the resources the stack's state holds, besides the stack itself."""
    deployment = stack.export_stack().deployment or {}
    return [r["type"] for r in deployment.get("resources") or [] if r["type"] != "pulumi:pulumi:Stack"]


def assert_destroy_leaves_nothing(example: Example, docker_client) -> None:
    example.stack.destroy()
    name = example.stack.name
    assert resources_in_state(example.stack) == []
    if example.target == "docker":
        label = {"label": f"{STACK_LABEL}={name}"}
        assert containers(docker_client, name) == []
        assert docker_client.networks.list(filters=label) == [] and docker_client.volumes.list(filters=label) == []
    else:
        namespace = example.outputs["namespace"]
        leftovers = kubectl(
            "get", "all,job,pvc,secret,configmap,namespace", "-A", "-l", f"{STACK_LABEL}={name}", "-o", "name"
        )
        assert leftovers.strip() == ""
        assert kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").strip() == ""
        wait_for(
            lambda: (
                not any(
                    pv["spec"].get("claimRef", {}).get("namespace") == namespace
                    for pv in kubectl_json("get", "pv")["items"]
                )
            ),
            timeout=60,
            what="the volumes of the stack's claims to be released",
        )


# -- walkthrough ----------------------------------------------------------------------------------


@both_targets("walkthrough")
def test_walkthrough_serves_the_docs_and_rolls_out_a_docs_change(example, examples, docker_client, registry):
    example.up()
    if example.target == "kubernetes":  # its stack routes docs through the cluster's entry point
        assert example.url == f"https://{example.outputs['namespace']}.apps.localhost:8443", example.url
    home = answering(example.url + "/", "Release: walkthrough 1", "the docs site")
    assert "<title>Getting started" in home
    assert "Share the application" in page(example.url + "/tutorial/share/"), "pages generated by the build stage"
    # The image's default user is root; the stack runs it unprivileged, still on port 80.
    assert process_user(example, docker_client, "docs") == "10001:10001"
    pushed = example.outputs["images"]["docs"]
    assert pushed.startswith(f"{registry.server}/walkthrough/docs@sha256:")

    example.stack.preview(expect_no_changes=True)

    edit(examples / "walkthrough" / "docs" / "index.md", "Release: walkthrough 1", "Release: walkthrough 2")
    try:
        events: list = []
        example.up(on_event=events.append)
    finally:
        edit(examples / "walkthrough" / "docs" / "index.md", "Release: walkthrough 2", "Release: walkthrough 1")
    changed = changed_services(example, events)
    assert changed == {"docs"}, changed
    assert example.outputs["images"]["docs"] != pushed
    answering(example.url + "/", "Release: walkthrough 2", "the changed docs")

    assert_destroy_leaves_nothing(example, docker_client)


# -- shop -----------------------------------------------------------------------------------------


def api(url: str, path: str, body: dict | None = None):
    status, payload = get_json(
        url + path, "POST" if body is not None else "GET", json.dumps(body).encode() if body is not None else None
    )
    assert status in (200, 201), (path, status, payload)
    return payload


def orders(url: str) -> list[tuple[int, str, int]]:
    return [(order["id"], order["product"], order["quantity"]) for order in api(url, "/api/orders")]


def shipped(url: str, order_id: int) -> bool:
    return api(url, f"/api/orders/{order_id}")["status"] == "shipped"


def workload_state(example: Example, docker_client) -> dict:
    """The database's identity and the migration's: an API update or rollback leaves both alone."""
    if example.target == "docker":
        db, migrate = container(docker_client, example, "db"), container(docker_client, example, "migrate")
        state = migrate.attrs["State"]
        return {"db": db.id, "migrate": migrate.id, "migrated": (state["Status"], state["ExitCode"]) == ("exited", 0)}
    namespace = example.outputs["namespace"]
    db = kubectl_json("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=db")["items"][0]
    job = kubectl_json("get", "jobs", "-n", namespace, "-l", "app.kubernetes.io/name=migrate")["items"][0]
    return {
        "db": db["metadata"]["uid"],
        "migrate": job["metadata"]["uid"],
        "migrated": job["status"].get("succeeded") == 1,
    }


@both_targets("shop")
def test_shop_keeps_its_orders_across_an_api_update_and_a_rollback(example, examples, project, docker_client):
    example.up()
    url = example.url
    answering(url + "/", "<h1>Shop</h1>", "the storefront from the proxy")
    # Proxy -> API -> PostgreSQL: the catalogue the migration job wrote before the API started.
    assert [p["name"] for p in api(url, "/api/products")] == ["Teapot", "Mug", "Kettle"]
    assert api(url, "/api/")["version"] == "1"
    first = api(url, "/api/orders", {"product": 1, "quantity": 2})
    wait_for(lambda: shipped(url, first["id"]), timeout=30, what="the worker to ship the order")
    before = workload_state(example, docker_client)
    assert before["migrated"], before
    # The password came from the Compose file's secret: encrypted in the state, never in the logs.
    assert SHOP_DEFAULT_PASSWORD not in project.state_file(example.stack.name).read_text()
    assert not any(SHOP_DEFAULT_PASSWORD in line for line in example.logs)
    first_images = example.outputs["images"]

    example.stack.preview(expect_no_changes=True)

    version = examples / "shop" / "api" / "shop" / "__init__.py"
    edit(version, 'VERSION = "1"', 'VERSION = "2"')
    try:
        events: list = []
        example.up(on_event=events.append)
    finally:
        edit(version, 'VERSION = "2"', 'VERSION = "1"')
    changed = changed_services(example, events)
    print("shop API change:", sorted(changed))
    assert "api" in changed and not any(name.startswith(("db", "migrate", "proxy")) for name in changed), changed
    wait_for(lambda: api(url, "/api/")["version"] == "2", timeout=60, what="the updated API behind the proxy")
    assert orders(url) == [(first["id"], "Teapot", 2)]
    second = api(url, "/api/orders", {"product": 3, "quantity": 1})
    assert workload_state(example, docker_client) == before, "the database and the migration were left alone"

    # Roll the API back to the image it ran first: the data stays.
    example.stack.set_config("cloudservice:images.api", auto.ConfigValue(first_images["api"]), path=True)
    example.up()
    assert example.outputs["images"]["api"] == first_images["api"]
    wait_for(lambda: api(url, "/api/")["version"] == "1", timeout=60, what="the rolled back API")
    assert orders(url) == [(first["id"], "Teapot", 2), (second["id"], "Kettle", 1)]
    wait_for(lambda: shipped(url, second["id"]), timeout=30, what="the worker to ship the second order")
    assert workload_state(example, docker_client) == before

    assert_destroy_leaves_nothing(example, docker_client)


# -- refused before anything exists -------------------------------------------------------------


# A file Compose loads, with what cannot exist on a cluster: every problem is reported at once. And one
# Compose's own loader refuses (a dependency cycle), as `docker compose config` does.
BAD_COMPOSE = {
    "services": {
        "web": {"build": "./web", "network_mode": "host", "volumes": ["/srv/data:/data"], "depends_on": ["db"]},
        "db": {"image": "postgres:16", "privileged": True, "volumes": ["/var/run/docker.sock:/var/run/docker.sock"]},
    }
}
CYCLE = {"services": {"web": {"image": "nginx", "depends_on": ["db"]}, "db": {"image": "nginx", "depends_on": ["web"]}}}


@pytest.mark.parametrize(
    "document,problems",
    [
        (
            BAD_COMPOSE,
            (
                "services.web.network_mode:",
                "services.web.volumes[0]:",
                "services.db.privileged:",
                "services.db.volumes[0]:",
            ),
        ),
        (CYCLE, ("dependency cycle detected",)),
    ],
    ids=["host-bound", "cycle"],
)
def test_a_bad_compose_file_is_refused_before_any_resource(
    project, examples, registry, docker_client, document, problems
):
    (examples / "bad").mkdir(exist_ok=True)
    (examples / "bad" / "compose.yaml").write_text(yaml.safe_dump(document))
    stack = project.stack(
        "shop-docker", config={"compose": "examples/bad/compose.yaml"}, secrets={"registryPassword": registry.password}
    )
    try:
        started = time.monotonic()
        output: list[str] = []
        with pytest.raises(auto.CommandError):
            stack.up(on_output=output.append)
        message = "\n".join(output)
        for problem in problems:
            assert "examples/bad/compose.yaml: " in message and problem in message, (problem, message)
        assert "Traceback" not in message
        assert resources_in_state(stack) == []
        assert containers(docker_client, stack.name) == []
        print(f"refused in {time.monotonic() - started:.1f}s")
    finally:
        stack.workspace.remove_stack(stack.name)
