"""A soak: a steady prober through the app's entry point while the stack is updated on a period (a
source edit, then `up`) and one replica is killed on another. Counts what a user would see (failed
requests) and what would pile up over a day of it (the stack's containers or pods, and the Pulumi
processes and their open files left between updates). The test suite runs a short one, bench/ a long
one; both on loopback only."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import docker

from components.conventions import STACK_LABEL
from support.testing import ProjectCopy, edit_app_version, free_port, get_json, http, kubectl, kubectl_json
from support.traffic import Prober


@dataclass(frozen=True)
class Sample:
    """What is left between updates: the stack's running containers (or pods), and Pulumi's processes
    (the CLI and its plugins) with their open files."""

    seconds: float
    containers: int
    pulumi_processes: int
    open_files: int


def pulumi_processes(proc: Path = Path("/proc")) -> dict[int, int]:
    """The running Pulumi CLI and plugin processes (pulumi, pulumi-language-*, pulumi-resource-*): pid
    to its number of open files."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip().startswith("pulumi"):
                found[int(entry.name)] = len(os.listdir(entry / "fd"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@dataclass
class SoakReport:
    seconds: float
    updates: int
    kills: int
    prober: Prober
    samples: list[Sample] = field(default_factory=list)

    @property
    def growth(self) -> dict[str, int]:
        """How much more of each is left after the last update than after the first."""
        first, last = self.samples[0], self.samples[-1]
        return {
            "containers": last.containers - first.containers,
            "pulumi processes": last.pulumi_processes - first.pulumi_processes,
            "open files": last.open_files - first.open_files,
        }

    def summary(self) -> str:
        return (
            f"{self.seconds:.0f}s: {self.updates} updates, {self.kills} replicas killed; probes "
            f"{self.prober.report()}; left between updates (first -> last): "
            f"{self.samples[0]} -> {self.samples[-1]}"
        )


class Soak:
    """`update()` at 0, `update_every`, ... seconds (each starts once the previous one ended), `kill()`
    at half of `kill_every` and every `kill_every` after, for `seconds`; `containers()` counts the
    stack's containers after each update."""

    def __init__(
        self,
        url: str,
        *,
        seconds: float,
        update: Callable[[int], None],
        kill: Callable[[], None],
        containers: Callable[[], int],
        update_every: float = 30,
        kill_every: float = 60,
        probes_per_second: float = 20,
    ):
        self.url, self.seconds = url, seconds
        self._update, self._kill, self._containers = update, kill, containers
        self._update_every, self._kill_every = update_every, kill_every
        self._probes_per_second = probes_per_second

    def run(self) -> SoakReport:
        with Prober(self.url, per_second=self._probes_per_second) as prober:
            report = SoakReport(seconds=self.seconds, updates=0, kills=0, prober=prober)
            started = time.monotonic()
            stop, errors = threading.Event(), []
            killer = threading.Thread(target=self._kill_on_schedule, args=(started, stop, report, errors), daemon=True)
            killer.start()
            try:
                while time.monotonic() - started < self.seconds:
                    report.updates += 1
                    self._update(report.updates)
                    report.samples.append(self._sample(time.monotonic() - started))
                    next_update = started + report.updates * self._update_every
                    time.sleep(max(0.0, min(next_update, started + self.seconds) - time.monotonic()))
            finally:
                stop.set()
                killer.join()
            if errors:
                raise errors[0]
        return report

    def _kill_on_schedule(self, started: float, stop: threading.Event, report: SoakReport, errors: list) -> None:
        next_kill = started + self._kill_every / 2
        try:
            while not stop.wait(max(0.0, next_kill - time.monotonic())):
                self._kill()
                report.kills += 1
                next_kill += self._kill_every
        except BaseException as error:  # noqa: BLE001 - raised again in the test's thread by run()
            errors.append(error)

    def _sample(self, seconds: float) -> Sample:
        processes = pulumi_processes()
        return Sample(seconds, self._containers(), len(processes), sum(processes.values()))


# The demo app for a soak: web behind the entry point in 3 replicas, redis holding a note that must
# survive it all.
SOAK_SERVICES = {
    "redis": {
        "build": "app/redis",
        "port": 6379,
        "volume": {"path": "/data"},
        "health": ["redis-cli", "ping"],
        "user": 10002,
    },
    "web": {"build": "app/web", "port": 8080, "links": ["redis"], "health": "/healthz", "user": 10001, "replicas": 3},
}
SOAK_ROUTES = [{"service": "web"}]
NOTE = b"written before the soak"


class SoakedStack:
    """The soak's stack on one target (`docker`: the dev stack file, `kubernetes`: staging): how to kill
    one of web's replicas and count the stack's containers or pods there."""

    def __init__(self, project: ProjectCopy, target: str, registry_password: str):
        self.project, self.target = project, target
        services = json.loads(json.dumps(SOAK_SERVICES))
        config = {"routes": json.dumps(SOAK_ROUTES), "replicas": "3"}  # staging's stack file says 2
        if target == "docker":
            # The router drops a replica once its health check fails: web drains (unready, still
            # serving) longer than the check's interval before it exits. Kubernetes has preStop for it.
            services["web"]["env"] = {"DRAIN_SECONDS": "3"}
            config["routerPort"] = str(free_port())
        config["services"] = json.dumps(services)
        self.stack = project.stack(
            "dev" if target == "docker" else "staging", config=config, secrets={"registryPassword": registry_password}
        )
        self.outputs: dict = {}
        self._killed = 0

    def up(self) -> None:
        self.outputs = {key: output.value for key, output in self.stack.up().outputs.items()}

    def update(self, n: int) -> None:
        """A source edit (the version web reports), then `up`: an image build and a rolling update."""
        edit_app_version(self.project, f"soak-{n}")
        self.up()

    def kill(self) -> None:
        """SIGKILL to one of web's replicas, a different one each time: on Docker its process (a crash
        the engine restarts), on Kubernetes its pod (deleted at once; the Deployment replaces it)."""
        self._killed += 1
        if self.target == "docker":
            replicas = sorted(self._docker_containers("web"), key=lambda container: container.name)
            # Not `docker kill`: the engine counts that as stopped by hand and never restarts it.
            os.kill(replicas[self._killed % len(replicas)].attrs["State"]["Pid"], signal.SIGKILL)
        else:
            pods = sorted(self._pods("web"))
            kubectl(
                "-n",
                self.outputs["namespace"],
                "delete",
                "pod",
                pods[self._killed % len(pods)],
                "--grace-period=0",
                "--force",
            )

    def containers(self) -> int:
        return len(self._docker_containers()) if self.target == "docker" else len(self._pods())

    def _docker_containers(self, service: Optional[str] = None) -> list:
        labels = [f"{STACK_LABEL}={self.stack.name}"] + ([f"app.kubernetes.io/name={service}"] if service else [])
        return docker.from_env().containers.list(filters={"label": labels, "status": "running"})

    def _pods(self, service: Optional[str] = None) -> list[str]:
        selector = ["-l", f"app.kubernetes.io/name={service}"] if service else []
        pods = kubectl_json("-n", self.outputs["namespace"], "get", "pods", *selector)["items"]
        return [pod["metadata"]["name"] for pod in pods if not pod["metadata"].get("deletionTimestamp")]

    def soak(self, seconds: float) -> SoakReport:
        """Up, a note stored, the soak, then the note read back: the data outlived it all."""
        self.up()
        url = self.outputs["url"]
        assert http("POST", url.rstrip("/") + "/notes", NOTE)[0] in (200, 201), "storing the note"
        report = Soak(url, seconds=seconds, update=self.update, kill=self.kill, containers=self.containers).run()
        status, notes = get_json(url.rstrip("/") + "/notes")
        assert status == 200 and NOTE.decode() in json.dumps(notes), f"the note after the soak: {notes}"
        return report

    def problems(self, report: SoakReport, min_probes: int) -> list[str]:
        """Why the soak is not clean (nothing, for a clean one)."""
        prober = report.prober
        problems = [f"{prober.failed} failed requests"] if prober.failed else []
        if prober.requests < min_probes:
            problems.append(f"only {prober.requests} probes (at least {min_probes} expected)")
        if report.updates < 2 or report.kills < 1:
            problems.append(f"{report.updates} updates and {report.kills} kills: too short to tell")
        if prober.last_version != f"soak-{report.updates}":
            problems.append(f"the last update (soak-{report.updates}) is not what answers ({prober.last_version})")
        problems += [f"{growth} more {what}" for what, growth in report.growth.items() if growth > 0]
        pending = self.stack.export_stack().deployment.get("pending_operations")
        return problems + ([f"operations left pending in the state: {pending}"] if pending else [])

    def destroy(self) -> None:
        self.stack.destroy()
        self.stack.workspace.remove_stack(self.stack.name)
