"""A base image rebuilt under the same name (security updates) rebuilds and rolls every service built
on it, through the content tag, and nothing rolls while it stays the same."""

import io
import json
import uuid
from collections import Counter

import pytest

from support.testing import ROOT, changed_resources, free_port, get_json, read_env_file

BASE_IMAGE = read_env_file(ROOT / "versions.env")["BASE_IMAGE"]
SERVICES = ("redis", "web")


@pytest.fixture
def private_base(docker_client):
    """A base image of this test alone (the shared one stays untouched), under a fixed name."""
    name = f"cloudservice/it-base-{uuid.uuid4().hex[:6]}:bookworm"
    docker_client.images.get(BASE_IMAGE).tag(name)
    yield name
    docker_client.images.remove(name, force=True)


def rebuild(docker_client, name: str) -> str:
    """The base with one more layer (a package update, say), under the same name; returns its ID."""
    dockerfile = f"FROM {name}\nRUN echo patched > /etc/base-update\n".encode()
    image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=name, rm=True)
    return image.id


def test_a_rebuilt_base_image_rolls_every_service_built_on_it(project, registry, docker_client, private_base):
    stack = project.stack(
        "dev",
        config={"portOffset": str(free_port() - 8080), "buildArgs": json.dumps({"BASE_IMAGE": private_base})},
        secrets={"registryPassword": registry.password},
    )
    try:
        outputs = stack.up().outputs
        url, first_images = outputs["url"].value, outputs["images"].value
        assert get_json(url + "/notes", "POST", b"kept")[0] == 201
        stack.preview(expect_no_changes=True)  # the same base: nothing to do

        rebuild(docker_client, private_base)
        events = []
        second_images = stack.up(on_event=events.append).outputs["images"].value
        changed = Counter(kind for kind, _ in changed_resources(events))
        assert changed["docker:index/remoteImage:RemoteImage"] == len(SERVICES), changed  # rebuilt...
        assert changed["docker:index/registryImage:RegistryImage"] == len(SERVICES), changed  # ...pushed...
        assert changed["docker:index/container:Container"] == len(SERVICES), changed  # ...and rolled
        for service in SERVICES:
            assert second_images[service] != first_images[service], service
            container = docker_client.containers.get(f"cloudservice-{stack.name}-{service}")
            assert container.exec_run(["cat", "/etc/base-update"]).output == b"patched\n", service
        assert get_json(url + "/notes")[1] == {"notes": ["kept"]}
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)
