"""Makes a stack whose last `pulumi up` or `destroy` was killed (SIGKILL, an OOM kill, a cancelled CI
job) ready for the next command, which then converges. `make up` and `make destroy` run it first;
after a normal run it only reads the state and returns.

A killed CLI leaves up to four things behind, each handled the way Pulumi's model allows:

0. on a file backend, a cut-off metadata sidecar: the storage layer (gocloud's fileblob) writes the
   state file atomically but its `.attrs` sidecar in place, so a kill in between leaves it empty and
   every later command fails with "failed to load checkpoint: EOF". The sidecar only holds a content
   type and checksum: an unreadable one is removed (read as absent, which the layer allows).
1. its lock on the stack (file backend): removed with `pulumi cancel`, but only when the process
   that took it is gone from this machine. A lock of a running command stays, and the next command
   is refused as usual.
2. its plugins (the providers and the language host), which outlive it and may still be finishing
   the interrupted step: stopped first, so nothing changes behind our back.
3. "pending creates": steps the engine started but never saw finish. What such a step made exists
   but the state does not know it, so re-creating it collides (a container or network name, a
   host port). Each object is found by the physical name recorded in the step and must carry this
   stack's label: containers and networks, which hold no data, are removed and the next `up` makes
   them again; volumes and Kubernetes objects are adopted with `pulumi import` (never deleted: a
   volume or PVC keeps its data). Images and pushes are left: building or pushing again is
   harmless. `pulumi refresh --clear-pending-creates` then drops the pending steps and reconciles
   the rest of the state with what exists (interrupted updates and deletes included).
   (`pulumi refresh --import-pending-creates`, meant for this, drops the steps without adopting
   anything in Pulumi v3.259, hence `pulumi import`.)

Usage: python -m devtools recover [--stack STACK]   (in the project directory, environment of scripts/env.sh)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlparse

import docker
import yaml

from components.conventions import STACK_LABEL

PLUGIN_PREFIXES = ("pulumi-resource-", "pulumi-language-", "pulumi-analyzer-")
# What runs under a Python interpreter: the language host, the program it starts, the dynamic provider
# (ours, dynamic_provider.py, or the SDK's `python -m pulumi.dynamic`).
PYTHON_PLUGINS = ("language_host.py", "program_runner.py", "dynamic_provider.py", "pulumi.dynamic")


def log(message: str) -> None:
    print(f"recover: {message}", file=sys.stderr, flush=True)


def pulumi(*args: str, stack: str) -> str:
    result = subprocess.run(["pulumi", *args, "--stack", stack, "--non-interactive"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pulumi {' '.join(args)} failed:\n{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


# -- 0. the file backend ------------------------------------------------------------------------


def file_backend() -> Optional[Path]:
    """The directory of the state backend when it is a file backend (others keep their own state)."""
    url = json.loads(subprocess.run(["pulumi", "whoami", "--json"], capture_output=True, text=True, check=True).stdout)[
        "url"
    ]
    parsed = urlparse(url)
    return Path(os.path.expanduser(parsed.netloc + parsed.path)) / ".pulumi" if parsed.scheme == "file" else None


def lock_files(project: str, stack: str) -> list[Path]:
    backend = file_backend()
    return sorted((backend / "locks" / "organization" / project / stack).glob("*.json")) if backend else []


def remove_cut_off_sidecars(project: str, stack: str) -> None:
    backend = file_backend()
    if backend is None:
        return
    sidecars = [
        *(backend / "stacks" / project).glob(f"{stack}.json*.attrs"),
        *(backend / "locks" / "organization" / project / stack).glob("*.attrs"),
    ]
    for sidecar in sidecars:
        try:
            json.loads(sidecar.read_text())
        except ValueError:
            log(f"removing {sidecar.name}, cut off by the kill (unreadable, the state cannot load)")
            sidecar.unlink()


# -- 1. the lock ---------------------------------------------------------------------------------


def is_pulumi_process(pid: int) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)") == "pulumi"
    except OSError:
        return False


def holder_is_gone(lock: Path) -> Optional[bool]:
    """True when the command that took `lock` no longer runs, False when it does, None when that
    cannot be known here (taken on another machine)."""
    content = json.loads(lock.read_text())
    if content.get("hostname") != socket.gethostname():
        return None
    return not is_pulumi_process(int(content["pid"]))


def clear_stale_lock(project: str, stack: str) -> bool:
    """Removes the stack's lock when every holder is gone; returns whether there was one."""
    locks = lock_files(project, stack)
    if not locks:
        return False
    verdicts = [holder_is_gone(lock) for lock in locks]
    if not all(verdicts):
        log(f"stack {stack} is locked by a running command or from another machine: left alone")
        return False
    log(f"stack {stack} was locked by a command that no longer runs: removing the lock")
    pulumi("cancel", "--yes", stack=stack)
    return True


# -- 2. the plugins the killed command left running ------------------------------------------------


