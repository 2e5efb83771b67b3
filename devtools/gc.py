"""`make gc`: a stack's old images out of the registry and the Docker engine, so a day of `make dev`
does not fill the disk.

Every `up` that builds leaves an image in the engine and a pushed digest in the registry (the release
history: rollback and promotion go by digest). Per repository the stack builds into
(`<imageRepository>/<service>`), gc keeps the `keepReleases` newest releases, by the time they were
built (the image config's `created`, which the engine and the registry report alike), and every
image that is still referenced:

- the `images` output of every stack on the backend (a prod stack's `imagesFrom`, or digests pinned
  with `images`, name staging's builds) and every `images` pinned in the project's stack files (a
  rollback not yet brought up);
- on the engine, every image a container uses, running or stopped;
- every image someone tagged by hand (a tag that is not a content tag).

The registry's manifests go by digest through its HTTP API, then its garbage collection
(`platform/registry.sh collect`, which stops the registry for that moment) frees their blobs; on the
engine only the stack's own images (by label) lose their names in those repositories.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterable, Mapping, Optional

import docker
import yaml

from components.conventions import CONTENT_TAG, STACK_LABEL

from .registry import PlatformRegistry, disk_usage, human, storage_dir
from .stack import PROJECT_LABEL, Stack, StackError, repository_of, run_pulumi
from .stack_files import ROOT, stack_file

Say = Callable[[str], None]


@dataclass(frozen=True)
class Release:
    """One image of a repository, in the registry or in the engine."""

    repository: str
    names: frozenset[str]
    """What names it in the repository: repo:tag and repo@digest references."""
    created: datetime.datetime
    digest: Optional[str] = None
    """Registry side: the manifest to delete."""
    image_id: Optional[str] = None
    """Engine side: the image the names point at."""

    def __str__(self) -> str:
        tags = sorted(name.rpartition(":")[2] for name in self.names if "@" not in name)
        return f"{self.repository}:{','.join(tags) or '-'} (built {self.created:%Y-%m-%d %H:%M:%S})"


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time as Docker and the registry write it (up to nanoseconds: Python keeps micro)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    fraction = (match[2] or ".0")[:7]
    return datetime.datetime.fromisoformat(match[1] + fraction + ("+00:00" if match[3] == "Z" else match[3]))


def tagged_by_hand(release: Release) -> bool:
    return any("@" not in name and not CONTENT_TAG.fullmatch(name.rpartition(":")[2]) for name in release.names)


def removable(releases: Iterable[Release], keep: int, referenced: Collection[str]) -> list[Release]:
    """Per repository, every release but the `keep` newest, unless one of its names is `referenced`
    or it is tagged by hand. Oldest first."""
    by_repository: dict[str, list[Release]] = defaultdict(list)
    for release in releases:
        by_repository[release.repository].append(release)
    removed = []
    for repository in sorted(by_repository):
        newest_first = sorted(by_repository[repository], key=lambda release: release.created, reverse=True)
        removed += [
            release
            for release in reversed(newest_first[keep:])
            if not release.names & set(referenced) and not tagged_by_hand(release)
        ]
    return removed


def referenced_images(outputs_by_stack: Mapping[str, Mapping], pinned: Iterable[str]) -> frozenset[str]:
    """Every image reference a stack still runs or will run: each stack's `images` output, and `pinned`."""
    references = set(pinned)
    for outputs in outputs_by_stack.values():
        images = outputs.get("images")
        if isinstance(images, Mapping):
            references.update(reference for reference in images.values() if isinstance(reference, str))
    return frozenset(references)


def outputs_of_every_stack(project_dir: Path) -> dict[str, dict]:
    """The outputs of every stack of the project on its backend (`pulumi stack ls`)."""
    listed = json.loads(run_pulumi(project_dir, "stack", "ls", "--json") or "[]")
    return {entry["name"]: Stack(entry["name"], project_dir).exported() for entry in listed}


def pinned_in_stack_files(project_dir: Path, project: str) -> set[str]:
    """The `images` pinned in the committed stack files and in everyone's own (the stackConfigDir)."""
    files = {*project_dir.glob("Pulumi.*.yaml"), *stack_file(project_dir, "any").parent.glob("Pulumi.*.yaml")}
    pinned = set()
    for path in sorted(files):
        images = ((yaml.safe_load(path.read_text()) or {}).get("config") or {}).get(f"{project}:images") or {}
        if isinstance(images, str):  # set as JSON text
            images = json.loads(images)
        pinned.update(reference for reference in images.values() if isinstance(reference, str))
    return pinned


