"""ContainerImage: `docker build` + `docker tag` + `docker push`, declared.

The tag is derived from the build context's content and from the IDs of the base images the build
starts FROM, so an unchanged context on an unchanged base means an unchanged resource (no rebuild, no
push), while any change, a base image rebuilt under the same tag included, produces a new, immutable
tag and digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import weakref
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import docker as docker_sdk
import pulumi
import pulumi_docker as docker
from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser
from dockerfile_parse.parser import image_from
from pulumi.runtime.settings import get_monitor

from .spec import BuildSpec


def _ignore_patterns(context: str) -> list[str]:
    path = os.path.join(context, ".dockerignore")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as ignore_file:
        return [line.strip() for line in ignore_file if line.strip() and not line.startswith("#")]


def base_images(build: BuildSpec) -> list[str]:
    """The images the build starts FROM, with the build arguments applied (`ARG BASE_IMAGE` ...), in
    order: `scratch` and references to earlier stages are no images."""
    with open(os.path.join(build.context, build.dockerfile), "rb") as dockerfile:
        # From a file object: a path not ending in "Dockerfile" would be taken for a directory.
        parser = DockerfileParser(fileobj=io.BytesIO(dockerfile.read()), build_args=dict(build.args))
    stages = {image_from(i["value"])[1] for i in parser.structure if i["instruction"] == "FROM"} - {None}
    return list(dict.fromkeys(p for p in parser.parent_images if p != "scratch" and p not in stages))


def context_files(build: BuildSpec) -> dict[str, tuple[int, bytes]]:
    """Every file `docker build` would send (.dockerignore applied with Docker's own rules, as the
    Docker SDK implements them): its path in the context -> (permission bits, SHA-256)."""
    files = {}
    for relative in exclude_paths(build.context, _ignore_patterns(build.context), dockerfile=build.dockerfile):
        path = os.path.join(build.context, relative)
        if os.path.isfile(path):
            with open(path, "rb") as source:
                files[relative] = (os.stat(path).st_mode & 0o777, hashlib.sha256(source.read()).digest())
    return files


def content_tag(
    build: BuildSpec,
    base_image_ids: Optional[Mapping[str, Optional[str]]] = None,
    files: Optional[Mapping[str, tuple[int, bytes]]] = None,
) -> str:
    """A tag that changes exactly when what `docker build` would see changes.

    Hashes every file the build would send (`context_files`), its mode, the Dockerfile name, target, build arguments and platform,
    and the ID of each base image found in the engine (`base_image_ids`, name to ID or None when it is
    not there and the build will pull it), so a base image rebuilt under the same name changes the tag.
    `files`: the context's files as `context_files` read them already.
    """
    digest = hashlib.sha256()
    for base in base_images(build):
        digest.update(f"FROM {base}\0{(base_image_ids or {}).get(base) or ''}\0".encode())
    for relative, (mode, file_digest) in sorted((context_files(build) if files is None else files).items()):
        digest.update(f"{relative}\0{mode}\0".encode() + file_digest)
    digest.update(f"{build.dockerfile}\0{build.target}\0{sorted(build.args.items())}".encode())
    if build.platform:  # only when set: the tags of builds for the engine's own platform stay as they were
        digest.update(f"\0{build.platform}".encode())
    return "c-" + digest.hexdigest()[:16]


class Engine:
    """The Docker engine a stack builds on, asked directly (the Docker SDK) which images it has.

    The program reads base image IDs before it can declare its images: asked through the Docker
    provider (an invoke), every preview first waited for the provider plugin to start. The dev loop
    reads them the same way (`base_image_ids`), so both compute the same tags."""

    def __init__(self, host: Optional[str] = None):
        self.host = host
        self._client: Optional[docker_sdk.DockerClient] = None
        self._lookups: dict[str, asyncio.Future] = {}

    def image_id(self, name: str) -> Optional[str]:
        """The ID of image `name` in the engine, or None when it has no such image."""
        try:
            if self._client is None:  # the ssh binary for ssh:// hosts, as the docker CLI uses
                self._client = (
                    docker_sdk.DockerClient(base_url=self.host, use_ssh_client=self.host.startswith("ssh://"))
                    if self.host
                    else docker_sdk.from_env()
                )
            return self._client.images.get(name).id
        except docker_sdk.errors.ImageNotFound:
            return None
        except docker_sdk.errors.DockerException as error:
            raise pulumi.RunError(
                f"cannot read image {name} in the Docker engine at {self.host or 'DOCKER_HOST'}: {error}"
            ) from None

    def base_image_ids(self, build: BuildSpec, stand_ins: Mapping[str, str] = {}) -> dict[str, Optional[str]]:
        """The ID of each image the build starts FROM; a stand-in (tagged under the base's name by the
        same run) gives its own, the one the base will have."""
        return {base: self.image_id(stand_ins.get(base, base)) for base in base_images(build)}

    def image_id_output(self, name: str) -> pulumi.Output[Optional[str]]:
        """`image_id` for a program: asked once per name (a stand-in and every build FROM its base share
        the answer), in a worker thread, so the program registers its resources meanwhile instead of
        waiting for the engine before its first registration."""
        if name not in self._lookups:
            self._lookups[name] = asyncio.get_running_loop().run_in_executor(None, self.image_id, name)
        return pulumi.Output.from_input(self._lookups[name])

    def base_image_ids_output(self, build: BuildSpec, stand_ins: Mapping[str, str]) -> pulumi.Output[dict]:
        """`base_image_ids` as an Output, each image asked once (`image_id_output`)."""
        return pulumi.Output.all(
            **{base: self.image_id_output(stand_ins.get(base, base)) for base in base_images(build)}
        )


# The registry (distribution) rewrites a tag's link file in place: a push of a repository:tag that
# reads it while another push of the same tag writes it fails with "500 invalid checksum digest
# format". Two pushes of one reference in one program (two apps built from the same sources) run one
# after the other. Keyed by the program's connection to the engine, so separate runs never wait on each other.
_pushes: "weakref.WeakKeyDictionary[object, dict[str, docker.RegistryImage]]" = weakref.WeakKeyDictionary()


def _pushes_in_this_program() -> dict[str, docker.RegistryImage]:
    return _pushes.setdefault(get_monitor(), {})


def digest_of(reference: pulumi.Input[str]) -> pulumi.Output[Optional[str]]:
    """The sha256:... part of repo@sha256:..., or None for a reference by tag."""
    return pulumi.Output.from_input(reference).apply(lambda ref: ref.partition("@")[2] or None)


@dataclass
class ContainerImageArgs:
    """What to build (or which existing image to use) and where it goes."""

    repository: str
    """Repository without tag, e.g. localhost:5000/cloudservice/web."""
    build: Optional[BuildSpec] = None
    reference: Optional[pulumi.Input[str]] = None
    """An existing image reference to use instead of building (e.g. a pinned digest)."""
    push: bool = False
    pull: bool = True
    """Keep a copy in the local engine (the docker target runs containers from it)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    engine: Engine = field(default_factory=Engine)
    """The engine that builds: the provider's host."""
    stand_ins: Mapping[str, str] = field(default_factory=dict)
    """Base image name -> the local image the engine has under that name (see StandIn)."""
    after: Sequence[pulumi.Resource] = ()
    """What must exist before the build: the stand-ins' tags."""


