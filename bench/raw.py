"""The same app, the hand-made way: the docker CLI, docker-compose and kubectl.

Each class mirrors what a component declares (components/docker_deployment.py,
components/kubernetes_deployment.py), so both sides of a comparison do the same work: same
images, flags, limits, hardening and health checks, and the same "wait until healthy" at the end.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from string import Template
from typing import Iterable, Mapping, Sequence

import docker

from components.conventions import SERVICE_LABEL, STACK_LABEL
from components.spec import ServiceSpec
from components.workload import endpoint, http_check_command, link_env
from support.testing import RegistryCredentials, wait_for

BENCH_DIR = Path(__file__).resolve().parent
HEALTH_TIMEOUT = 90  # as long as the raw way may take to report a container healthy


def run(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> str:
    result = subprocess.run(list(command), env=env, input=stdin, capture_output=True, text=True, timeout=900, cwd=cwd)
    if check and result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-2000:]  # pulumi reports errors on stdout
        raise RuntimeError(f"{shlex.join(command)} failed ({result.returncode}): {output}")
    return result.stdout


class DockerCli:
    """The docker CLI with a private config directory: its registry login never touches ~/.docker."""

    def __init__(self, config_dir: Path):
        config_dir.mkdir(parents=True, exist_ok=True)
        # The classic builder, as the engine (20.10, no buildx) gives the stack and compose too.
        self.env = {**os.environ, "DOCKER_CONFIG": str(config_dir), "DOCKER_BUILDKIT": "0"}
        self.client = docker.from_env()

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return run(["docker", *args], env=self.env, stdin=stdin, check=check)

    def login(self, registry: RegistryCredentials) -> None:
        self("login", registry.server, "-u", registry.username, "--password-stdin", stdin=registry.password)

    def wait_healthy(self, containers: Iterable[str]) -> None:
        """What `wait: true` does in the stack: poll the engine's health status (every 0.1 s)."""
        for container in containers:

            def healthy(container=container) -> bool:
                status = self.client.api.inspect_container(container)["State"].get("Health", {}).get("Status")
                if status == "unhealthy":
                    raise RuntimeError(f"container {container} is unhealthy")
                return status == "healthy"

            wait_for(healthy, timeout=HEALTH_TIMEOUT, interval=0.1, what=f"{container} healthy")

    def remove_images(self, label_values: Iterable[str]) -> None:
        """Removes every image built with one of these stack labels (the bench's own builds only)."""
        for value in label_values:
            for image in self.client.images.list(filters={"label": f"{STACK_LABEL}={value}"}):
                self("rmi", "-f", image.id, check=False)


