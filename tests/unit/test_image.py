"""components/image.py: the content tag, and the resources ContainerImage declares for a build,
a push and a pinned reference."""

from __future__ import annotations

import os
import re
import shutil

import docker as docker_sdk
import pulumi
import pulumi_docker as docker
import pytest
from harness import ROOT
from recorder import (
    DOCKER_PROVIDER,
    REGISTRY_IMAGE,
    REMOTE_IMAGE,
    fake_digest,
    image_id,
    install_mocks,
    registry_digest,
    resolve,
    run,
)

from components.conventions import CONTENT_TAG
from components.image import ContainerImage, ContainerImageArgs, Engine, StandIn, base_images, content_tag
from components.spec import BuildSpec

REPOSITORY = "localhost:5000/cloudservice/web"
COMPONENT = "cloudservice:index:ContainerImage"


# -- content_tag --------------------------------------------------------------------------------


@pytest.fixture
def context(tmp_path):
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / "app.py").write_text("print('v1')\n")
    (root / "src" / "lib.py").write_text("X = 1\n")
    return root


def tag(root, **spec) -> str:
    return content_tag(BuildSpec(context=str(root), **spec))


def test_tag_is_stable_and_well_formed(context):
    first = tag(context)
    assert CONTENT_TAG.fullmatch(first)  # what `make gc` takes for a build's tag
    assert tag(context) == first


def test_tag_does_not_depend_on_where_the_context_lives(context, tmp_path):
    copy = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(context, copy)
    assert tag(copy) == tag(context)


@pytest.mark.parametrize(
    "change",
    [
        "edit-file",
        "edit-nested-file",
        "edit-dockerfile",
        "add-file",
        "add-empty-file",
        "remove-file",
        "rename-file",
        "chmod",
    ],
)
def test_tag_changes_when_a_context_file_changes(context, change):
    before = tag(context)
    if change == "edit-file":
        (context / "app.py").write_text("print('v2')\n")
    elif change == "edit-nested-file":
        (context / "src" / "lib.py").write_text("X = 2\n")
    elif change == "edit-dockerfile":
        (context / "Dockerfile").write_text("FROM scratch\nCOPY app.py /\n")
    elif change == "add-file":
        (context / "src" / "new.py").write_text("Y = 1\n")
    elif change == "add-empty-file":
        (context / "empty").write_text("")
    elif change == "remove-file":
        (context / "src" / "lib.py").unlink()
    elif change == "rename-file":
        (context / "app.py").rename(context / "main.py")
    elif change == "chmod":
        os.chmod(context / "app.py", 0o755)
    assert tag(context) != before


def test_tag_returns_when_the_change_is_undone(context):
    before = tag(context)
    (context / "app.py").write_text("print('v2')\n")
    assert tag(context) != before
    (context / "app.py").write_text("print('v1')\n")
    assert tag(context) == before


def test_touching_a_file_without_changing_it_keeps_the_tag(context):
    before = tag(context)
    os.utime(context / "app.py", (0, 0))
    assert tag(context) == before


def test_dockerignored_files_do_not_count_but_the_dockerfile_always_does(context):
    (context / ".dockerignore").write_text("# build noise\n*.log\nnotes.txt\nDockerfile\n")
    (context / "build.log").write_text("one\n")
    (context / "notes.txt").write_text("one\n")
    before = tag(context)
    (context / "build.log").write_text("two\n")
    (context / "notes.txt").write_text("two\n")
    assert tag(context) == before, "ignored files are not sent to the build"
    (context / "Dockerfile").write_text("FROM scratch\n")
    assert tag(context) != before, "the Dockerfile is always sent, even when ignored"


@pytest.mark.parametrize(
    "spec",
    [
        {"args": {"BASE_IMAGE": "cloudservice/base:bookworm"}},
        {"target": "runtime"},
        {"dockerfile": "Dockerfile.alt"},
        {"platform": "linux/arm64"},
    ],
)
def test_build_settings_are_part_of_the_tag(context, spec):
    (context / "Dockerfile.alt").write_text("FROM scratch\n")
    assert tag(context, **spec) != tag(context)


# -- base images ---------------------------------------------------------------------------------


def test_base_images_follow_build_args_and_skip_stages_and_scratch(context):
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.12-slim\nARG TOOLS=debian:bookworm\n"
        "FROM --platform=linux/amd64 ${TOOLS} AS tools\nRUN true\n"
        "FROM ${BASE_IMAGE} AS runtime\nCOPY --from=tools / /\n"
        "FROM tools\nFROM scratch\nFROM $BASE_IMAGE\n"
    )
    assert base_images(BuildSpec(context=str(context))) == ["debian:bookworm", "python:3.12-slim"]
    assert base_images(BuildSpec(context=str(context), args={"BASE_IMAGE": "cloudservice/base:bookworm"})) == [
        "debian:bookworm",
        "cloudservice/base:bookworm",
    ]


