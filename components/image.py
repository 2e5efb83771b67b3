"""ContainerImage: `docker build` + `docker tag` + `docker push`, declared.

The tag is derived from the build context's content, so an unchanged context means an unchanged
resource (no rebuild, no push) and any change produces a new, immutable tag and digest.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_docker as docker
from docker.utils.build import exclude_paths
from pulumi.runtime.settings import get_monitor

from .spec import BuildSpec


def _ignore_patterns(context: str) -> list[str]:
    path = os.path.join(context, ".dockerignore")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as ignore_file:
        return [line.strip() for line in ignore_file if line.strip() and not line.startswith("#")]


def content_tag(build: BuildSpec) -> str:
    """A tag that changes exactly when what `docker build` would see changes.

    Hashes every file the build would send (.dockerignore applied with Docker's own rules, as the
    Docker SDK implements them), its mode, and the Dockerfile name, target and build arguments.
    """
    digest = hashlib.sha256()
    sent = exclude_paths(build.context, _ignore_patterns(build.context), dockerfile=build.dockerfile)
    for relative in sorted(sent):
        path = os.path.join(build.context, relative)
        if not os.path.isfile(path):
            continue
        digest.update(f"{relative}\0{os.stat(path).st_mode & 0o777}\0".encode())
        with open(path, "rb") as source:
            digest.update(hashlib.sha256(source.read()).digest())
    digest.update(f"{build.dockerfile}\0{build.target}\0{sorted(build.args.items())}".encode())
    return "c-" + digest.hexdigest()[:16]


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
        child = pulumi.ResourceOptions(parent=self)
        pushed = None

        if args.reference is not None:
            local = docker.RemoteImage(name, name=args.reference, keep_locally=True, opts=child) if args.pull else None
            self.reference = pulumi.Output.from_input(args.reference)
            self.digest = digest_of(self.reference)
            self.registry_ref = self.reference
        else:
            tagged = f"{args.repository}:{content_tag(args.build)}"
            local = docker.RemoteImage(
                name,
                name=tagged,
                build=docker.RemoteImageBuildArgs(
                    context=args.build.context,
                    dockerfile=args.build.dockerfile,
                    target=args.build.target,
                    build_args=dict(args.build.args),
                    labels=dict(args.labels),
                ),
                # Built images stay in the engine's cache after destroy, like `docker build` leaves them.
                keep_locally=True,
                opts=child,
            )
            self.reference = local.name
            if args.push:
                pushes = _pushes_in_this_program()
                same_push = pushes.get(tagged)
                pushed = docker.RegistryImage(
                    name,
                    name=local.name,
                    # Pushed digests are the release history (rollback, promotion): never deleted.
                    keep_remotely=True,
                    triggers={"imageId": local.image_id},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[same_push] if same_push else None),
                )
                pushes[tagged] = pushed
                self.digest = pushed.sha256_digest
                self.registry_ref = pulumi.Output.concat(args.repository, "@", pushed.sha256_digest)
            else:
                self.digest = pulumi.Output.from_input(None)
                self.registry_ref = pulumi.Output.from_input(None)
        self.deploy_ref = local.image_id if args.pull else self.registry_ref
        # A pushed image is deployed only once the registry has it: what runs can always be rolled
        # back to or promoted by digest. Consumers depend on this resource.
        self.release = pushed or local

        self.register_outputs({
            "reference": self.reference, "digest": self.digest,
            "registry_ref": self.registry_ref, "deploy_ref": self.deploy_ref,
        })