class ContainerImage(pulumi.ComponentResource):
    """Builds (or pulls) one image and optionally pushes it.

    Outputs:
      reference     the tagged name, e.g. localhost:5000/cloudservice/web:c-1234...
      digest        the registry digest (sha256:...) once pushed or when pinned, else None
      registry_ref  repo@digest, what a cluster pulls (None for an image that was not pushed)
      deploy_ref    what to run: the local image ID when `pull`, else registry_ref
    release         the resource to depend on before running deploy_ref (the push, when pushed)
    """

    reference: pulumi.Output[str]
    digest: pulumi.Output[Optional[str]]
    registry_ref: pulumi.Output[Optional[str]]
    deploy_ref: pulumi.Output[str]
    release: Optional[pulumi.Resource]

    def __init__(self, name: str, args: ContainerImageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:ContainerImage", name, None, opts)
        self.pushed: Optional[docker.RegistryImage] = None
        self.local = self._pinned(name, args) if args.reference is not None else self._built(name, args)
        self.deploy_ref = self.local.image_id if args.pull else self.registry_ref
        # A pushed image is deployed only once the registry has it: what runs can always be rolled
        # back to or promoted by digest. Consumers depend on this resource.
        self.release = self.pushed or self.local
        self.register_outputs(
            {
                "reference": self.reference,
                "digest": self.digest,
                "registry_ref": self.registry_ref,
                "deploy_ref": self.deploy_ref,
            }
        )

    def _pinned(self, name: str, args: ContainerImageArgs) -> Optional[docker.RemoteImage]:
        """An existing image by reference, pulled into the engine when it runs there."""
        self.reference = pulumi.Output.from_input(args.reference)
        self.digest = digest_of(self.reference)
        self.registry_ref = self.reference
        if not args.pull:
            return None
        return docker.RemoteImage(
            name, name=args.reference, keep_locally=True, opts=pulumi.ResourceOptions(parent=self)
        )

    def _built(self, name: str, args: ContainerImageArgs) -> docker.RemoteImage:
        # Asked of the engine that builds (the provider's), in preview and update alike.
        files = context_files(args.build)
        tagged = args.engine.base_image_ids_output(args.build, args.stand_ins).apply(
            lambda ids: f"{args.repository}:{content_tag(args.build, ids, files)}"
        )
        local = docker.RemoteImage(
            name,
            name=tagged,
            build=docker.RemoteImageBuildArgs(
                # Relative to the project directory, where Pulumi runs the program and the provider:
                # every teammate's clone then declares the same build, wherever it was cloned.
                context=os.path.relpath(args.build.context),
                dockerfile=args.build.dockerfile,
                target=args.build.target,
                build_args=dict(args.build.args),
                platform=args.build.platform,
                # `label` is what the provider passes to the build (`docker build --label`); its
                # `labels` is accepted and dropped, which left built images unlabelled.
                label=dict(args.labels),
            ),
            # Built images stay in the engine's cache after destroy, like `docker build` leaves them.
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        self.reference = local.name
        self.digest = pulumi.Output.from_input(None)
        self.registry_ref = pulumi.Output.from_input(None)
        if args.push:
            # The same sources on the same bases (one engine per program) make the same tag.
            self._push(name, args.repository, local, f"{args.repository}:{content_tag(args.build, None, files)}")
        return local

    def _push(self, name: str, repository: str, local: docker.RemoteImage, same_tag: str) -> None:
        pushes = _pushes_in_this_program()
        same_push = pushes.get(same_tag)
        self.pushed = pushes[same_tag] = docker.RegistryImage(
            name,
            name=local.name,
            # Pushed digests are the release history (rollback, promotion): never deleted.
            keep_remotely=True,
            triggers={"imageId": local.image_id},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[same_push] if same_push else None),
        )
        self.digest = self.pushed.sha256_digest
        self.registry_ref = pulumi.Output.concat(repository, "@", self.pushed.sha256_digest)


class StandIn(pulumi.ComponentResource):
    """A local image tagged under the name a Dockerfile builds FROM (`docker tag cloudservice/base:bookworm
    python:3.12-slim`), so the Dockerfile builds unchanged on an engine that cannot pull. Re-tagged when
    the local image changes."""

    def __init__(self, name: str, base: str, local: str, engine: Engine, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:StandIn", name, None, opts)

        def present(local_id: Optional[str]) -> str:
            if local_id is None:
                raise pulumi.RunError(
                    f"baseImages.{base}: the engine has no image {local} to stand in for it "
                    "(build it first, e.g. `make platform`)"
                )
            return local_id

        self.tag = docker.Tag(
            name,
            source_image=local,
            target_image=base,
            tag_triggers=[engine.image_id_output(local).apply(present)],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
