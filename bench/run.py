"""`make bench`: the stack against the raw docker / docker-compose / kubectl way, side by side.

Usage: python -m bench.run [--runs N] [--quick] [--sections cold,steady,...]

Every figure is wall time in seconds over N runs (min and median); setup and cleanup happen
outside the timed sections. Everything the bench creates carries a unique `bench-<id>` name
(stacks, containers, compose project, namespaces, host ports picked free) and is removed at the
end, pushed registry tags excepted (the stack keeps those too: they are the release history).
Results: bench/results.json and the table in bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from pulumi import automation as auto

from support.processes import OutputWatcher
from support.testing import ROOT, edit_app_version, free_port, get_json, wait_for

from .cli import PulumiCli
from .harness import Bench, container_ids, ensure_images
from .phases import bench_phases
from .raw import BENCH_DIR, ComposeRun, KubectlApp, run
from .timing import log

SECTIONS = ("unit", "cold", "steady", "kubernetes", "scale", "dev", "phases")
SCALES = (1, 10, 50)
RAW_SCALES = (10, 50)
UP = "`pulumi up --yes --skip-preview`"

# What each figure measures (the README table's first column), in table order. Every `pulumi` figure
# is the CLI as a user types it; `.automation` ones drive the same through the Automation API.
DESCRIPTIONS = {
    "unit": "`pytest tests/unit -q` (the unit suite, wall time)",
    "cold.pulumi": f"cold {UP} of a fresh dev stack: build x2, push x2, network, volume, 2 containers healthy",
    "cold.raw": "the same with the docker CLI: build x2, tag, push x2, network/volume create, run x2, wait healthy",
    "cold.compose": "the same under `docker-compose up -d --build` + wait healthy (builds, no push)",
    "noop.preview": "no-op `pulumi preview` of the dev stack (all resources `same`)",
    "noop.up": f"no-op {UP} of the dev stack (all `same`, nothing rebuilt)",
    "noop.up.automation": "the same no-op up through the Automation API (`stack.up()`)",
    "empty.preview": "`pulumi preview` of an empty Python program: Pulumi's floor",
    "edit.pulumi": f"app/web/server.py changed: {UP} (rebuild, push, replace web, healthy)",
    "edit.raw": "the same by hand: docker build && push && rm -f && run + wait healthy",
    "k8s.pulumi": f"{UP} of a fresh staging stack (by digest) until the rollout completes",
    "k8s.kubectl": "`kubectl apply` of equivalent manifests + `kubectl rollout status`",
    **{
        f"scale{n}.{op}": f"`pulumi {op}` of a fresh dev stack with {n} service(s)"
        for n in SCALES
        for op in ("preview", "up")
    },
    **{
        f"scale{n}.raw": f"the same {n} services by hand: build+push the first, `docker run` one after another, wait healthy"
        for n in RAW_SCALES
    },
    "dev.pulumi": "`make dev` running: web's version changed in server.py -> the new version answers on its URL",
    "dev.raw": "the same by hand: docker build && push && rm -f && run -> the new version answers",
    "dev.compose": "the same under Compose: `docker-compose up -d --build web` -> the new version answers",
}
RATIOS = {
    "cold pulumi/raw": ("cold.pulumi", "cold.raw"),
    "cold pulumi/compose": ("cold.pulumi", "cold.compose"),
    "edit pulumi/raw": ("edit.pulumi", "edit.raw"),
    "no-op preview/empty preview": ("noop.preview", "empty.preview"),
    "no-op up/empty preview": ("noop.up", "empty.preview"),
    "no-op up automation/CLI": ("noop.up.automation", "noop.up"),
    "kubernetes pulumi/kubectl": ("k8s.pulumi", "k8s.kubectl"),
    "scale10 pulumi/raw": ("scale10.up", "scale10.raw"),
    "scale50 pulumi/raw": ("scale50.up", "scale50.raw"),
    "dev save-to-live/raw": ("dev.pulumi", "dev.raw"),
    "dev save-to-live/compose": ("dev.pulumi", "dev.compose"),
}
# The goals of issue #14, as upper bounds of the median ratios.
GOALS = {
    "cold pulumi/raw": 1.3,
    "edit pulumi/raw": 1.3,
    "no-op preview/empty preview": 1.3,
    "kubernetes pulumi/kubectl": 1.3,
    "scale10 pulumi/raw": 1.0,
    "scale50 pulumi/raw": 1.0,
    "dev save-to-live/raw": 1.3,
}


def bench_unit(b: Bench) -> None:
    for _ in range(b.runs):
        b.figures.time(
            "unit",
            lambda: subprocess.run(
                [str(ROOT / "venv/bin/pytest"), "tests/unit", "-q", "-p", "no:cacheprovider"],
                cwd=ROOT,
                check=True,
                capture_output=True,
            ),
        )


def bench_cold(b: Bench) -> None:
    """Section 1: from nothing to healthy, each side building the same sources from the same cache
    state: every run stamps both build contexts anew, so the COPY layer and all after it rebuild."""
    dev, raw = b.pulumi(b.dev_stack("dev")), b.raw_app()
    compose = ComposeRun(b.cli, b.name("compose"), b.app_dir, free_port(), b.build_args["BASE_IMAGE"])
    b.cleanups.append(compose.down)
    b.built_labels.append(compose.project)
    sides = {
        "pulumi": (dev.up, dev.destroy),
        "raw": (lambda: raw.up(tag=b.name(f"cold-{run_index}")), raw.down),
        "compose": (compose.up, compose.down),
    }
    for run_index in range(b.runs):
        for side, (up, down) in sides.items():
            b.stamp_app(f"cold-{side}-{run_index}")
            b.timed(f"cold.{side}", up, reset=down)
            if side == "pulumi":
                b.seed_images(dev)
            down()


def empty_stack(b: Bench) -> PulumiCli:
    """A project whose program declares nothing, on the same language host and venv."""
    directory = b.workdir / "empty"
    (directory / ".state").mkdir(parents=True)
    (directory / "Pulumi.yaml").write_text(
        "name: bench-empty\nruntime:\n  name: python\n  options: {toolchain: pip, virtualenv: venv}\n"
    )
    (directory / "__main__.py").write_text('"""Declares nothing: what remains is Pulumi\'s own cost."""\n')
    (directory / "venv").symlink_to(ROOT / "venv")
    env = {"PULUMI_BACKEND_URL": f"file://{directory / '.state'}"}
    auto.create_stack(
        b.name("empty"), work_dir=str(directory), opts=auto.LocalWorkspaceOptions(work_dir=str(directory), env_vars=env)
    )
    return PulumiCli(directory, env, b.name("empty"))