class RawDockerApp:
    """The dev stack as a docker CLI sequence: build, tag, push, network, volume, run, wait healthy."""

    def __init__(self, cli: DockerCli, name: str, services: Sequence[ServiceSpec], repository: str, port_offset: int):
        self.cli, self.name, self.services, self.repository = cli, name, services, repository
        self.port_offset = port_offset
        self.steps: dict[str, float] = {}
        self.labels = {"app.kubernetes.io/part-of": "cloudservice", STACK_LABEL: name}

    def container(self, service: ServiceSpec) -> str:
        return f"{self.name}-{service.name}"

    def build_and_push(self, service: ServiceSpec, tag: str) -> str:
        local, remote = f"{self.name}/{service.name}:{tag}", f"{self.repository}/{service.name}:{tag}"
        build_args = [
            arg for key, value in sorted(service.build.args.items()) for arg in ("--build-arg", f"{key}={value}")
        ]
        labels = [arg for key, value in sorted(self.labels.items()) for arg in ("--label", f"{key}={value}")]
        with self.step("build"):
            self.cli(
                "build",
                "-q",
                "-t",
                local,
                "-f",
                os.path.join(service.build.context, service.build.dockerfile),
                *build_args,
                *labels,
                service.build.context,
            )
        with self.step("tag and push"):
            self.cli("tag", local, remote)
            self.cli("push", "-q", remote)
        return remote

    @contextlib.contextmanager
    def step(self, name: str):
        """Times one step of the sequence into `steps` (the phases section reads them)."""
        start = time.perf_counter()
        yield
        self.steps[name] = time.perf_counter() - start

    def run_args(self, service: ServiceSpec, image: str) -> list[str]:
        """`docker run` with the flags components/docker_service.py gives the container."""
        args = [
            "run",
            "-d",
            "--name",
            self.container(service),
            "--hostname",
            service.name,
            "--network",
            self.name,
            "--network-alias",
            service.name,
            "--restart",
            "unless-stopped",
            "--cap-drop",
            "ALL",
            *(f"--cap-add={cap}" for cap in service.capabilities),
            "--security-opt",
            "no-new-privileges:true",
            "--memory",
            f"{service.memory_mb}m",
            "--memory-swap",
            f"{service.memory_mb}m",
            "--cpus",
            str(service.cpu),
            "--label",
            f"{SERVICE_LABEL}={service.name}",
            *(f"--label={k}={v}" for k, v in self.labels.items()),
        ]
        if service.user is not None:
            args += ["--user", "{}:{}".format(*service.user)]
        if service.read_only:
            args += ["--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,size=16m"]
        for volume in service.volumes:
            args += ["-v", f"{self.container(service)}-{volume.name}:{volume.path}"]
        for port in service.published:
            args += ["-p", f"127.0.0.1:{port.publish + self.port_offset}:{port.port}"]
        services = {other.name: other for other in self.services}
        env = {**service.env, **link_env({link: endpoint(services[link]) for link in service.links})}
        args += [arg for name, value in sorted(env.items()) for arg in ("-e", f"{name}={value}")]
        health = service.health
        if health is not None:
            # The CLI takes the shell form only (the stack's command check is exec form: one sh less).
            check = http_check_command(health)[1] if health.path else shlex.join(health.command)
            args += [
                "--health-cmd",
                check,
                "--health-interval",
                f"{health.interval}s",
                "--health-timeout",
                f"{health.timeout}s",
                "--health-retries",
                str(health.retries),
                "--health-start-period",
                f"{health.start_period}s",
            ]
        return [*args, image]

    def up(self, tag: str) -> None:
        """Builds and pushes what has a build, then runs the services one after another, as a script
        would: a service waits for the services it links to to be healthy (the stack's depends_on +
        wait), the rest start without waiting; then every container is waited for until healthy."""
        images = {service.name: service.image or self.build_and_push(service, tag) for service in self.services}
        self.cli("network", "create", "--driver", "bridge", "--label", f"{STACK_LABEL}={self.name}", self.name)
        for service in self.services:
            for volume in service.volumes:
                self.cli(
                    "volume",
                    "create",
                    "--label",
                    f"{STACK_LABEL}={self.name}",
                    f"{self.container(service)}-{volume.name}",
                )
        healthy: set[str] = set()
        for service in self.services:  # linked services come first
            waits = [link for link in service.links if link not in healthy]
            self.cli.wait_healthy(f"{self.name}-{link}" for link in waits)
            healthy.update(waits)
            self.cli(*self.run_args(service, images[service.name]))
        self.cli.wait_healthy(self.container(service) for service in self.services if service.name not in healthy)

    def url(self, service: ServiceSpec) -> str:
        return f"http://127.0.0.1:{service.main_port.publish + self.port_offset}"

    def redeploy(self, service: ServiceSpec, tag: str, wait: bool = True) -> None:
        """A source change: build && push && rm -f && run, then (`wait`) wait until healthy."""
        image = self.build_and_push(service, tag)
        with self.step("rm -f"):
            self.cli("rm", "-f", self.container(service))
        with self.step("run"):
            self.cli(*self.run_args(service, image))
        if wait:
            with self.step("health wait (0.1 s poll)"):
                self.cli.wait_healthy([self.container(service)])

    def down(self) -> None:
        self.cli("rm", "-f", *(self.container(service) for service in self.services), check=False)
        self.cli("network", "rm", self.name, check=False)
        for service in self.services:
            for volume in service.volumes:
                self.cli("volume", "rm", f"{self.container(service)}-{volume.name}", check=False)


class ComposeRun:
    """The dev stack as bench/compose.yaml, under Debian's docker-compose (v1)."""

    def __init__(self, cli: DockerCli, project: str, app_dir: Path, web_port: int, base_image: str):
        self.cli, self.project = cli, project
        self.env = {
            **cli.env,
            "APP_DIR": str(app_dir),
            "WEB_PORT": str(web_port),
            "BASE_IMAGE": base_image,
            "BENCH_STACK": project,
        }
        self.url = f"http://127.0.0.1:{web_port}"

    def compose(self, *args: str, check: bool = True) -> str:
        return run(
            ["docker-compose", "-p", self.project, "-f", str(BENCH_DIR / "compose.yaml"), *args],
            env=self.env,
            check=check,
        )

    def up(self) -> None:
        # depends_on (service_healthy) makes up wait for redis; web's health is waited for here.
        self.compose("up", "-d", "--build")
        self.cli.wait_healthy(self.compose("ps", "-q").split())

    def rebuild(self, service: str) -> None:
        """What a Compose user runs after a change: rebuild and recreate that one service."""
        self.compose("up", "-d", "--build", service)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", check=False)


def dockerconfigjson(registry: RegistryCredentials) -> str:
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    return json.dumps(
        {"auths": {registry.server: {"username": registry.username, "password": registry.password, "auth": token}}}
    )


class KubectlApp:
    """The staging stack as `kubectl apply` of bench/k8s/app.yaml, then `kubectl rollout status`."""

    def __init__(self, namespace: str, images: Mapping[str, str], registry: RegistryCredentials, replicas: int):
        self.namespace = namespace
        self.manifest = Template((BENCH_DIR / "k8s" / "app.yaml").read_text()).substitute(
            NAMESPACE=namespace,
            WEB_IMAGE=images["web"],
            REDIS_IMAGE=images["redis"],
            WEB_REPLICAS=replicas,
            DOCKERCONFIGJSON=dockerconfigjson(registry),
        )

    def up(self) -> None:
        run(["kubectl", "apply", "-f", "-"], stdin=self.manifest)
        for deployment in ("redis", "web"):
            run(["kubectl", "rollout", "status", "-n", self.namespace, f"deployment/{deployment}", "--timeout=300s"])

    def down(self) -> None:
        run(["kubectl", "delete", "namespace", self.namespace, "--ignore-not-found", "--wait=true"], check=False)
