"""Section `phases`: where the time of a `pulumi up` goes, phase by phase.

A `pulumi up` is timed with its engine events (`--event-log` on a pipe, each event stamped as it
arrives) and the engine's own container timestamps (created, started, health checks), so every phase
is measured inside the real command: CLI and engine start, language host and program start (imports),
plugin start, build, push, container stop/create, health wait, our readiness check's wait after that, rollout
wait, and the finish (outputs, state). Beside them, costs measured in isolation: the CLI binary, the
SDK imports, context hashing, and the raw docker steps that are the floor of any tool.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from components.image import content_tag
from support.testing import ROOT

from .harness import Bench, container_ids, ensure_images
from .timing import log

if TYPE_CHECKING:
    from .cli import PulumiCli

IMAGE, PUSH, CONTAINER = (
    "docker:index/remoteImage:RemoteImage",
    "docker:index/registryImage:RegistryImage",
    "docker:index/container:Container",
)
ROLLOUT_CHECK = "pulumi-python:dynamic/cloudservice:RolloutCheck"
"""Our readiness check (components/readiness.py): a container's step ends once it is created and
started, the check's once the container is healthy."""
CREATED = {"create", "create-replacement", "update"}.__contains__
DEPLOYMENT, SERVICE = "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"


def engine_time(stamp: str) -> float:
    """Docker's RFC 3339 timestamps (nanoseconds) as epoch seconds."""
    head, _, fraction = stamp.rstrip("Z").partition(".")
    moment = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp() + float(f"0.{fraction or 0}")


