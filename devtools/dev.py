"""`make dev`: the stack follows the sources. Every save in a service's build context rebuilds and
rolls that service only (its content tag changed; every other service stays `same`) with the same
`pulumi up` a user types, then prints the service's URL once the new version answers. A change to the
program or the stack's config updates the whole stack.

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

from components.image import Engine, content_tag
from components.spec import BuildSpec

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
        """What the stack deployed: its outputs, and per service the build and the tag it has."""
        self.outputs = self.stack.outputs()
        images = self.outputs.get("images") or {}
        self.builds = {
            service_of(build.repository, images) or build.repository: build for build in self.stack.image_builds()
        }

    def changed(self) -> list[str]:
        """Services whose build context no longer matches the tag deployed, and PROGRAM."""
        changed = [PROGRAM] if self.program_hash() != self.program else []
        for service, build in sorted(self.builds.items()):
            spec = BuildSpec(context=build.context, dockerfile=build.dockerfile, target=build.target, args=build.args)
            if content_tag(spec, self.engine.base_image_ids(spec)) != build.tag:
                changed.append(service)
        return changed

    def update(self, changed: list[str], saved: float) -> None:
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
            return f"{service} rolled, ready {time.monotonic() - saved:.1f}s after the save"
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
