"""Live update for `make dev` (Compose's `develop.watch`, Tilt's live_update): a save under a service's
`sync` rule is copied into its running containers instead of rebuilding and rolling it, and with
`sync+restart` the process restarts on the new files (Docker only: a restarted Kubernetes container
starts from its image, so there the save rebuilds and rolls).

What was synced is recorded per stack (LiveRecord), keyed by the containers it went into, so that
`make status` can say a service runs files its image does not have until the next `pulumi up` bakes
them; a replaced container (a new image, a new pod, a Kubernetes restart) drops out by itself.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from components.spec import SyncSpec

from .stack import Stack

FileState = tuple[int, bytes]
"""A file of a build context: (permission bits, SHA-256)."""


def rules_of(outputs: dict) -> dict[str, tuple[SyncSpec, ...]]:
    """The `sync` output of the stack: service -> its rules, paths relative to the project."""
    return {
        service: tuple(
            SyncSpec(path=rule["path"], target=rule.get("target"), action=rule["action"], ignore=tuple(rule["ignore"]))
            for rule in rules
        )
        for service, rules in (outputs.get("sync") or {}).items()
    }


@dataclass
class SyncPlan:
    """What one save of a service's files does without a rebuild."""

    copies: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Container path -> (mode, the file on disk)."""
    deletes: list[str] = field(default_factory=list)
    restart: bool = False

    def archive(self) -> bytes:
        """A tar of the copies, named from / (root-owned, as `COPY` leaves them; dated now, so
        reloaders that watch modification times see the change)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for target, (mode, source) in sorted(self.copies.items()):
                data = Path(source).read_bytes()
                info = tarfile.TarInfo(target.lstrip("/"))
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def plan(
    rules: tuple[SyncSpec, ...],
    context: str,
    dockerfile: str,
    project_dir: Path,
    running: dict[str, FileState],
    now: dict[str, FileState],
) -> tuple[Optional[SyncPlan], str]:
    """The sync of the files of `context` that differ between what runs and what is on disk, or None
    and why the save rebuilds: a file no sync rule covers (the Dockerfile, a dependency file), a
    `rebuild` rule, or a change Docker sees beyond the files (build arguments, a base image)."""
    changed = sorted(path for path in running.keys() | now.keys() if running.get(path) != now.get(path))
    if not changed:
        return None, "the build changed beyond its files"
    result = SyncPlan()
    for inside_context in changed:
        if inside_context in (dockerfile, ".dockerignore"):
            return None, f"{inside_context} changed"
        relative = os.path.relpath(os.path.join(context, inside_context), project_dir)
        covering = [(rule, inside) for rule in rules if (inside := rule.covers(relative)) is not None]
        if not covering or any(rule.action == "rebuild" for rule, _ in covering):
            return None, f"{relative} is {'not under a sync path' if not covering else 'under a rebuild path'}"
        rule, inside = covering[0]
        target = rule.container_path(inside)
        if inside_context in now:
            result.copies[target] = (now[inside_context][0], os.path.join(context, inside_context))
        else:
            result.deletes.append(target)
        result.restart |= rule.action == "sync+restart"
    return result, ""


class LiveRecord:
    """What `make dev` synced into which containers, per service: a file per stack in the user's state
    directory (it holds container IDs and container paths, nothing secret)."""

    def __init__(self, stack: Stack):
        state = Path(os.environ.get("CLOUDSERVICE_STATE", Path.home() / ".local/state/cloudservice"))
        self.path = state / "live" / f"{stack.project}-{stack.name}.json"

    def read(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def add(self, service: str, instances: set[str], files: list[str]) -> None:
        record = self.read()
        entry = record.get(service) or {"instances": [], "files": []}
        if not set(entry["instances"]) & instances:  # other containers now: what went into the old ones is gone
            entry = {"instances": [], "files": []}
        entry["instances"] = sorted(set(entry["instances"]) | instances)
        entry["files"] = sorted(set(entry["files"]) | set(files))
        record[service] = entry
        self.write(record)

    def clear(self) -> None:
        """After a `pulumi up`: every image was built from the files on disk, which is what runs."""
        self.path.unlink(missing_ok=True)

    def write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True))
        temporary.replace(self.path)

    def live_updated(self, service: str, running: set[str]) -> list[str]:
        """The files synced into the running containers of the service (none once they were replaced)."""
        entry = self.read().get(service)
        return entry["files"] if entry and set(entry["instances"]) & running else []
