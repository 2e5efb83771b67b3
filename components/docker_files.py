"""Files a read-only container reads, on Docker: a volume, filled by a carrier, mounted read-only."""

from __future__ import annotations

from typing import Mapping

import pulumi
import pulumi_docker as docker

from .network import docker_labels


def carried_files(
    parent: pulumi.Resource,
    name: str,
    image: pulumi.Input[str],
    directory: str,
    files: Mapping[str, pulumi.Input[str]],
    labels: Mapping[str, str],
) -> tuple[docker.ContainerVolumeArgs, docker.Container]:
    """`files` (path in the container, under `directory` -> content) in a volume `name`. A read-only
    root file system takes no uploads (the engine writes them through the root), so a container that is
    created but never started (`name` too, from `image`) carries them into the volume; a changed file
    replaces the carrier, which writes them again into the same volume. Returns the read-only mount of
    the volume at `directory` and the carrier: a workload labelled with its ID is replaced whenever a
    file changes."""
    volume = docker.Volume(
        name,
        name=name,
        labels=docker_labels(labels, docker.VolumeLabelArgs),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # Readable, not writable. No owner: the engine would resolve one by name in the image's passwd
    # (`docker cp -a`), which a numeric user of the spec is not in.
    carrier = docker.Container(
        name,
        name=name,
        image=image,
        start=False,
        must_run=False,
        network_mode="none",
        volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory)],
        uploads=[
            docker.ContainerUploadArgs(file=path, content=content, permissions="0444")
            for path, content in files.items()
        ],
        labels=docker_labels(labels, docker.ContainerLabelArgs),
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
    )
    return docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory, read_only=True), carrier
