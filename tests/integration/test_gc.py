"""`make gc` for real (devtools/gc.py, platform/registry.sh collect): a dev stack builds and pushes 20
releases of a tiny service, a second stack runs an old one by digest (`images`), and gc with
keepReleases 5 leaves exactly the 5 newest and the referenced one, in the registry and in the engine,
frees disk, and leaves what runs running and every kept release deployable (a rollback by digest);
`make destroy` then runs the registry's garbage collection too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
from pulumi import automation as auto

from support.testing import ROOT, ProjectCopy, get_json, http, registry_manifest_status, wait_for

pytestmark = pytest.mark.exclusive  # collects the registry's garbage, which stops it

RELEASES = 20
KEEP = 5
PINNED = 3
"""The release the second stack runs (1-based): long out of the newest KEEP."""
ASSET_BYTES = 1_000_000
"""Each release's own layer carries this much (random: the registry's gzip keeps its size), as a
bundled frontend or a vendored dependency changes with each build."""

DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
WORKDIR /srv
COPY release.json asset.bin ./
USER 10001:10001
CMD ["python3", "-m", "http.server", "8080"]
"""
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class History:
    """The stacks and the digest each release got, oldest first."""

    def __init__(self, project: ProjectCopy, repository: str):
        self.project, self.repository = project, repository
        self.digests: list[str] = []
        self.stacks: dict = {}
        self.urls: dict[str, str] = {}


def services(port: int) -> str:
    # init: http.server installs no SIGTERM handler, so as PID 1 it would wait out the whole stop
    # timeout in each of the 20 rollouts.
    web = {"build": "gc-app", "port": 8080, "publish": port, "health": {"http": "/", "interval": 1}, "init": True}
    return json.dumps({"web": web})


def release_of(url: str) -> int:
    status, document = get_json(f"{url}/release.json")
    assert status == 200, document
    return document["release"]


@pytest.fixture(scope="module")
def history(project, registry, docker_client):
    project.add_make_files()  # `make destroy`
    app = project.directory / "gc-app"
    app.mkdir()
    (app / "Dockerfile").write_text(DOCKERFILE)
    prefix = f"{registry.server}/it-gc-{uuid.uuid4().hex[:8]}"
    made = History(project, f"{prefix}/web")
    builder = project.stack(
        "dev",
        config={"imageRepository": prefix, "services": services(0), "keepReleases": str(KEEP)},
        secrets={"registryPassword": registry.password},
    )
    made.stacks["builder"] = builder
    for number in range(1, RELEASES + 1):
        (app / "release.json").write_text(json.dumps({"release": number}))
        (app / "asset.bin").write_bytes(os.urandom(ASSET_BYTES))
        outputs = builder.up().outputs
        made.digests.append(outputs["digests"].value["web"])
    made.urls["builder"] = outputs["url"].value
    pinned = project.stack(
        "dev",
        config={
            "imageRepository": prefix,
            "services": services(0),
            "images": json.dumps({"web": f"{made.repository}@{made.digests[PINNED - 1]}"}),
        },
        secrets={"registryPassword": registry.password},
    )
    made.stacks["pinned"] = pinned
    made.urls["pinned"] = pinned.up().outputs["url"].value
    yield made
    for stack in made.stacks.values():
        stack.destroy()
        stack.workspace.remove_stack(stack.name)
    # What gc kept, gone too: nothing of this test stays in the engine or the registry.
    for image in docker_client.images.list(name=made.repository):
        docker_client.images.remove(image.id, force=True)
    for digest in set(made.digests):
        http("DELETE", f"{registry.url}/v2/{registry_path(made)}/manifests/{digest}", auth=auth(registry))
    # Their blobs too: the next run's reclaimed bytes are its own.
    subprocess.run([str(ROOT / "platform" / "registry.sh"), "collect"], check=True)


def registry_path(made: History) -> str:
    return made.repository.split("/", 1)[1]


def auth(registry) -> tuple[str, str]:
    return registry.username, registry.password


def registry_digests(made: History, registry) -> set[str]:
    """The digest of every tag of the repository, as the registry serves them."""
    status, body, _ = http("GET", f"{registry.url}/v2/{registry_path(made)}/tags/list", auth=auth(registry))
    assert status == 200, body
    digests = set()
    for tag in json.loads(body)["tags"] or []:
        status, _, headers = http(
            "HEAD",
            f"{registry.url}/v2/{registry_path(made)}/manifests/{tag}",
            auth=auth(registry),
            headers={"Accept": MANIFEST},
        )
        assert status == 200, tag
        digests.add(headers["Docker-Content-Digest"])
    return digests


def engine_digests(made: History, docker_client) -> set[str]:
    """The registry digest of every image the engine has of the repository."""
    return {
        name.partition("@")[2]
        for image in docker_client.images.list(name=made.repository)
        for name in image.attrs.get("RepoDigests") or []
        if name.startswith(f"{made.repository}@")
    }


