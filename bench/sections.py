"""The sections unit, cold, steady, kubernetes, scale and dev, each timing its figures into the Bench
(the phases section is bench/phases.py)."""

from __future__ import annotations

import json
import subprocess

import yaml
from pulumi import automation as auto

from support.processes import OutputWatcher
from support.testing import ROOT, edit_app_version, free_port, get_json, wait_for

from .cli import PulumiCli
from .harness import Bench, container_ids, ensure_images
from .raw import ComposeRun, KubectlApp

SCALES = (1, 10, 50)
RAW_SCALES = (10, 50)


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


def dev_loop(b: Bench, stack: auto.Stack, figure: str, replaced: bool) -> None:
    """`make dev`'s loop (devtools) on `stack`: each run edits web's version and times it answering;
    web's container is `replaced` (a rebuild and roll) or kept (a live update); redis is untouched."""
    loop = OutputWatcher(
        [str(ROOT / "venv/bin/python"), "-m", "devtools", "dev", "--stack", stack.name],
        cwd=b.project.directory,
        env={**b.project.env, "PYTHONPATH": str(ROOT)},
    )
    b.cleanups.append(loop.stop)
    loop.wait_for("[dev] watching", timeout=600)
    url = b.pulumi(stack).outputs()["url"]
    for run_index in range(b.runs):
        version = f"{b.id}-{figure}-{run_index}"
        before, mark = container_ids(b, stack.name), loop.mark()
        b.figures.time(figure, lambda: wait_for_version(url, set_version(b, version)))
        loop.wait_for("[dev] web is live", timeout=60, since=mark)
        after = container_ids(b, stack.name)
        assert after["redis"] == before["redis"] and (after["web"] != before["web"]) == replaced, (before, after)
    loop.stop()  # before the other sides edit the same files


def bench_dev(b: Bench) -> None:
    """Section 6: save -> the new version answering. `make dev`'s loop (devtools) on a dev stack, with
    a rebuild and roll, then with live update (web's `sync` rule), then the same edit by hand (build, push, replace) and under Compose (rebuild one service)."""
    stack = b.dev_stack("devloop")
    cli = b.pulumi(stack)
    b.stamp_app("devloop")
    dev_loop(b, stack, "dev.pulumi", replaced=True)
    cli.destroy()

    # Live update: web's server.py synced into its container, which restarts (no build, push or up).
    services = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["services"]["value"]
    services["web"].update(readOnly=False, sync=[{"path": "app/web", "target": "/app", "action": "sync+restart"}])
    stack = b.stack("dev", "devlive", config={"portOffset": str(free_port() - 8080), "services": json.dumps(services)})
    cli = b.pulumi(stack)
    dev_loop(b, stack, "dev.live", replaced=False)
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