def test_base_images_of_a_dockerfile_with_another_name(context):
    (context / "Dockerfile.alt").write_text("FROM redis:7\n")
    assert base_images(BuildSpec(context=str(context), dockerfile="Dockerfile.alt")) == ["redis:7"]


def test_project_images_build_on_the_local_base_offline():
    for service in ("web", "redis"):
        build = BuildSpec(context=os.path.join(ROOT, "app", service), args={"BASE_IMAGE": "cloudservice/base:bookworm"})
        assert base_images(build) == ["cloudservice/base:bookworm"]


def test_a_rebuilt_base_image_changes_the_tag(context):
    (context / "Dockerfile").write_text("ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\n")
    build = BuildSpec(context=str(context), args={"BASE_IMAGE": "cloudservice/base:bookworm"})
    first = content_tag(build, {"cloudservice/base:bookworm": fake_digest("base-1")})
    assert content_tag(build, {"cloudservice/base:bookworm": fake_digest("base-1")}) == first
    assert content_tag(build, {"cloudservice/base:bookworm": fake_digest("base-2")}) != first
    assert content_tag(build, {}) != first, "a base the engine does not have yet (the build pulls it)"
    assert content_tag(build, {"python:3.12-slim": fake_digest("base-2")}) == content_tag(build, {}), (
        "only the base images this build uses count"
    )


def test_project_contexts_have_distinct_tags():
    web = tag(os.path.join(ROOT, "app", "web"))
    redis = tag(os.path.join(ROOT, "app", "redis"))
    assert web != redis


# -- ContainerImage ------------------------------------------------------------------------------


def _build(context: str) -> BuildSpec:
    return BuildSpec(context=context, args={"BASE_IMAGE": "cloudservice/base:bookworm"})


def test_build_and_push(mocks, context):
    build = _build(str(context))
    image = run(
        lambda: ContainerImage(
            "web",
            ContainerImageArgs(
                repository=REPOSITORY, build=build, push=True, labels={"app.kubernetes.io/part-of": "cloudservice"}
            ),
        )
    )
    name = f"{REPOSITORY}:{content_tag(build)}"

    component = mocks.get(COMPONENT, "web")
    local = mocks.get(REMOTE_IMAGE, "web")
    pushed = mocks.get(REGISTRY_IMAGE, "web")
    assert mocks.parent_of(local) is component and mocks.parent_of(pushed) is component
    assert local.inputs["name"] == name
    assert local.inputs["keepLocally"] is True
    assert local.inputs["build"] == {
        # relative to the project directory (the program's), the same in every clone
        "context": os.path.relpath(context),
        "dockerfile": "Dockerfile",
        "buildArgs": {"BASE_IMAGE": "cloudservice/base:bookworm"},
        "label": {"app.kubernetes.io/part-of": "cloudservice"},  # `labels` never reaches the build
    }
    assert pushed.inputs["name"] == name
    assert pushed.inputs["keepRemotely"] is True, "pushed digests are release history"
    assert pushed.inputs["triggers"] == {"imageId": image_id(name)}, "a rebuilt image is pushed again"
    assert local.urn in pushed.dependencies

    assert resolve(image.reference) == name
    assert resolve(image.digest) == registry_digest(name)
    assert resolve(image.registry_ref) == f"{REPOSITORY}@{registry_digest(name)}"
    assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", resolve(image.registry_ref))
    assert resolve(image.deploy_ref) == image_id(name), "the docker target runs the local image ID"


def test_the_tag_covers_the_base_image_in_the_engine(mocks, context):
    """The base image's ID comes from the provider's engine; a base rebuilt there rebuilds and pushes."""
    (context / "Dockerfile").write_text("ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\nCOPY . /\n")
    build = _build(str(context))

    def declare(name):
        return ContainerImage(name, ContainerImageArgs(repository=REPOSITORY, build=build, push=True))

    mocks.local_images = {"cloudservice/base:bookworm": fake_digest("base-1")}
    run(lambda: declare("first"))
    run(lambda: declare("unchanged"))
    mocks.local_images = {"cloudservice/base:bookworm": fake_digest("base-2")}
    run(lambda: declare("rebuilt-base"))
    names = {n: mocks.get(REMOTE_IMAGE, n).inputs["name"] for n in ("first", "unchanged", "rebuilt-base")}
    assert names["first"] == f"{REPOSITORY}:{content_tag(build, {'cloudservice/base:bookworm': fake_digest('base-1')})}"
    assert names["unchanged"] == names["first"]
    assert names["rebuilt-base"] != names["first"]
    assert mocks.get(REGISTRY_IMAGE, "rebuilt-base").inputs["name"] == names["rebuilt-base"]


