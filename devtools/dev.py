"""`make dev`: the stack follows the sources. Every save in a service's build context rebuilds and
rolls that service only (its content tag changed; every other service stays `same`) with the same
`pulumi up` a user types, then prints the service's URL once the new version answers. A change to the
program or the stack's config updates the whole stack.

A service with `sync` rules (devtools/live.py) is live-updated instead when a save only touches
files those rules cover: they are copied into its running containers (and the process restarted for
`sync+restart`), with no build, push or `pulumi up`.

The file watcher is `pulumi watch`'s own helper, pulumi-watch (built by `make toolchain`): it prints
a line per burst of changes; the loop then compares content tags with the ones deployed, so editor
noise, ignored files and saves that change nothing never start an update.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from components.image import Engine, content_tag, context_files
from components.spec import BuildSpec, SyncSpec

from .live import FileState, LiveRecord, plan, rules_of
from .runtime import DockerRuntime, KubernetesRuntime, runtime_for
from .stack import ImageBuild, Stack, StackError, service_of

PROGRAM = "the program or the stack config"
LIVE_TIMEOUT = 60
WATCHER_SETUP = 1.0  # seconds pulumi-watch takes to watch every path (it does not say when it does)


def watcher_binary() -> str:
    """Where the CLI looks for it too: on PATH, else beside the `pulumi` executable."""
    found = shutil.which("pulumi-watch")
    beside_cli = Path(shutil.which("pulumi") or "pulumi").resolve().parent / "pulumi-watch"
    if found or beside_cli.is_file():
        return found or str(beside_cli)
    raise StackError("pulumi-watch not found beside the pulumi CLI: run `make toolchain`")


def answering(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


class DevLoop:
    def __init__(self, stack: Stack, out: TextIO = sys.stdout):
        self.stack, self.out = stack, out
        self.program_files = [
            stack.project_dir / name
            for name in (
                "Pulumi.yaml",
                f"Pulumi.{stack.name}.yaml",
                f".stacks/Pulumi.{stack.name}.yaml",
                "__main__.py",
                "components",
            )
        ]  # the stack's config: the team's file and your own (stackConfigDir)
        self.builds: dict[str, ImageBuild] = {}
        self.engine = Engine(stack.config("dockerHost"))
        self.outputs: dict = {}
        self.program = self.program_hash()
        self.rules: dict[str, tuple[SyncSpec, ...]] = {}
        self.running: dict[str, dict[str, FileState]] = {}
        """Per service with sync rules: the files of its build context its containers run now."""
        self.live_tags: dict[str, str] = {}
        """The content tag of what a live-updated service runs now (its image's plus the synced files)."""
        self.record = LiveRecord(stack)
        self.runtime: Optional[DockerRuntime | KubernetesRuntime] = None

    def say(self, message: str) -> None:
        self.out.write(f"[dev] {message}\n")
        self.out.flush()

    def program_hash(self) -> str:
        digest = hashlib.sha256()
        for root in self.program_files:
            for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
                if path.is_file():
                    digest.update(f"{path}\0".encode() + path.read_bytes())
        return digest.hexdigest()

    def refresh(self) -> None:
        """What the stack deployed (after an up: every image built from the files on disk, so nothing
        runs live-updated): its outputs, per service the build and the tag it has, the sync rules."""
        self.outputs = self.stack.outputs()
        images = self.outputs.get("images") or {}
        self.builds = {
            service_of(build.repository, images) or build.repository: build for build in self.stack.image_builds()
        }
        self.rules = {service: rules for service, rules in rules_of(self.outputs).items() if service in self.builds}
        self.running = {service: context_files(self.build_spec(service)) for service in self.rules}
        self.live_tags = {}
        self.record.clear()
        if self.rules and self.runtime is None:  # ready before the first save: it asks the stack's config
            self.runtime = runtime_for(self.stack, self.outputs)

    def build_spec(self, service: str) -> BuildSpec:
        build = self.builds[service]
        return BuildSpec(context=build.context, dockerfile=build.dockerfile, target=build.target, args=build.args)

    def content_tag(self, service: str, files: Optional[dict[str, FileState]] = None) -> str:
        spec = self.build_spec(service)
        return content_tag(spec, self.engine.base_image_ids(spec), files)

    def changed(self) -> list[str]:
        """Services whose build context no longer matches what runs, and PROGRAM."""
        changed = [PROGRAM] if self.program_hash() != self.program else []
        for service, build in sorted(self.builds.items()):
            if self.content_tag(service) != self.live_tags.get(service, build.tag):
                changed.append(service)
        return changed

    def live_update(self, service: str, saved: float) -> bool:
        """Syncs the service's saved files into its running containers; False when the save needs a
        rebuild instead (said why)."""
        now = context_files(self.build_spec(service))
        build = self.builds[service]
        sync, why = plan(
            self.rules[service], build.context, build.dockerfile, self.stack.project_dir, self.running[service], now
        )
        if sync is not None and sync.restart and self.outputs["target"] != "docker":
            sync, why = None, "sync+restart: a restarted Kubernetes container starts from its image"
        if sync is None:
            self.say(f"{service}: rebuilding ({why})")
            return False
        files = len(sync.copies) + len(sync.deletes)
        self.say(
            f"{service}: syncing {files} file{'s' if files != 1 else ''}" + (", restarting" if sync.restart else "")
        )
        try:
            instances = self.runtime.copy_in(service, sync.archive(), sync.deletes)
            if sync.restart:
                self.runtime.restart(service)
        except StackError as error:
            self.say(f"{service}: the sync failed ({error}); rebuilding instead")
            return False
        if not instances:
            self.say(f"{service}: no running container to sync into; rebuilding instead")
            return False
        self.running[service] = now
        self.live_tags[service] = self.content_tag(service, now)  # of the files synced: a later save is new
        self.record.add(service, instances, [*sync.copies, *sync.deletes])
        self.say(self.live_message(service, saved))
        return True

    def update(self, changed: list[str], saved: float) -> None:
        if PROGRAM not in changed:
            changed = [s for s in changed if not (s in self.rules and self.live_update(s, saved))]
            if not changed:
                return
            changed = sorted({*changed, *self.live_tags})  # the up builds live-updated services from disk too
        self.say(
            f"{', '.join(changed)} changed: "
            + ("updating the stack" if PROGRAM in changed else "rebuilding and rolling it")
        )
        self.program = self.program_hash()
        before = {key: dict(self.outputs.get(key) or {}) for key in ("images", "digests")}
        if subprocess.run(self.stack.up_command(), cwd=self.stack.project_dir).returncode != 0:
            self.say("the update failed: fix it and save again")
            self.program = None  # retried on the next save, whatever it changes
            return
        if PROGRAM in changed:  # anything may have changed, URLs too: ask the stack which services rolled
            self.refresh()
            changed = sorted(
                service
                for service in self.outputs.get("images") or {}
                if any((self.outputs.get(key) or {}).get(service) != before[key].get(service) for key in before)
            )
        for service in changed:  # URLs stay while only sources change: no need to wait for the outputs
            self.say(self.live_message(service, saved))
        if not changed:
            self.say(f"up to date ({time.monotonic() - saved:.1f}s after the save)")
        self.refresh()

    def live_message(self, service: str, saved: float) -> str:
        url = (self.outputs.get("urls") or {}).get(service)
        if url is None:
            return f"{service} updated, ready {time.monotonic() - saved:.1f}s after the save"
        deadline = time.monotonic() + LIVE_TIMEOUT
        while not answering(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        return f"{service} is live at {url} ({time.monotonic() - saved:.1f}s after the save)"

    def catch_up(self, saved: float) -> None:
        changed = self.changed()
        while changed:
            self.update(changed, saved)
            changed = self.changed() if self.program is not None else []
            saved = time.monotonic()

    def watch_paths(self) -> list[str]:
        paths = {build.context for build in self.builds.values()}
        paths.update(str(path) for path in self.program_files if path.exists())
        return sorted(paths)

    def run(self) -> None:
        self.say(f"bringing stack {self.stack.name} up to date")
        if subprocess.run(self.stack.up_command(), cwd=self.stack.project_dir).returncode != 0:
            raise StackError("the first update failed: fix it and run `make dev` again")
        self.refresh()
        for service, url in sorted((self.outputs.get("urls") or {}).items()):
            self.say(f"{service}: {url}")
        paths = self.watch_paths()
        watcher = subprocess.Popen(
            [
                watcher_binary(),
                "--origin",
                str(self.stack.project_dir),
                *(arg for path in paths for arg in ("--watch", path)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(WATCHER_SETUP)
        self.say(f"watching {len(paths)} paths; save a file to roll its service (Ctrl-C to stop)")
        try:
            # Saves made while the watcher started or during an update are taken right away.
            self.catch_up(time.monotonic())
            for _ in watcher.stdout:  # one line per burst of file events
                self.catch_up(time.monotonic())
        finally:
            watcher.terminate()
            watcher.wait()


def dev(stack: Stack, out: Optional[TextIO] = None) -> None:
    DevLoop(stack, out or sys.stdout).run()