def bench_steady(b: Bench) -> None:
    """Sections 2 and 3: no-op preview/up against Pulumi's floor, then one changed source file."""
    stack = b.dev_stack("steady")
    dev, raw = b.pulumi(stack), b.raw_app()
    b.stamp_app("steady")
    dev.up()
    b.seed_images(dev)
    raw.up(tag=b.name("steady"))

    for _ in range(b.runs):
        b.figures.time("noop.preview", lambda: dev.preview("--expect-no-changes"))
        b.figures.time("noop.up", lambda: dev.up())
        assert set(dev.last_changes()) == {"same"}, dev.last_changes()
        result = b.figures.time("noop.up.automation", stack.up)
        assert set(result.summary.resource_changes) == {"same"}, result.summary.resource_changes
    empty = empty_stack(b)
    for _ in range(b.runs):
        b.figures.time("empty.preview", empty.preview)

    web = next(service for service in b.services if service.name == "web")
    for run_index in range(b.runs):
        before = container_ids(b, stack.name)
        b.stamp_app(f"edit-pulumi-{run_index}", services=("web",))
        b.timed("edit.pulumi", dev.up)
        after = container_ids(b, stack.name)
        assert after["redis"] == before["redis"] and after["web"] != before["web"], (before, after)
        b.stamp_app(f"edit-raw-{run_index}", services=("web",))
        b.timed("edit.raw", lambda: raw.redeploy(web, tag=b.name(f"edit-{run_index}")))
    dev.destroy()
    raw.down()