def test_a_stand_in_is_tagged_under_the_base_name_before_the_build(mocks, context):
    """`FROM python:3.12-slim` builds unchanged offline: the local base is tagged under that name first,
    and the tag covers the stand-in's ID from the first run on (no rebuild once the tag exists)."""
    (context / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY . /\n")
    build = BuildSpec(context=str(context))
    mocks.local_images = {"cloudservice/base:bookworm": fake_digest("base-1")}

    def program():
        stand_in = StandIn("py", "python:3.12-slim", "cloudservice/base:bookworm", Engine())
        return ContainerImage(
            "web",
            ContainerImageArgs(
                repository=REPOSITORY,
                build=build,
                stand_ins={"python:3.12-slim": "cloudservice/base:bookworm"},
                after=[stand_in.tag],
            ),
        )

    run(program)
    tag_resource = mocks.get("docker:index/tag:Tag", "py")
    assert tag_resource.inputs == {
        "sourceImage": "cloudservice/base:bookworm",
        "targetImage": "python:3.12-slim",
        "tagTriggers": [fake_digest("base-1")],
    }, "re-tagged when the local base changes"
    local = mocks.get(REMOTE_IMAGE, "web")
    assert tag_resource.urn in local.dependencies
    assert local.inputs["name"] == f"{REPOSITORY}:{content_tag(build, {'python:3.12-slim': fake_digest('base-1')})}"


def test_a_stand_in_the_engine_lacks_fails_naming_the_setting(mocks):
    with pytest.raises(Exception, match="baseImages.python:3.12-slim: the engine has no image cloudservice/base"):
        run(lambda: StandIn("py", "python:3.12-slim", "cloudservice/base:bookworm", Engine()))


class _Images:
    def __init__(self, known: dict, error=None):
        self.known, self.error = known, error

    def get(self, name):
        if self.error:
            raise self.error
        if name not in self.known:
            raise docker_sdk.errors.ImageNotFound(name)
        return type("Image", (), {"id": self.known[name]})


def test_the_engine_answers_image_ids_and_names_itself_when_unreachable():
    engine = Engine("tcp://127.0.0.1:1")
    engine._client = type("Client", (), {"images": _Images({"cloudservice/base:bookworm": "sha256:1"})})()
    build = BuildSpec(context=os.path.join(ROOT, "app", "web"), args={"BASE_IMAGE": "python:3.12-slim"})
    assert engine.base_image_ids(build) == {"python:3.12-slim": None}
    assert engine.base_image_ids(build, {"python:3.12-slim": "cloudservice/base:bookworm"}) == {
        "python:3.12-slim": "sha256:1"
    }
    engine._client.images = _Images({}, docker_sdk.errors.DockerException("Connection refused"))
    with pytest.raises(pulumi.RunError, match="in the Docker engine at tcp://127.0.0.1:1: Connection refused"):
        engine.image_id("anything")


def test_build_without_push_stays_local(mocks, context):
    build = _build(str(context))
    image = run(lambda: ContainerImage("web", ContainerImageArgs(repository=REPOSITORY, build=build)))
    assert mocks.of_type(REGISTRY_IMAGE) == []
    assert len(mocks.of_type(REMOTE_IMAGE)) == 1
    assert resolve(image.digest) is None and resolve(image.registry_ref) is None
    assert resolve(image.deploy_ref) == image_id(f"{REPOSITORY}:{content_tag(build)}")


def test_cluster_images_deploy_by_registry_digest(mocks, context):
    build = _build(str(context))
    image = run(
        lambda: ContainerImage("web", ContainerImageArgs(repository=REPOSITORY, build=build, push=True, pull=False))
    )
    name = f"{REPOSITORY}:{content_tag(build)}"
    assert resolve(image.deploy_ref) == f"{REPOSITORY}@{registry_digest(name)}"


def test_a_context_change_changes_the_declared_image(mocks, context):
    def declare(name):
        return ContainerImage(name, ContainerImageArgs(repository=REPOSITORY, build=_build(str(context)), push=True))

    run(lambda: declare("before"))
    (context / "app.py").write_text("print('v2')\n")
    run(lambda: declare("after"))
    before, after = mocks.get(REMOTE_IMAGE, "before"), mocks.get(REMOTE_IMAGE, "after")
    assert before.inputs["name"] != after.inputs["name"]
    assert (
        mocks.get(REGISTRY_IMAGE, "before").outputs["sha256Digest"]
        != mocks.get(REGISTRY_IMAGE, "after").outputs["sha256Digest"]
    )


@pytest.mark.parametrize("pull", [True, False])
def test_pinned_reference_skips_the_build(mocks, pull):
    pinned = f"{REPOSITORY}@{fake_digest('release-1')}"
    image = run(
        lambda: ContainerImage("web", ContainerImageArgs(repository=REPOSITORY, reference=pinned, push=True, pull=pull))
    )
    assert mocks.of_type(REGISTRY_IMAGE) == [], "a pinned image is never pushed again"
    if pull:
        local = mocks.get(REMOTE_IMAGE, "web")
        assert local.inputs["name"] == pinned and "build" not in local.inputs
        assert resolve(image.deploy_ref) == image_id(pinned)
    else:
        assert mocks.of_type(REMOTE_IMAGE) == []
        assert resolve(image.deploy_ref) == pinned
    assert resolve(image.digest) == fake_digest("release-1")
    assert resolve(image.registry_ref) == pinned and resolve(image.reference) == pinned


def test_tagged_reference_has_no_digest(mocks):
    image = run(lambda: ContainerImage("redis", ContainerImageArgs(repository="x", reference="redis:7", pull=False)))
    assert resolve(image.digest) is None and resolve(image.registry_ref) == "redis:7"


def test_reference_can_be_an_output(mocks):
    pinned = f"{REPOSITORY}@{fake_digest('promoted')}"
    image = run(
        lambda: ContainerImage(
            "web", ContainerImageArgs(repository=REPOSITORY, reference=pulumi.Output.from_input(pinned), pull=False)
        )
    )
    assert resolve(image.deploy_ref) == pinned


def test_children_use_the_provider_given_to_the_component(mocks, context):
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM $BASE_IMAGE\n")

    def program():
        provider = docker.Provider("engine", host="unix:///run/other.sock")
        return ContainerImage(
            "web",
            ContainerImageArgs(
                repository=REPOSITORY, build=_build(str(context)), push=True, engine=Engine("unix:///run/other.sock")
            ),
            opts=pulumi.ResourceOptions(provider=provider),
        )

    run(program)
    provider = mocks.get(DOCKER_PROVIDER, "engine")
    assert provider.inputs["host"] == "unix:///run/other.sock"
    for typ in (REMOTE_IMAGE, REGISTRY_IMAGE):
        assert mocks.provider_of(mocks.get(typ, "web")) is provider
    # The base image is looked up in the engine that builds, directly: no invoke waits for the provider.
    assert mocks.engine_lookups == [("unix:///run/other.sock", "cloudservice/base:bookworm")] and mocks.calls == []


# .dockerignore follows Go's filepath.Match with parent-directory matching (moby/patternmatcher):
# `*` never crosses `/`, and a pattern naming a directory excludes everything below it. content_tag
# uses fnmatch on the relative path instead; these two cases show where the results differ.
def test_star_in_dockerignore_does_not_cross_directories(context):
    """Docker sends src/lib.py despite `*.py` (top level only): editing it must change the tag."""
    (context / ".dockerignore").write_text("*.py\n")
    before = tag(context)
    (context / "src" / "lib.py").write_text("X = 2\n")
    assert tag(context) != before


def test_ignored_directory_excludes_its_contents(context):
    """Docker sends nothing under an ignored directory: editing there must not change the tag."""
    (context / ".dockerignore").write_text("src\n")
    before = tag(context)
    (context / "src" / "lib.py").write_text("X = 2\n")
    assert tag(context) == before


def test_two_pushes_of_one_reference_run_one_after_the_other(mocks, context):
    build = _build(str(context))
    run(
        lambda: [
            ContainerImage(name, ContainerImageArgs(repository=REPOSITORY, build=build, push=True))
            for name in ("shop-web", "blog-web", "other-web")
        ]
    )
    first, second, third = (mocks.get(REGISTRY_IMAGE, name) for name in ("shop-web", "blog-web", "other-web"))
    assert first.inputs["name"] == second.inputs["name"] == third.inputs["name"]
    assert first.urn in second.dependencies and second.urn in third.dependencies
    assert not [urn for urn in first.dependencies if "RegistryImage" in urn]


def test_pushes_of_different_references_or_runs_do_not_wait(mocks, context):
    build = _build(str(context))
    run(lambda: ContainerImage("web", ContainerImageArgs(repository=REPOSITORY, build=build, push=True)))
    mocks = install_mocks()  # a new run of the program
    run(
        lambda: [
            ContainerImage("web", ContainerImageArgs(repository=REPOSITORY, build=build, push=True)),
            ContainerImage("api", ContainerImageArgs(repository=REPOSITORY + "-api", build=build, push=True)),
        ]
    )
    assert all(
        not [urn for urn in pushed.dependencies if "RegistryImage" in urn] for pushed in mocks.of_type(REGISTRY_IMAGE)
    )


def test_build_platform_reaches_the_build(mocks, context):
    build = BuildSpec(context=str(context), platform="linux/arm64")
    run(lambda: ContainerImage("web", ContainerImageArgs(repository=REPOSITORY, build=build)))
    assert mocks.get(REMOTE_IMAGE, "web").inputs["build"]["platform"] == "linux/arm64"