def registry_releases(registry: PlatformRegistry, repository: str) -> list[Release]:
    return [
        Release(
            repository,
            frozenset({f"{repository}@{image.digest}", *(f"{repository}:{tag}" for tag in image.tags)}),
            parse_time(image.created),
            digest=image.digest,
        )
        for image in registry.images(repository)
    ]


def engine_releases(images: Iterable[docker.models.images.Image], repositories: Collection[str]) -> list[Release]:
    """The engine's images by repository: an image named in two repositories is a release of each."""
    releases = []
    for image in images:
        names = [*(image.attrs.get("RepoTags") or []), *(image.attrs.get("RepoDigests") or [])]
        for repository in repositories:
            mine = frozenset(name for name in names if repository_of(name) == repository)
            if mine:
                releases.append(Release(repository, mine, parse_time(image.attrs["Created"]), image_id=image.id))
    return releases


def collect(stack: Stack, say: Say = print) -> None:
    from components.config import ConfigError, keep_releases  # pulumi only here: the other commands start faster

    try:
        keep = keep_releases(stack.config("keepReleases"))
    except ConfigError as error:
        raise StackError(f"stack {stack.name}: {error}") from None
    client = stack.docker_client()
    labels = [f"{STACK_LABEL}={stack.name}", f"{PROJECT_LABEL}={stack.project}"]
    images = client.images.list(filters={"label": labels})
    # What the stack builds now (its state), and what it built before (its builds left in the engine).
    repositories = sorted(
        {build.repository for build in stack.image_builds()}
        | {
            repository_of(name)
            for image in images
            for name in image.attrs.get("RepoTags") or []
            if CONTENT_TAG.fullmatch(name.rpartition(":")[2])
        }
    )
    if not repositories:
        say(f"stack {stack.name} builds no images: nothing to collect")
        return
    referenced = referenced_images(
        outputs_of_every_stack(stack.project_dir), pinned_in_stack_files(stack.project_dir, stack.project)
    )
    say(
        f"stack {stack.name}: keeping the {keep} newest releases per repository (keepReleases) "
        f"and the {len(referenced)} images the project's stacks reference"
    )
    _collect_registry(repositories, keep, referenced, say)
    _collect_engine(client, images, repositories, keep, referenced, say)


def _collect_registry(repositories: list[str], keep: int, referenced: frozenset[str], say: Say) -> None:
    registry = PlatformRegistry.from_env()
    on_registry = [r for r in repositories if registry is not None and registry.holds(r)]
    for repository in sorted(set(repositories) - set(on_registry)):
        say(f"registry: {repository} is not on the platform's registry: left alone")
    if registry is None or not on_registry:
        return
    before = disk_usage(storage_dir())
    deleted = 0
    for repository in on_registry:
        releases = registry_releases(registry, repository)
        doomed = removable(releases, keep, referenced)
        for release in doomed:
            registry.delete(repository, release.digest)
            say(f"registry: deleted {release} {release.digest}")
        say(f"registry: {repository}: {len(releases) - len(doomed)} kept, {len(doomed)} deleted")
        deleted += len(doomed)
    if not deleted:
        say(f"registry: nothing to delete ({human(before)} stored)")
        return
    # The manifests are gone; their blobs only go with the registry's garbage collection.
    if subprocess.run([str(ROOT / "platform" / "registry.sh"), "collect"]).returncode != 0:
        raise StackError("the registry's garbage collection failed (its log is named above)")
    after = disk_usage(storage_dir())
    say(f"registry: {deleted} images deleted, {human(before - after)} reclaimed ({human(before)} -> {human(after)})")


def _collect_engine(client, images, repositories: list[str], keep: int, referenced: frozenset[str], say: Say) -> None:
    in_use = {container.attrs["Image"] for container in client.containers.list(all=True)}
    releases = engine_releases(images, repositories)
    protected = referenced | {name for release in releases if release.image_id in in_use for name in release.names}
    doomed = removable(releases, keep, protected)
    before = client.df()["LayersSize"] if doomed else 0
    removed = 0
    for release in doomed:
        try:
            for name in sorted(release.names):
                try:
                    client.images.remove(name)
                except docker.errors.ImageNotFound:  # gone with the name removed before it
                    pass
        except docker.errors.APIError as error:  # a container started from it since the listing
            say(f"engine: kept {release}: {error.explanation}")
            continue
        removed += 1
        say(f"engine: removed {release}")
    after = client.df()["LayersSize"] if doomed else 0
    say(
        f"engine: {len(releases) - removed} kept, {removed} images removed, {human(before - after)} reclaimed"
        + (f" (image layers {human(before)} -> {human(after)})" if doomed else "")
    )