def bench_kubernetes(b: Bench) -> None:
    """Section 4: the same digests on the cluster; distinct namespaces, fresh each run."""
    images = ensure_images(b)
    staging = b.pulumi(
        b.stack(
            "staging",
            "staging",
            config={
                "images": json.dumps(images),  # no build: the images the dev stack pushed, like the manifests
                "kubernetes": json.dumps({"namespace": b.name("k8s-pulumi"), "serviceType": "NodePort"}),
            },
        )
    )

    def kubectl_app(what: str) -> KubectlApp:
        app = KubectlApp(b.name(what), images, b.registry, replicas=2)
        b.cleanups.append(app.down)
        return app

    # Untimed: the node pulls the images once, so no side pays for the first pull.
    warm_up = kubectl_app("k8s-warm-up")
    warm_up.up()
    warm_up.down()
    for run_index in range(b.runs):
        b.figures.time("k8s.pulumi", staging.up)
        staging.destroy()
        app = kubectl_app(f"k8s-kubectl-{run_index}")
        b.figures.time("k8s.kubectl", app.up)
        app.down()


def scale_spec(count: int, image: str) -> dict:
    """`count` small Redis services: the first built and published, the others by digest."""
    # Redis writes its append-only file under /data: without a volume it needs a writable root.
    common = {"port": 6379, "health": ["redis-cli", "ping"], "user": 10002, "memory": 32, "cpu": 0.1, "readOnly": False}
    return {
        "svc0": {**common, "build": "app/redis", "publish": 6379},
        **{f"svc{index}": {**common, "image": image} for index in range(1, count)},
    }


def bench_scale(b: Bench) -> None:
    """Section 5: preview and up of fresh stacks with 1, 10 and 50 services; the same services by
    hand at 10 and 50."""
    image = ensure_images(b)["redis"]
    for count in SCALES:
        spec = scale_spec(count, image)
        stack = b.pulumi(
            b.stack(
                "dev", f"scale{count}", config={"services": json.dumps(spec), "portOffset": str(free_port() - 6379)}
            )
        )
        raw = b.raw_app(f"scale{count}", b.parse_services(spec)) if count in RAW_SCALES else None
        for run_index in range(b.runs):
            b.figures.time(f"scale{count}.preview", stack.preview)
            b.timed(f"scale{count}.up", stack.up, reset=stack.destroy)
            assert set(stack.last_changes()) == {"create"}, stack.last_changes()
            stack.destroy()
            if raw is not None:
                b.timed(f"scale{count}.raw", lambda: raw.up(tag=b.name(f"scale-{run_index}")), reset=raw.down)
                raw.down()


def set_version(b: Bench, version: str) -> str:
    """Changes the version web reports (one line of server.py), as a developer's edit would."""
    edit_app_version(b.project, version)
    return version


def wait_for_version(url: str, version: str) -> None:
    """Until the service at `url` answers with `version` (polled every 0.05 s)."""

    def answers() -> bool:
        status, document = get_json(url + "/")
        return status == 200 and document.get("version") == version

    wait_for(answers, timeout=180, interval=0.05, what=f"version {version} at {url}")


def bench_dev(b: Bench) -> None:
    """Section 6: save -> the new version answering. `make dev`'s loop (devtools) on a dev stack,
    then the same edit by hand (build, push, replace) and under Compose (rebuild one service)."""
    stack = b.dev_stack("devloop")
    cli = b.pulumi(stack)
    b.stamp_app("devloop")
    loop = OutputWatcher(
        [str(ROOT / "venv/bin/python"), "-m", "devtools", "dev", "--stack", stack.name],
        cwd=b.project.directory,
        env={**b.project.env, "PYTHONPATH": str(ROOT)},
    )
    b.cleanups.append(loop.stop)
    loop.wait_for("[dev] watching", timeout=600)
    url = cli.outputs()["url"]
    for run_index in range(b.runs):
        version = f"{b.id}-dev-{run_index}"
        before, mark = container_ids(b, stack.name), loop.mark()
        b.figures.time("dev.pulumi", lambda: wait_for_version(url, set_version(b, version)))
        loop.wait_for("[dev] web is live", timeout=60, since=mark)
        after = container_ids(b, stack.name)
        assert after["redis"] == before["redis"] and after["web"] != before["web"], (before, after)
    loop.stop()  # before the other sides edit the same files
    cli.destroy()

    raw = b.raw_app()
    raw.up(tag=b.name("dev-raw"))
    web = next(service for service in b.services if service.name == "web")
    for run_index in range(b.runs):
        version = f"{b.id}-raw-{run_index}"
        b.figures.time(
            "dev.raw",
            lambda: (
                set_version(b, version),
                raw.redeploy(web, tag=b.name(f"dev-{run_index}"), wait=False),
                wait_for_version(raw.url(web), version),
            ),
        )
    raw.down()

    compose = ComposeRun(b.cli, b.name("compose-dev"), b.app_dir, free_port(), b.build_args["BASE_IMAGE"])
    b.cleanups.append(compose.down)
    b.built_labels.append(compose.project)
    compose.up()
    for run_index in range(b.runs):
        version = f"{b.id}-compose-{run_index}"
        b.figures.time(
            "dev.compose",
            lambda: (set_version(b, version), compose.rebuild("web"), wait_for_version(compose.url, version)),
        )
    compose.down()


