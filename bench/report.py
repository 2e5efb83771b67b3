"""The results: what each figure measures, the ratios and their goals, the machine they ran on, and
their tables, written to bench/results.json and bench/README.md (and drawn to bench/results.png by
bench/chart.py)."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

from .raw import BENCH_DIR, run
from .sections import RAW_SCALES, SCALES

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
    "dev.live": "`make dev` running, web with a `sync+restart` rule: the same edit copied into its container, "
    "restarted -> the new version answers",
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
    "dev save-to-live/raw": ("dev.live", "dev.raw"),  # our best loop: live update
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
    from .chart import write_chart  # here: chart.py reads GOALS from this module

    write_chart(results)
