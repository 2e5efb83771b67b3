"""A stack through the `pulumi` CLI, as a user types it: its outputs, its state, `pulumi up`."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import docker

PROJECT_LABEL = "app.kubernetes.io/part-of"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"


class StackError(RuntimeError):
    """A stack the tools cannot work with; the message says what to do."""


@dataclass(frozen=True)
class ImageBuild:
    """An image the stack builds: its repository, the content tag it has now, and how to build it."""

    repository: str
    tag: str
    context: str
    dockerfile: str
    target: Optional[str]
    args: dict


class Stack:
    """One stack of the project in `project_dir`, addressed by name on the project's backend."""

    def __init__(self, name: str, project_dir: Path):
        self.name, self.project_dir = name, Path(project_dir)
        self.project = _project_name(self.project_dir / "Pulumi.yaml")

    def pulumi(self, *args: str) -> str:
        return run_pulumi(self.project_dir, *args, "--stack", self.name)

    def exported(self) -> dict:
        """The stack outputs as they are: none for a stack that is not up."""
        return json.loads(self.pulumi("stack", "output", "--json") or "{}")

    def outputs(self) -> dict:
        """The stack outputs (target, urls, images, digests, network or namespace); secrets stay masked."""
        outputs = self.exported()
        if "target" not in outputs:
            raise StackError(f"stack {self.name} is not up (no outputs): run `make up STACK={self.name}` first")
        return outputs

    def config(self, key: str):
        """A config value of the project's namespace, decoded, or None when unset."""
        try:
            value = json.loads(self.pulumi("config", "get", f"{self.project}:{key}", "--json"))
        except StackError:
            return None
        return value.get("objectValue", value.get("value"))  # objects come decoded as objectValue

    def docker_client(self) -> docker.DockerClient:
        """The Docker engine the stack builds on (and, on the docker target, runs on)."""
        host = self.config("dockerHost")
        return docker.DockerClient(base_url=host) if host else docker.from_env()

    def image_builds(self) -> list[ImageBuild]:
        """The images the stack's last update built, from its state (what the program declared)."""
        deployment = json.loads(self.pulumi("stack", "export"))["deployment"]
        builds = []
        for resource in deployment.get("resources") or []:
            build = resource.get("inputs", {}).get("build")
            if resource["type"] != REMOTE_IMAGE or not build:
                continue
            repository, _, tag = resource["inputs"]["name"].rpartition(":")
            builds.append(
                ImageBuild(
                    repository=repository,
                    tag=tag,
                    context=str(self.project_dir / build["context"]),
                    dockerfile=build.get("dockerfile") or "Dockerfile",
                    target=build.get("target") or None,
                    args=build.get("buildArgs") or {},
                )
            )
        return builds

    def up_command(self, *extra: str) -> list[str]:
        return ["pulumi", "up", "--yes", "--skip-preview", "--stack", self.name, *extra]


def run_pulumi(project_dir: Path, *args: str) -> str:
    """A `pulumi` command in the project directory (its backend, as PULUMI_BACKEND_URL or Pulumi.yaml says)."""
    result = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=project_dir, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"pulumi {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _project_name(pulumi_yaml: Path) -> str:
    for line in pulumi_yaml.read_text().splitlines():
        if line.startswith("name:"):
            return line.split(":", 1)[1].strip()
    raise StackError(f"{pulumi_yaml} names no project")


def repository_of(reference: str) -> str:
    """localhost:5000/app/web for localhost:5000/app/web@sha256:..., :tag or nothing."""
    name = reference.partition("@")[0]
    return name.rpartition(":")[0] if name.rfind(":") > name.rfind("/") else name


def service_of(repository: str, images: dict) -> Optional[str]:
    """The service whose image (in the `images` output) is of this repository."""
    return next((service for service, image in images.items() if image and repository_of(image) == repository), None)