def machine_info() -> dict:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )

    def version(*command: str) -> str:
        return run(command, check=False).strip()

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": int(meminfo["MemTotal"].split()[0]) // 1024,
        "kernel": platform.release(),
        "docker": version("docker", "version", "--format", "{{.Server.Version}}"),
        "docker_compose": version("docker-compose", "version", "--short"),
        "pulumi": version("pulumi", "version"),
        "kubernetes": json.loads(version("kubectl", "version", "-o", "json") or "{}")
        .get("serverVersion", {})
        .get("gitVersion"),
    }


def render_table(results: dict) -> str:
    machine = results["machine"]
    lines = [
        f"Run of {machine['date']} ({results['runs']} runs each): {machine['nproc']} cores ({machine['cpu']}), "
        f"{machine['memory_mib']} MiB, Linux {machine['kernel']}, Docker {machine['docker']}, "
        f"docker-compose {machine['docker_compose']}, Pulumi {machine['pulumi']}, Kubernetes {machine['kubernetes']}.",
        "",
        "| figure | what it measures | runs (s) | min (s) | median (s) |",
        "|---|---|---|---|---|",
    ]
    for key, description in DESCRIPTIONS.items():
        figure = results["figures"].get(key)
        if figure:
            runs = ", ".join(f"{seconds:.2f}" for seconds in figure["runs"])
            lines.append(f"| `{key}` | {description} | {runs} | {figure['min']:.2f} | {figure['median']:.2f} |")
    lines += ["", "| ratio | median | min | goal |", "|---|---|---|---|"]
    for key, ratio in results["ratios"].items():
        goal = GOALS.get(key)
        verdict = "" if goal is None else f"<= {goal:.1f}x: {'met' if ratio['median'] <= goal else 'not met'}"
        lines.append(f"| {key} | {ratio['median']:.2f}x | {ratio['min']:.2f}x | {verdict} |")
    for group, phases in results.get("phases", {}).items():
        lines += ["", f"| {group} | median (s) |", "|---|---|"]
        lines += [f"| {phase} | {seconds:.2f} |" for phase, seconds in phases.items()]
    return "\n".join(lines)


def write_results(results: dict) -> None:
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    readme = BENCH_DIR / "README.md"
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    text = readme.read_text()
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    readme.write_text(f"{head}{begin}\n{render_table(results)}\n{end}{tail}")


SECTION_FUNCTIONS = {
    "unit": bench_unit,
    "cold": bench_cold,
    "steady": bench_steady,
    "kubernetes": bench_kubernetes,
    "scale": bench_scale,
    "dev": bench_dev,
    "phases": bench_phases,
}
assert tuple(SECTION_FUNCTIONS) == SECTIONS


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of every figure (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run of each: a smoke check")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ", ".join(SECTIONS)
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the results, leave results.json and README alone"
    )
    args = parser.parse_args(argv)
    sections = [section.strip() for section in args.sections.split(",") if section.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    runs = 1 if args.quick else args.runs

    workdir = Path(tempfile.mkdtemp(prefix="cloudservice-bench-"))
    bench = Bench(runs, workdir)
    log(f"bench {bench.id}: {runs} run(s) of {', '.join(sections)} in {workdir}")
    try:
        for section, measure in SECTION_FUNCTIONS.items():  # in order: later ones reuse what `cold` pushed
            if section in sections:
                measure(bench)
    finally:
        log("cleaning up")
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)

    figures = bench.figures
    for key, (numerator, denominator) in RATIOS.items():
        if numerator in figures.figures and denominator in figures.figures:
            figures.ratio(key, numerator, denominator)
    results = {
        "runs": runs,
        "machine": machine_info(),
        "figures": figures.figures,
        "ratios": figures.ratios,
        "phases": bench.phases,
    }
    print(render_table(results))
    if not args.no_write:
        write_results(results)


if __name__ == "__main__":
    main()