def kept_by_gc(made: History) -> set[str]:
    """The newest KEEP releases and the one the second stack runs."""
    return set(made.digests[-KEEP:]) | {made.digests[PINNED - 1]}


def gc(made: History) -> str:
    """`python -m devtools gc` of this checkout on the copy, as `make gc` runs it; returns its report."""
    result = subprocess.run(
        [sys.executable, "-m", "devtools", "gc", "--stack", made.stacks["builder"].name],
        cwd=made.project.directory,
        env={**os.environ, **made.project.env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(result.stdout, result.stderr)  # shown with a failure
    assert result.returncode == 0, result.stderr
    return result.stdout


def reclaimed(report: str, side: str) -> float:
    """The bytes gc says it reclaimed on `side` (`registry: ... 14.2 MB reclaimed`)."""
    match = re.search(rf"^{side}: .*?(-?[0-9.]+) ([kMGT]?)B reclaimed", report, re.M)
    assert match, report
    return float(match[1]) * 1000 ** " kMGT".index(match[2] or " ")


def test_twenty_releases_are_all_kept_until_gc(history, registry, docker_client):
    assert len(set(history.digests)) == RELEASES
    assert registry_digests(history, registry) == set(history.digests)
    assert engine_digests(history, docker_client) == set(history.digests)


def test_gc_keeps_the_newest_releases_and_the_referenced_one(history, registry, docker_client):
    before = registry_digests(history, registry)
    report = gc(history)
    kept = kept_by_gc(history)
    assert registry_digests(history, registry) == kept
    assert engine_digests(history, docker_client) == kept
    for old in set(before) - kept:  # the manifest itself is gone, not just its tag
        assert registry_manifest_status(registry, registry_path(history), old, auth=auth(registry)) == 404, old
    deleted = RELEASES - len(kept)
    assert f"registry: {deleted} images deleted" in report
    assert f"{deleted} images removed" in report
    # Each deleted release's own layer is freed on both sides (the base's layers are shared: they stay).
    sizes = {side: reclaimed(report, side) for side in ("registry", "engine")}
    print(f"after {RELEASES} builds, {deleted} deleted: reclaimed {sizes} bytes")
    assert all(size >= deleted * ASSET_BYTES for size in sizes.values()), report


def test_what_runs_keeps_running(history):
    assert release_of(history.urls["builder"]) == RELEASES
    assert release_of(history.urls["pinned"]) == PINNED


def test_a_second_gc_has_nothing_to_do(history, registry):
    report = gc(history)
    assert "registry: nothing to delete" in report
    assert "0 images removed" in report
    assert registry_digests(history, registry) == kept_by_gc(history)


def test_a_kept_release_is_a_rollback_target(history):
    target = RELEASES - KEEP + 1  # the oldest kept one
    builder = history.stacks["builder"]
    pin = json.dumps({"web": f"{history.repository}@{history.digests[target - 1]}"})
    builder.set_config("cloudservice:images", auto.ConfigValue(value=pin), path=False)
    url = builder.up().outputs["url"].value
    wait_for(lambda: release_of(url) == target, timeout=30, what=f"release {target} answering")


def test_destroy_collects_the_registry_garbage(history, registry):
    """A manifest deleted by hand leaves its blobs until a collection: `make destroy` runs one."""
    orphan = history.digests[-2]  # kept by gc, run by no stack
    path = registry_path(history)
    status, body, _ = http(
        "GET", f"{registry.url}/v2/{path}/manifests/{orphan}", auth=auth(registry), headers={"Accept": MANIFEST}
    )
    assert status == 200, body
    own_blobs = [json.loads(body)["config"]["digest"], json.loads(body)["layers"][-1]["digest"]]  # its own layer
    status, _, _ = http("DELETE", f"{registry.url}/v2/{path}/manifests/{orphan}", auth=auth(registry))
    assert status == 202
    assert [http("HEAD", f"{registry.url}/v2/{path}/blobs/{blob}", auth=auth(registry))[0] for blob in own_blobs] == [
        200,
        200,
    ]
    result = history.project.make("destroy", history.stacks["pinned"].name)
    print(result.stdout, result.stderr)  # shown with a failure
    assert result.returncode == 0, result.stderr
    match = re.search(r"Registry garbage collection: (\d+) bytes reclaimed", result.stdout + result.stderr)
    assert match and int(match[1]) > 0, result.stdout + result.stderr
    assert [http("HEAD", f"{registry.url}/v2/{path}/blobs/{blob}", auth=auth(registry))[0] for blob in own_blobs] == [
        404,
        404,
    ]
    assert registry_digests(history, registry) == kept_by_gc(history) - {orphan}  # the registry is back, with the rest
    builder_url = history.stacks["builder"].outputs()["url"].value  # the rollback's container: a new port
    assert release_of(builder_url) == RELEASES - KEEP + 1  # the registry's restart touched nothing running
