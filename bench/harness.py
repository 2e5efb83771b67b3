"""One bench run (`Bench`: a private project copy, unique names, the figures, the cleanup) and the
helpers the sections share."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Optional

import yaml
from pulumi import automation as auto

from components.config import parse_stack_config
from components.conventions import SERVICE_LABEL, STACK_LABEL
from support.testing import ROOT, ProjectCopy, RegistryCredentials, free_port, get_json, http, wait_for

from .cli import PulumiCli
from .raw import DockerCli, RawDockerApp
from .timing import Figures, log

STAMP = "# bench: "


def stamp(path: Path, nonce: str) -> None:
    """Makes a source file unique (a trailing comment), so its image really is built again."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith(STAMP)]
    path.write_text("\n".join([*lines, STAMP + nonce]) + "\n")


class Bench:
    """One bench run: a private project copy, unique names, the figures, and the cleanup."""

    def __init__(self, runs: int, workdir: Path):
        self.runs, self.workdir = runs, workdir
        self.id = uuid.uuid4().hex[:6]
        self.figures = Figures()
        (workdir / "project").mkdir()
        self.project = ProjectCopy(workdir / "project")
        self.app_dir = self.project.directory / "app"
        self.registry = RegistryCredentials.load()
        self.cli = DockerCli(workdir / "docker-config")
        self.cli.login(self.registry)
        self.stacks: list[auto.Stack] = []
        self.cleanups: list[Callable[[], None]] = []
        self.built_labels: list[str] = []  # stack labels of every image built, removed at the end
        self.images: Optional[dict] = None  # repo@sha256 of web and redis, once a dev stack pushed them
        self.phases: dict[str, dict[str, float]] = {}  # the `phases` section's breakdown

        # The raw side runs the app spec the stacks run: Pulumi.yaml's services, the dev build args.
        dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
        spec = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["services"]["value"]
        self.repository = dev["cloudservice:imageRepository"]
        self.build_args = dev["cloudservice:buildArgs"]
        self.services = self.parse_services(spec)

    def parse_services(self, spec: dict):
        """The ServiceSpecs a stack with this `services` config and the dev build args runs."""
        return parse_stack_config(
            {"services": spec, "buildArgs": self.build_args},
            project="cloudservice",
            stack="bench",
            base_dir=str(self.project.directory),
        ).app.services

    def name(self, what: str) -> str:
        return f"bench-{self.id}-{what}"

    def stack(self, template: str, what: str, config: Optional[dict] = None) -> auto.Stack:
        stack = self.project.stack(
            template, name=self.name(what), config=config, secrets={"registryPassword": self.registry.password}
        )
        self.stacks.append(stack)
        self.built_labels.append(stack.name)
        return stack

    def dev_stack(self, what: str) -> auto.Stack:
        return self.stack("dev", what, config={"portOffset": str(free_port() - 8080)})

    def raw_app(self, what: str = "raw", services=None) -> RawDockerApp:
        services = services or self.services
        published = next(service.published[0].publish for service in services if service.published)
        app = RawDockerApp(self.cli, self.name(what), services, self.repository, free_port() - published)
        self.cleanups.append(app.down)
        self.built_labels.append(app.name)
        return app

    def wait_for_registry(self) -> None:
        auth = (self.registry.username, self.registry.password)
        wait_for(
            lambda: http("GET", f"{self.registry.url}/v2/", auth=auth)[0] == 200,
            timeout=120,
            interval=1,
            what="the registry",
        )

    def timed(self, key: str, action: Callable[[], object], reset: Optional[Callable[[], None]] = None):
        """Times `action` into figure `key`. Another engineer's platform tests may restart the
        registry mid-run: such a run is discarded (`reset` undoes it) and done again."""
        for attempt in range(1, 4):
            self.wait_for_registry()
            try:
                return self.figures.time(key, action)
            except Exception as error:  # noqa: BLE001 - only the registry outage is retried
                if attempt == 3 or "connection refused" not in str(error):
                    raise
                log(f"{key}: the registry went away during the run; discarded, running it again")
                if reset is not None:
                    reset()

    def stamp_app(self, nonce: str, services=("web", "redis")) -> None:
        files = {"web": self.app_dir / "web" / "server.py", "redis": self.app_dir / "redis" / "redis.conf"}
        for service in services:
            stamp(files[service], f"{self.id}-{nonce}")

    def pulumi(self, stack: auto.Stack) -> PulumiCli:
        return PulumiCli(self.project.directory, self.project.env, stack.name)

    def seed_images(self, cli: PulumiCli) -> None:
        """Keeps the digests a dev stack pushed (later sections deploy them), once it serves."""
        outputs = cli.outputs()
        self.images = outputs["images"]
        assert get_json(outputs["url"] + "/")[0] == 200, f"{cli.stack} does not serve {outputs['url']}"

    def close(self) -> None:
        """Removes everything the bench made; each step on its own, so one failure skips nothing."""
        steps = [*self.cleanups]
        for stack in self.stacks:
            steps += [stack.destroy, lambda stack=stack: stack.workspace.remove_stack(stack.name)]
        steps.append(lambda: self.cli.remove_images(self.built_labels))
        for step in steps:
            try:
                step()
            except Exception as error:  # noqa: BLE001 - report and carry on cleaning
                log(f"cleanup step failed: {error}")


def container_ids(b: Bench, stack: str) -> dict[str, str]:
    """Service -> ID of the container the engine runs for it, for one stack."""
    containers = b.cli.client.containers.list(all=True, filters={"label": [f"{STACK_LABEL}={stack}", SERVICE_LABEL]})
    return {container.labels[SERVICE_LABEL]: container.id for container in containers}


def ensure_images(b: Bench) -> dict:
    """The digests a dev stack pushed (the cold section leaves them; a partial run makes them)."""
    if b.images is None:
        seed = b.pulumi(b.dev_stack("seed"))
        b.stamp_app("seed")
        seed.up()
        b.seed_images(seed)
        seed.destroy()
    return b.images