class Timeline:
    """One CLI command with its engine events, each stamped (epoch seconds) on arrival."""

    def __init__(self, cli: "PulumiCli", *args: str):
        fifo = f"/tmp/bench-events-{uuid.uuid4().hex}"
        os.mkfifo(fifo)
        self.events: list[tuple[float, dict]] = []

        def read() -> None:
            with open(fifo, encoding="utf-8") as stream:
                for line in stream:
                    self.events.append((time.time(), json.loads(line)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            self.start = time.time()
            cli(*args, "--event-log", fifo, env={"PULUMI_DEBUG_COMMANDS": "true"})  # the flag is behind it
            self.end = time.time()
            reader.join(timeout=10)
        finally:
            os.unlink(fifo)

    def first(self, kind: str) -> float:
        return next(stamp for stamp, event in self.events if kind in event)

    def steps(self, kind: str, resource_type: str, ops: Callable[[str], bool] = lambda op: op != "same") -> list[float]:
        """Arrival times of `kind` events (resourcePreEvent / resOutputsEvent) for that type and ops."""
        return [
            stamp
            for stamp, event in self.events
            if kind in event and event[kind]["metadata"]["type"] == resource_type and ops(event[kind]["metadata"]["op"])
        ]

    def span(self, resource_type: str, ops: Callable[[str], bool] = lambda op: op != "same") -> tuple[float, float]:
        """From the first step of that type starting to the last one done."""
        return min(self.steps("resourcePreEvent", resource_type, ops)), max(
            self.steps("resOutputsEvent", resource_type, ops)
        )

    def prelude(self) -> dict[str, float]:
        """The phases before any resource work: CLI and engine start, language host and program start.
        (The engine starts resource plugins alongside: their own start is measured in isolation.)"""
        prelude, registered = self.first("preludeEvent"), self.first("resourcePreEvent")
        return {
            "CLI and engine start (to the prelude event)": prelude - self.start,
            "language host, program start and imports (to the first registration)": registered - prelude,
        }

    def finish(self) -> dict[str, float]:
        last = max(stamp for stamp, event in self.events if "resOutputsEvent" in event)
        return {"finish: stack outputs, state, summary, exit": self.end - last}


def edit_phases(timeline: Timeline, container: dict) -> dict[str, float]:
    """An edit of web on the docker target: rebuild, push, replace, healthy."""
    # The replaced image and push are deleted at the very end of the update: only their creation counts.
    build, push = timeline.span(IMAGE, CREATED), timeline.span(PUSH, CREATED)
    stop = timeline.span(CONTAINER, lambda op: op == "delete-replaced")
    ready = max(timeline.steps("resOutputsEvent", ROLLOUT_CHECK))
    started = engine_time(container["State"]["StartedAt"])
    healthy = min(engine_time(check["End"]) for check in container["State"]["Health"]["Log"] if check["ExitCode"] == 0)
    return {
        **timeline.prelude(),
        "program until the build starts (registrations, context hashing, diffs)": build[0]
        - timeline.first("resourcePreEvent"),
        "build (docker build of web)": build[1] - build[0],
        "push": push[1] - push[0],
        "stop the old container (graceful)": stop[1] - stop[0],
        "container create and start": started - stop[1],
        "health wait (start to the first passing check)": healthy - started,
        "readiness check's wait after healthy (it follows the container's events)": ready - healthy,
        **timeline.finish(),
    }


def kubernetes_phases(timeline: Timeline) -> dict[str, float]:
    """A fresh staging stack by digest: namespace, secrets, PVC, Deployments, Services."""
    rollout = timeline.span(DEPLOYMENT, CREATED)
    return {
        **timeline.prelude(),
        "program, namespace, secret, PVC until the first Deployment": rollout[0] - timeline.first("resourcePreEvent"),
        "Deployments created until their rollouts complete": rollout[1] - rollout[0],
        # Services are created beside the Deployments; only a LoadBalancer's is awaited.
        "Services still awaited after the rollouts": max(timeline.span(SERVICE)[1], rollout[1]) - rollout[1],
        **timeline.finish(),
    }


def isolated(b: Bench) -> dict[str, float]:
    """Costs measured on their own, each the median of the bench's runs."""
    python = str(ROOT / "venv/bin/python")

    def seconds(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        return time.perf_counter() - start

    def median(measure: Callable[[], float]) -> float:
        return statistics.median(measure() for _ in range(max(b.runs, 3)))

    def plugin_start(name: str) -> float:
        """A resource plugin from exec to its port on stdout (the engine then connects to it)."""
        binary = next((Path(os.environ["PULUMI_HOME"]) / "plugins").glob(f"resource-{name}-v*/pulumi-resource-{name}"))
        start = time.perf_counter()
        plugin = subprocess.Popen([str(binary)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        plugin.stdout.readline()
        seconds = time.perf_counter() - start
        plugin.kill()
        plugin.wait()
        return seconds

    python_start = median(lambda: seconds([python, "-c", "pass"]))
    costs = {
        "`pulumi version` (the CLI binary alone)": median(lambda: seconds(["pulumi", "version"])),
        "Python start": python_start,
    }
    for plugin in ("docker", "kubernetes"):
        costs[f"{plugin} resource plugin start (to its port)"] = median(lambda: plugin_start(plugin))
    for module in ("pulumi", "pulumi_docker", "pulumi_kubernetes"):
        costs[f"import {module} (after Python start)"] = (
            median(lambda: seconds([python, "-c", f"import {module}"])) - python_start
        )
    builds = [service.build for service in b.services if service.build is not None]

    def hashing() -> float:
        start = time.perf_counter()
        for build in builds:
            content_tag(build)
        return time.perf_counter() - start

    costs[f"context hashing ({len(builds)} contexts)"] = median(hashing)
    return costs


def bench_phases(b: Bench) -> None:
    """Section 7: per-phase breakdown of an edit `pulumi up` (docker) and a fresh staging up."""
    edits, raw_edits, clusters = [], [], []
    stack = b.dev_stack("phases")
    cli, raw = b.pulumi(stack), b.raw_app("phases-raw")
    b.stamp_app("phases")
    cli.up()
    raw.up(tag=b.name("phases"))
    web_spec = next(service for service in b.services if service.name == "web")
    for run_index in range(b.runs):
        b.stamp_app(f"phases-{run_index}", services=("web",))
        timeline = Timeline(cli, "up", "--yes", "--skip-preview")
        web = b.cli.client.api.inspect_container(container_ids(b, stack.name)["web"])
        edits.append(edit_phases(timeline, web))
        b.stamp_app(f"phases-raw-{run_index}", services=("web",))
        raw.redeploy(web_spec, tag=b.name(f"phases-{run_index}"))
        raw_edits.append(dict(raw.steps))
    cli.destroy()
    raw.down()

    staging = b.pulumi(
        b.stack(
            "staging",
            "phases-k8s",
            config={
                "images": json.dumps(ensure_images(b)),
                "kubernetes": json.dumps({"namespace": b.name("phases-k8s"), "serviceType": "NodePort"}),
            },
        )
    )
    for _ in range(b.runs):
        clusters.append(kubernetes_phases(Timeline(staging, "up", "--yes", "--skip-preview")))
        staging.destroy()

    def medians(runs: list[dict]) -> dict:
        return {phase: round(statistics.median(run[phase] for run in runs), 3) for phase in runs[0]}

    b.phases = {
        "edit: `pulumi up` after a change to web (docker)": medians(edits),
        "edit by hand: the raw docker steps (the floor)": medians(raw_edits),
        "kubernetes: `pulumi up` of a fresh staging stack": medians(clusters),
        "measured on their own": {key: round(value, 3) for key, value in isolated(b).items()},
    }
    for group, phases in b.phases.items():
        log(f"{group}: " + ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in phases.items()))