def is_plugin(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    names = [os.path.basename(arg.decode(errors="replace")) for arg in argv[:4]]
    return any(name.startswith(PLUGIN_PREFIXES) or name in PYTHON_PLUGINS for name in names)


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def runs_under_a_cli(pid: int) -> bool:
    """Whether a pulumi CLI is among the process's ancestors (the program's parent is the language host)."""
    while pid > 1:
        pid = parent_of(pid)
        if is_pulumi_process(pid):
            return True
    return False


def orphaned_plugins(project_dir: Path) -> list[int]:
    """Plugins started in this project whose pulumi CLI is gone: a running command's are its children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if Path(os.readlink(entry / "cwd")) != project_dir or not is_plugin(pid):
                continue
            if not runs_under_a_cli(pid):
                found.append(pid)
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def stop_orphaned_plugins(project_dir: Path) -> None:
    pids = orphaned_plugins(project_dir)
    for pid in pids:
        log(f"stopping plugin pid {pid} left running by the killed command")
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)


# -- 3. the interrupted creates ------------------------------------------------------------------


class Interrupted:
    """One pending create of the state, with what the state knows around it."""

    def __init__(self, operation: dict, resources: dict[str, dict]):
        self.resource = operation["resource"]
        self.urn: str = self.resource["urn"]
        self.type: str = self.resource["type"]
        self.name = self.urn.rsplit("::", 1)[1]
        self.inputs: dict = self.resource.get("inputs") or {}
        provider = self.resource.get("provider", "")
        self.provider_urn = provider.rsplit("::", 1)[0] if provider else ""
        self.provider_inputs: dict = (resources.get(self.provider_urn) or {}).get("inputs") or {}

    def adopt(self, object_id: str, stack: str) -> None:
        """`pulumi import` under the same parent and provider: the URN the program declares."""
        args = ["import", self.type, self.name, object_id, "--yes", "--skip-preview", "--generate-code=false"]
        parent = self.resource.get("parent", "")
        if parent and "::pulumi:pulumi:Stack::" not in parent:  # the stack itself is the default parent
            args += ["--parent", f"parent={parent}"]
        if self.provider_urn:
            args += ["--provider", f"provider={self.provider_urn}"]
        log(f"adopting {self.type} {object_id} into the state ({self.urn})")
        pulumi(*args, stack=stack)


def docker_client(interrupted: Interrupted) -> docker.DockerClient:
    host = interrupted.provider_inputs.get("host")
    return docker.DockerClient(base_url=host) if isinstance(host, str) and host else docker.from_env()


def recover_docker_object(
    interrupted: Interrupted, stack: str, known_ids: set[str], adoptions: list[Callable[[], None]]
) -> None:
    kind = {
        "docker:index/container:Container": "containers",
        "docker:index/network:Network": "networks",
        "docker:index/volume:Volume": "volumes",
    }.get(interrupted.type)
    name = interrupted.inputs.get("name")
    if kind is None or not isinstance(name, str):
        return  # images and pushes: doing them again is harmless
    collection = getattr(docker_client(interrupted), kind)
    try:
        found = collection.get(name)
    except docker.errors.NotFound:
        return
    labels = found.attrs.get("Labels") or found.attrs.get("Config", {}).get("Labels") or {}
    if labels.get(STACK_LABEL) != stack or found.id in known_ids:
        return
    if kind == "volumes":
        adoptions.append(lambda: interrupted.adopt(found.name, stack))
    else:
        log(f"removing {kind[:-1]} {name}, made by the interrupted create of {interrupted.urn}")
        if kind == "containers":
            found.remove(force=True)
        else:
            found.remove()


def recover_kubernetes_object(interrupted: Interrupted, stack: str, adoptions: list[Callable[[], None]]) -> None:
    metadata = interrupted.inputs.get("metadata") or {}
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if interrupted.type == "kubernetes:core/v1:Secret" or not isinstance(name, str):
        return  # a Secret is applied again by the next up (server-side apply adopts it), never read into the state

    def adopt() -> None:
        try:
            interrupted.adopt(f"{namespace}/{name}" if namespace else name, stack)
        except RuntimeError as error:
            if not any(absent in str(error).lower() for absent in ("not found", "does not exist")):
                raise
            log(f"{interrupted.urn}: nothing was created")

    adoptions.append(adopt)


def recover_interrupted_creates(stack: str) -> None:
    deployment = json.loads(pulumi("stack", "export", stack=stack))["deployment"]
    creates = [op for op in deployment.get("pending_operations") or [] if op.get("type") == "creating"]
    if not creates and not deployment.get("pending_operations"):
        return
    resources = {r["urn"]: r for r in deployment.get("resources") or []}
    known_ids = {r["id"] for r in resources.values() if r.get("id")}
    adoptions: list[Callable[[], None]] = []
    for operation in creates:
        interrupted = Interrupted(operation, resources)
        log(f"interrupted create: {interrupted.urn}")
        if interrupted.type.startswith("docker:"):
            recover_docker_object(interrupted, stack, known_ids, adoptions)
        elif interrupted.type.startswith("kubernetes:"):
            recover_kubernetes_object(interrupted, stack, adoptions)
    log("refreshing the state from what exists, without the interrupted creates")
    pulumi("refresh", "--yes", "--skip-preview", "--clear-pending-creates", stack=stack)
    for adopt in adoptions:
        adopt()


def recover(stack: Optional[str] = None) -> None:
    """`python -m devtools recover`: readies `stack` (default: the selected one) of the project in the
    current directory for the next command; a RuntimeError says what could not be done."""
    stack = (
        stack
        or subprocess.run(["pulumi", "stack", "--show-name"], capture_output=True, text=True, check=True).stdout.strip()
    )
    project_dir = Path.cwd().resolve()
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"]
    remove_cut_off_sidecars(project, stack)
    if clear_stale_lock(project, stack) or orphaned_plugins(project_dir):
        stop_orphaned_plugins(project_dir)
    if any(lock_files(project, stack)):
        return  # a command runs: it owns the state
    recover_interrupted_creates(stack)
