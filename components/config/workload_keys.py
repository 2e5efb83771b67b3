"""The app spec's workload keys (`services.<name>.<key>`, `jobs.<name>.<key>`), one entry each: which
workloads take it, how its value is read and checked (bounds included), and its one-line doc.

The key lists, the README's key table and the reading loop (workloads.py) all come from `KEYS`; the
defaults live once, on the spec's dataclasses, and the table shows them from there. A new key is one
entry here (plus its reader in key_readers.py when it is not a plain number, flag or choice), its spec
field, and the code of each target. `python -m components.config` prints the README's table.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..conventions import SECRETS_DIR
from ..spec import DEFAULT_USER, JobSpec, ServiceSpec
from . import key_readers as read
from .key_readers import RESTART_POLICIES, ReadKey

SERVICES, JOBS = "services", "jobs"


@dataclass(frozen=True)
class Key:
    name: str
    doc: str
    read: Optional[ReadKey]
    """Reads the value written at `key` into the spec field's value, reporting problems to `ctx.r`.
    A key with shorthands gets the workload's key and {written key: value} of itself and them.
    None for a shorthand: the key it is a shorthand of reads it."""
    takes: str
    """What the value is, in the README."""
    sections: tuple[str, ...] = (SERVICES, JOBS)
    shorthands: tuple[str, ...] = ()
    default: Optional[str] = None
    """The README's default where the spec field's own does not say it."""

    @property
    def field(self) -> str:
        """The spec field the key fills: its name in snake case, units spelled where the key leaves them out."""
        snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), self.name)
        return {"memory": "memory_mb", "shm_size": "shm_size_mb"}.get(snake, snake)


def _key(name: str, doc: str, reader: tuple[Optional[ReadKey], str], **options: Any) -> Key:
    """A key read by `reader` (a function and what it takes, as key_readers gives them)."""
    return Key(name, doc, reader[0], reader[1], **options)


SERVICE_ONLY = (SERVICES,)

KEYS: tuple[Key, ...] = (
    _key(
        "build",
        "a Docker build: a context directory, or {context, dockerfile, target, args, platform}",
        (read.build, "path \\| object"),
    ),
    _key("image", "an existing image (tag or digest) to run instead of a build", (read.image, "image reference")),
    _key("command", "replaces the image's ENTRYPOINT (Compose `entrypoint`)", (read.argv, "list")),
    _key("args", "replaces the image's CMD (Compose `command`)", (read.argv, "list")),
    _key("env", "environment variables", (read.env, "object")),
    _key("secretEnv", "environment variable -> secret config key", (read.secret_env, "object")),
    _key("secretFiles", f"{SECRETS_DIR}/<file> -> secret config key, mounted read-only", (read.secret_files, "object")),
    _key(
        "files",
        "container path -> project file, mounted read-only; a change rolls the workload",
        (read.files, "object"),
    ),
    _key("links", "services it connects to: `<NAME>_HOST`/`_PORT` variables, started first", (read.names, "list")),
    _key(
        "dependsOn",
        "names (started), or name -> `started` \\| `healthy` \\| `completed`",
        (read.depends_on, "list \\| object"),
    ),
    _key(
        "user",
        "numeric non-root uid[:gid], or `image` for the image's own user (opt-out)",
        (read.user, "uid[:gid] \\| `image`"),
        default=f"`{DEFAULT_USER}`",
    ),
    _key("readOnly", "read-only root file system (`false`: an opt-out)", read.flag()),
    _key("capabilities", "Linux capabilities added back after dropping all (opt-out)", (read.capabilities, "list")),
    _key("cpu", "CPU limit in cores", read.number(0.01, 64)),
    _key(
        "cpuRequest",
        "CPU request (Kubernetes scheduling), at most the limit",
        read.number(0.001, 64),
        default=f"`{ServiceSpec.cpu_request}` (at most `cpu`)",
    ),
    _key("memory", "memory limit (and request) in MiB", read.integer(6, 1024 * 1024)),
    _key("labels", "Docker labels, Kubernetes annotations", (read.labels, "object")),
    _key("networks", "the stack's `networks` it joins (default: the app's one network)", (read.networks, "list")),
    _key("workingDir", "the process's working directory", read.optional((read.absolute_path, "path"))),
    _key("tty", "allocate a terminal", read.flag()),
    _key("stdinOpen", "keep stdin open", read.flag()),
    _key("init", "PID 1 reaps zombies: Docker `--init`, Kubernetes `shareProcessNamespace`", read.flag()),
    _key(
        "extraHosts", "host name -> IP address(es) in /etc/hosts (Kubernetes hostAliases)", (read.extra_hosts, "object")
    ),
    _key("sysctls", "namespaced kernel settings", (read.sysctls, "object")),
    _key("ulimits", "name -> limit or {soft, hard} (Docker only: notice on Kubernetes)", (read.ulimits, "object")),
    _key("shmSize", "MiB of /dev/shm", read.integer(1, 1024 * 1024)),
    _key("tmpfs", "writable in-memory paths, besides /tmp", (read.absolute_paths, "list")),
    _key("ephemeral", "writable scratch paths that live as long as the container", (read.absolute_paths, "list")),
    _key(
        "stopSignal",
        "the signal that asks the process to stop (Docker; notice on Kubernetes)",
        read.optional((read.signal, "signal name")),
    ),
    _key("stopGracePeriod", "seconds between the stop signal and SIGKILL", read.optional(read.integer(0, 3600))),
    _key(
        "port", "one container port: shorthand of `ports: {main: {port}}`", (None, "int 1–65535"), sections=SERVICE_ONLY
    ),
    _key(
        "publish",
        "with `port`: its host port on Docker (+ `portOffset`), Service port on Kubernetes",
        (None, "int 0–65535"),
        sections=SERVICE_ONLY,
    ),
    _key(
        "ports",
        "name -> {port, publish, protocol}; the first is the main one (URL, HTTP health)",
        (read.ports, "object"),
        shorthands=("port", "publish"),
        sections=SERVICE_ONLY,
    ),
    _key(
        "replicas",
        "copies of a stateless service (0 or 1 with a writable volume)",
        read.integer(0, 100),
        sections=SERVICE_ONLY,
    ),
    _key("volume", "shorthand of `volumes: {data: ...}`", (None, "object"), sections=SERVICE_ONLY),
    _key(
        "volumes",
        "name -> {path, size, readOnly}: a Docker volume, a PVC on Kubernetes",
        (read.volumes, "object"),
        shorthands=("volume",),
        sections=SERVICE_ONLY,
    ),
    _key(
        "health",
        "`/path` (HTTP, main port), a command, or {http \\| command, port, interval, timeout, retries, startPeriod}",
        (read.health, "path \\| list \\| object"),
        sections=SERVICE_ONLY,
    ),
    _key(
        "autoscale",
        "{max, cpu, memory, scaleDownSeconds}: scale on load from `replicas` up to `max` (Kubernetes; Docker runs `replicas`)",
        (read.autoscale, "object"),
        sections=SERVICE_ONLY,
    ),
    _key(
        "aliases",
        "more DNS names of the service (Docker network aliases, Kubernetes Services)",
        (read.aliases, "list"),
        sections=SERVICE_ONLY,
    ),
    _key(
        "restart",
        "Docker's restart policy; Kubernetes always restarts",
        read.choice(RESTART_POLICIES),
        sections=SERVICE_ONLY,
    ),
    _key(
        "sync",
        "`make dev`'s live update (Compose `develop.watch`): [{path (in the build context), target, action: "
        "`sync` \\| `sync+restart` \\| `rebuild`, ignore: [globs]}]; syncing needs `readOnly: false`",
        (read.sync, "list"),
        sections=SERVICE_ONLY,
    ),
    _key(
        "timeout", "seconds a job may run (Kubernetes activeDeadlineSeconds)", read.integer(1, 86400), sections=(JOBS,)
    ),
)


def keys_of(section: str) -> tuple[Key, ...]:
    return tuple(key for key in KEYS if section in key.sections)


SERVICE_KEYS = tuple(key.name for key in keys_of(SERVICES))
JOB_KEYS = tuple(key.name for key in keys_of(JOBS))


def default_shown(key: Key) -> str:
    """The default as the spec's dataclass defines it (the README's column)."""
    if key.default is not None:
        return key.default
    fields = {f.name: f for f in dataclasses.fields(ServiceSpec if SERVICES in key.sections else JobSpec)}
    spec_field = fields.get(key.field)
    if spec_field is None:
        return "—"
    value = spec_field.default_factory() if spec_field.default is dataclasses.MISSING else spec_field.default
    if value is None or value == () or value == {}:
        return "—"
    return f"`{str(value).lower()}`" if isinstance(value, bool) else f"`{value}`"


def key_table() -> str:
    """The README's table of workload keys."""
    rows = ["| key | services | jobs | takes | default | meaning |", "|---|---|---|---|---|---|"]
    for key in KEYS:
        where = " | ".join("✓" if section in key.sections else "" for section in (SERVICES, JOBS))
        rows.append(f"| `{key.name}` | {where} | {key.takes} | {default_shown(key)} | {key.doc} |")
    return "\n".join(rows) + "\n"
