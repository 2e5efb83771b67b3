"""The ports an image says it listens on (`EXPOSE`), for services whose Compose file names none.

A built image's come from its Dockerfile: the EXPOSE lines of the stage it builds and of the stages
that stage starts FROM, down to the base image, whose own exposed ports the Docker engine reports
when it has the image. A referenced image's come from the engine too; an image the engine does not
have (yet) exposes nothing we can know before it is pulled.
"""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Mapping, Optional

from dockerfile_parse import DockerfileParser
from dockerfile_parse.parser import image_from

Port = tuple[int, str]
ImageInspector = Callable[[str], list[Port]]
"""Image reference -> its exposed ports ([] when unknown)."""


def inspect_local_image(reference: str) -> list[Port]:
    """The exposed ports of `reference` as the local Docker engine (DOCKER_HOST) has it, or []."""
    import docker  # the SDK, imported only when an image has to be asked

    try:
        client = docker.from_env(timeout=5)
        config = client.images.get(reference).attrs.get("Config") or {}
    except Exception:  # no engine, no such image: nothing known, as `docker compose config` would say
        return []
    return sorted(_parse(spec) for spec in config.get("ExposedPorts") or {})


def exposed_ports(
    base_dir: str, build: Optional[Mapping[str, Any]], image: Optional[str], inspect: ImageInspector
) -> list[Port]:
    """The exposed ports of a raw spec's `build` (context relative to `base_dir`) or `image`."""
    if build is None:
        return inspect(image) if image else []
    path = os.path.join(base_dir, build["context"], build.get("dockerfile", "Dockerfile"))
    try:
        with open(path, "rb") as dockerfile:
            parser = DockerfileParser(fileobj=io.BytesIO(dockerfile.read()), build_args=dict(build.get("args") or {}))
    except OSError:
        return []  # the stack parser reports the missing Dockerfile
    stages: list[dict[str, Any]] = []
    parents = iter(parser.parent_images)
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append(
                {"from": next(parents, None), "name": (image_from(instruction["value"])[1] or "").lower(), "ports": []}
            )
        elif instruction["instruction"] == "EXPOSE" and stages:
            stages[-1]["ports"] += [
                _parse(spec) for spec in instruction["value"].split() if spec.split("/")[0].isdigit()
            ]
    by_name = {stage["name"]: stage for stage in stages if stage["name"]}
    stage = by_name.get((build.get("target") or "").lower(), stages[-1] if stages else None)
    ports: set[Port] = set()
    while stage is not None:
        ports.update(stage["ports"])
        parent = (stage["from"] or "").lower()
        if parent in by_name and by_name[parent] is not stage:
            stage = by_name[parent]
            continue
        if stage["from"] and stage["from"] != "scratch":
            ports.update(inspect(stage["from"]))
        stage = None
    return sorted(ports)


def _parse(spec: str) -> Port:
    number, _, protocol = spec.partition("/")
    return int(number), protocol or "tcp"
