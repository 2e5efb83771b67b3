"""How each workload key's value is read and checked: one function per kind of value, reporting every
problem to the context's Reader and returning the spec field's value. The table of keys
(workload_keys.py) says which key is read by which."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from ..conventions import SECRETS_DIR
from ..spec import (
    ANY_HOST_PORT,
    MAIN_PORT,
    SYNC_ACTIONS,
    AutoscaleSpec,
    BuildSpec,
    FileSpec,
    HealthSpec,
    PortSpec,
    SecretFileSpec,
    ServiceSpec,
    SyncSpec,
    VolumeSpec,
)
from .errors import (
    ABSOLUTE_PATH,
    CONFIG_KEY,
    DNS_LABEL,
    FILE_LIMIT,
    QUANTITY,
    Reader,
    as_int,
    decode_json,
    is_image_reference,
    read_argv,
    read_env,
    read_names,
)

CONDITIONS = ("started", "healthy", "completed")

RESTART_POLICIES = ("always", "unless-stopped", "on-failure", "no")

PROTOCOLS = ("tcp", "udp")

# Linux capabilities a service may add back (after dropping all), as Docker and Kubernetes name them.
CAPABILITIES = (
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
)

AUTOSCALE_KEYS = ("max", "cpu", "memory", "scaleDownSeconds")

HEALTH_KEYS = ("http", "port", "command", "interval", "timeout", "retries", "startPeriod")

_PORT_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,13}[a-z0-9])?$")

_SIGNAL = re.compile(r"^SIG[A-Z0-9+-]+$")

_SYSCTL = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_-]+)+$")

_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")

_IP = re.compile(r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*)$")

_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")

_LABEL_NAME = re.compile(r"^[^\s=]+$")

_HEALTH = HealthSpec()


@dataclass
class KeyContext:
    """What a key's reader may consult besides the value written."""

    r: Reader
    base_dir: str
    """The project directory: build contexts and files are relative to it."""
    build_args: Mapping[str, str]
    """The stack's `buildArgs`, which win over a build's own."""
    network_names: frozenset[str]
    read: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Spec field -> value, of the keys of this workload read so far (in table order)."""
    written: frozenset[str] = frozenset()
    """The keys the workload's spec writes."""


ReadKey = Callable[[KeyContext, str, Any], Any]


def integer(low: int, high: int) -> tuple[ReadKey, str]:
    return (lambda ctx, key, raw: ctx.r.integer(key, raw, low, high)), f"int {low}–{high}"


def number(low: float, high: float) -> tuple[ReadKey, str]:
    return (lambda ctx, key, raw: ctx.r.number(key, raw, low, high)), f"number {low}–{high}"


def flag() -> tuple[ReadKey, str]:
    return (lambda ctx, key, raw: ctx.r.boolean(key, raw)), "bool"


def choice(choices: tuple[str, ...]) -> tuple[ReadKey, str]:
    return (lambda ctx, key, raw: ctx.r.choice(key, raw, choices)), " \\| ".join(f"`{c}`" for c in choices)


def build(ctx: KeyContext, key: str, raw: Any) -> Optional[BuildSpec]:
    """A path, or {context, dockerfile, target, args, platform}. The stack's buildArgs apply to every
    build and win over the spec's own (e.g. BASE_IMAGE pointing at a locally built base offline)."""
    r = ctx.r
    spec = r.mapping(key, {"context": raw} if isinstance(raw, str) else raw)
    r.unknown_keys(f"{key}.", spec, ("context", "dockerfile", "target", "args", "platform"))
    context = r.text(f"{key}.context", spec.get("context"), expected="a directory path")
    if context is None:
        return None
    context = os.path.normpath(os.path.join(ctx.base_dir, context))
    dockerfile = spec.get("dockerfile", "Dockerfile")
    if not os.path.isdir(context):
        r.fail(f"{key}.context", "an existing directory", context)
    elif not isinstance(dockerfile, str) or not os.path.isfile(os.path.join(context, dockerfile)):
        r.fail(f"{key}.dockerfile", f"a Dockerfile inside {context}", dockerfile)
    target = spec.get("target")
    if target is not None:
        r.text(f"{key}.target", target, re.compile(r"^[A-Za-z0-9_.-]+$"), "a build stage name")
    args = spec.get("args", {})
    if not isinstance(args, Mapping) or not all(isinstance(v, (str, int, float)) for v in args.values()):
        r.fail(f"{key}.args", "an object of build argument names to values", args)
        args = {}
    merged = {**{k: str(v) for k, v in args.items()}, **ctx.build_args}
    platform = spec.get("platform")
    if platform is not None:
        r.text(f"{key}.platform", platform, _PLATFORM, "a platform such as linux/amd64")
    return BuildSpec(context=context, dockerfile=dockerfile, target=target, args=merged, platform=platform)


def image(ctx: KeyContext, key: str, raw: Any) -> Optional[str]:
    expected = "an image reference such as redis:7 or repo@sha256:<digest>"
    image = ctx.r.text(key, raw, expected=expected)
    if image and not is_image_reference(image):
        ctx.r.fail(key, expected, image)
    return image


def argv(ctx: KeyContext, key: str, raw: Any) -> Optional[tuple[str, ...]]:
    return read_argv(ctx.r, key, raw)


def env(ctx: KeyContext, key: str, raw: Any) -> dict[str, str]:
    return read_env(ctx.r, key, raw)


def secret_env(ctx: KeyContext, key: str, raw: Any) -> dict[str, str]:
    secret_env = read_env(ctx.r, key, raw)
    for var, secret_key in secret_env.items():
        ctx.r.text(f"{key}.{var}", secret_key, CONFIG_KEY, "the name of a secret config key such as dbPassword")
    return secret_env


def _paths(ctx: KeyContext, key: str, raw: Any) -> dict[str, Any]:
    """An object whose keys are absolute container paths."""
    entries = ctx.r.mapping(key, raw)
    for path in entries:
        ctx.r.text(f"{key} (path)", path, ABSOLUTE_PATH, "absolute paths in the container as keys")
    return {path: value for path, value in entries.items() if ABSOLUTE_PATH.match(str(path))}


def secret_files(ctx: KeyContext, key: str, raw: Any) -> tuple[SecretFileSpec, ...]:
    files = []
    for path, secret_key in _paths(ctx, key, raw).items():
        if not ctx.r.text(
            f"{key}.{path}", secret_key, CONFIG_KEY, "the name of a secret config key such as dbPassword"
        ):
            continue
        if os.path.dirname(path) != SECRETS_DIR or path == f"{SECRETS_DIR}/":
            ctx.r.fail(
                f"{key}.{path}",
                f"a file directly in {SECRETS_DIR}/, where both targets mount secrets (as Compose does)",
                path,
            )
        files.append(SecretFileSpec(path=path, key=secret_key))
    return tuple(files)


def files(ctx: KeyContext, key: str, raw: Any) -> tuple[FileSpec, ...]:
    return tuple(
        file
        for path, source in _paths(ctx, key, raw).items()
        if (file := _project_file(ctx, f"{key}.{path}", path, source)) is not None
    )


def _project_file(ctx: KeyContext, key: str, path: str, source: Any) -> Optional[FileSpec]:
    """A text file inside the project, read now: its content is what gets mounted."""
    r = ctx.r
    # A NUL byte would make the path functions raise instead of the file being reported missing.
    if r.text(key, source, re.compile(r"^[^\0]+$"), "a file path relative to the project") is None:
        return None
    project = os.path.realpath(ctx.base_dir)
    resolved = os.path.realpath(os.path.join(project, source))
    if os.path.commonpath([project, resolved]) != project or not os.path.isfile(resolved):
        r.fail(key, "a file inside the project", source)
        return None
    if os.path.getsize(resolved) > FILE_LIMIT:
        r.fail(key, f"a file of at most {FILE_LIMIT // 1024} KiB", source)
        return None
    try:
        with open(resolved, encoding="utf-8") as handle:
            return FileSpec(
                path=path, source=resolved, content=handle.read(), executable=bool(os.stat(resolved).st_mode & 0o111)
            )
    except UnicodeDecodeError:
        r.fail(key, "a UTF-8 text file", source)
        return None


def names(ctx: KeyContext, key: str, raw: Any) -> tuple[str, ...]:
    return tuple(read_names(ctx.r, key, raw))


def depends_on(ctx: KeyContext, key: str, raw: Any) -> dict[str, str]:
    """A list of names (started), or names to a condition."""
    if isinstance(raw, list):
        raw = {name: "started" for name in read_names(ctx.r, key, raw)}
    conditions = ctx.r.mapping(key, raw)
    for name, condition in conditions.items():
        ctx.r.choice(f"{key}.{name}", condition, CONDITIONS)
    return {name: condition for name, condition in conditions.items() if condition in CONDITIONS}


def user(ctx: KeyContext, key: str, raw: Any) -> Optional[tuple[int, int]]:
    """A non-root uid, `uid:gid`, or `image` to keep the image's own user (a hardening opt-out)."""
    if raw == "image":
        return None
    uid, _, gid = str(raw).partition(":") if isinstance(raw, str) else (raw, "", raw)
    uid, gid = as_int(uid), as_int(gid if gid != "" else uid)
    if uid is None or gid is None or not 1 <= uid < 2**31 or not 0 <= gid < 2**31:
        ctx.r.fail(
            key, "a non-root numeric user such as 10001 or 10001:10001, or `image` for the image's own user", raw
        )
        return None
    return uid, gid


def capabilities(ctx: KeyContext, key: str, raw: Any) -> tuple[str, ...]:
    capabilities = read_names(ctx.r, key, raw)
    for capability in capabilities:
        if capability not in CAPABILITIES:
            ctx.r.fail(key, "Linux capability names such as NET_BIND_SERVICE (without CAP_)", capability)
    return tuple(capabilities)


def labels(ctx: KeyContext, key: str, raw: Any) -> dict[str, str]:
    return read_env(ctx.r, key, raw, names=_LABEL_NAME)


def networks(ctx: KeyContext, key: str, raw: Any) -> tuple[str, ...]:
    networks = read_names(ctx.r, key, raw)
    for network in networks:
        if network not in ctx.network_names:
            ctx.r.fail(key, "names of the stack's networks: " + ", ".join(sorted(ctx.network_names)), network)
    return tuple(networks)


def absolute_path(ctx: KeyContext, key: str, raw: Any) -> Optional[str]:
    return ctx.r.text(key, raw, ABSOLUTE_PATH, "an absolute path in the container")


def absolute_paths(ctx: KeyContext, key: str, raw: Any) -> tuple[str, ...]:
    paths = read_names(ctx.r, key, raw)
    for path in paths:
        ctx.r.text(key, path, ABSOLUTE_PATH, "absolute paths in the container")
    return tuple(paths)


def extra_hosts(ctx: KeyContext, key: str, raw: Any) -> dict[str, tuple[str, ...]]:
    extra_hosts = {}
    for host, addresses in ctx.r.mapping(key, raw).items():
        addresses = addresses if isinstance(addresses, list) else [addresses]
        if not _HOST_NAME.match(str(host)) or not all(isinstance(a, str) and _IP.match(a) for a in addresses):
            ctx.r.fail(f"{key}.{host}", "a host name to an IP address (or a list of them)", addresses)
        else:
            extra_hosts[host] = tuple(addresses)
    return extra_hosts


def sysctls(ctx: KeyContext, key: str, raw: Any) -> dict[str, str]:
    return read_env(ctx.r, key, raw, names=_SYSCTL)


def ulimits(ctx: KeyContext, key: str, raw: Any) -> dict[str, tuple[int, int]]:
    ulimits = {}
    for name, limit in ctx.r.mapping(key, raw).items():
        limit = {"soft": limit, "hard": limit} if not isinstance(limit, Mapping) else limit
        soft, hard = as_int(limit.get("soft")), as_int(limit.get("hard"))
        if not re.match(r"^[a-z]+$", str(name)) or soft is None or hard is None or not 0 <= soft <= hard:
            ctx.r.fail(f"{key}.{name}", "a limit such as nofile: 65536 or nofile: {soft: 1024, hard: 65536}", limit)
        else:
            ulimits[name] = (soft, hard)
    return ulimits


def signal(ctx: KeyContext, key: str, raw: Any) -> Optional[str]:
    return ctx.r.text(key, raw, _SIGNAL, "a signal name such as SIGQUIT")


def optional(read: tuple[ReadKey, str]) -> tuple[ReadKey, str]:
    """`null` stands for the key left out."""
    read_value, takes = read
    return (lambda ctx, key, raw: read_value(ctx, key, raw) if raw is not None else None), takes


def ports(ctx: KeyContext, key: str, written: Mapping[str, Any]) -> Optional[tuple[PortSpec, ...]]:
    """`port` (+ `publish`) is the one-port shorthand of `ports: {main: {port, publish}}`."""
    r = ctx.r
    if "ports" in written and ("port" in written or "publish" in written):
        r.fail(key, "either `port`/`publish` or `ports`, not both")
        return None
    if "ports" not in written:
        if "port" not in written:
            r.fail(f"{key}.port", "the container port that `publish` publishes")
            return None
        publish = written.get("publish")
        raw = {MAIN_PORT: {"port": written["port"], **({"publish": publish} if publish is not None else {})}}
    else:
        raw = r.mapping(f"{key}.ports", written["ports"])
    ports, before = [], len(r.problems)
    for name, port in raw.items():
        port_key = f"{key}.ports.{name}"
        r.text(f"{port_key} (name)", name, _PORT_NAME, "a port name: a lowercase DNS label of at most 15 characters")
        port = r.mapping(port_key, {"port": port} if isinstance(port, (int, str)) else port)
        r.unknown_keys(f"{port_key}.", port, ("port", "publish", "protocol"))
        where = f"{port_key}." if "ports" in written else f"{key}."  # errors name the keys the user wrote
        number = r.integer(f"{where}port", port.get("port"), 1, 65535)
        publish = (
            r.integer(f"{where}publish", port["publish"], ANY_HOST_PORT, 65535)
            if port.get("publish") is not None
            else None
        )
        protocol = r.choice(f"{port_key}.protocol", port.get("protocol", "tcp"), PROTOCOLS)
        ports.append(PortSpec(name=name, port=number, publish=publish, protocol=protocol))
    numbers = [(p.port, p.protocol) for p in ports]
    for port in ports:
        if numbers.count((port.port, port.protocol)) > 1:
            r.fail(
                f"{key}.ports.{port.name}.port", "a container port not used by another port of the service", port.port
            )
    return tuple(ports) if len(r.problems) == before else None


def volumes(ctx: KeyContext, key: str, written: Mapping[str, Any]) -> Optional[tuple[VolumeSpec, ...]]:
    """`volume` is the shorthand of `volumes: {data: ...}`, the name the first release gave it."""
    r = ctx.r
    if "volume" in written and "volumes" in written:
        r.fail(key, "either `volume` or `volumes`, not both")
        return None
    raw = {"data": written["volume"]} if "volume" in written else r.mapping(f"{key}.volumes", written["volumes"])
    before = len(r.problems)
    volumes = []
    for name, volume in raw.items():
        where = f"{key}.volume" if "volume" in written else f"{key}.volumes.{name}"
        r.text(f"{where} (name)", name, DNS_LABEL, "a lowercase DNS label (a-z, 0-9, '-'; at most 32)")
        volume = r.mapping(where, volume)
        r.unknown_keys(f"{where}.", volume, ("path", "size", "readOnly"))
        path = r.text(f"{where}.path", volume.get("path"), ABSOLUTE_PATH, "an absolute path in the container")
        size = r.text(f"{where}.size", volume.get("size", VolumeSpec.size), QUANTITY, "a size such as 512Mi or 1Gi")
        read_only = r.boolean(f"{where}.readOnly", volume.get("readOnly", VolumeSpec.read_only))
        volumes.append(VolumeSpec(path=path, size=size, name=name, read_only=bool(read_only)))
    return tuple(volumes) if len(r.problems) == before else None


def health(ctx: KeyContext, key: str, raw: Any) -> Optional[HealthSpec]:
    """`/path` (HTTP on the main port), a command, or the long form with timings in seconds."""
    r = ctx.r
    if raw is None:
        return None
    if isinstance(raw, (str, list)):
        raw = {"http": raw} if isinstance(raw, str) else {"command": raw}
    spec = r.mapping(key, raw)
    r.unknown_keys(f"{key}.", spec, HEALTH_KEYS)
    path, command, port = spec.get("http"), spec.get("command"), None
    if (path is None) == (command is None):
        r.fail(key, "an HTTP path such as /healthz, or a command such as [redis-cli, ping]", raw)
        return None
    if path is not None:
        if not isinstance(path, str) or not re.match(r"^/[!-~]*$", path):
            r.fail(key, "an HTTP path such as /healthz, or a command such as [redis-cli, ping]", path)
        ports = ctx.read.get("ports", ())  # None when the ports were wrong (reported already)
        by_name = {p.name: p.port for p in ports or ()}
        port_name = spec.get("port", next(iter(by_name), None))
        if ports is not None and port_name not in by_name:
            r.fail(
                f"{key}.port" if "port" in spec else key,
                "the name of one of the service's ports (an HTTP check needs a port)",
                port_name,
            )
        port = by_name.get(port_name)
    else:
        command = read_argv(r, f"{key}.command", command)
    timings = {
        name: r.integer(f"{key}.{name}", spec.get(name, default), low, 3600)
        for name, default, low in (
            ("interval", _HEALTH.interval, 1),
            ("timeout", _HEALTH.timeout, 1),
            ("retries", _HEALTH.retries, 1),
            ("startPeriod", _HEALTH.start_period, 0),
        )
    }
    if None in timings.values():
        return None
    return HealthSpec(
        path=path,
        port=port,
        command=tuple(command or ()),
        interval=timings["interval"],
        timeout=timings["timeout"],
        retries=timings["retries"],
        start_period=timings["startPeriod"],
    )


def autoscale(ctx: KeyContext, key: str, raw: Any) -> Optional[AutoscaleSpec]:
    """{max, cpu, memory, scaleDownSeconds}: utilisation targets in percent of the requests."""
    r = ctx.r
    spec = r.mapping(key, raw)
    r.unknown_keys(f"{key}.", spec, AUTOSCALE_KEYS)
    if "max" not in spec:
        r.fail(f"{key}.max", "the most replicas the service may scale to (1-100)")
        return None
    max_replicas = r.integer(f"{key}.max", spec["max"], 1, 100)
    cpu, memory = spec.get("cpu", AutoscaleSpec.cpu_percent), spec.get("memory", AutoscaleSpec.memory_percent)
    if cpu is None and memory is None:
        r.fail(key, "a cpu or memory target (percent of the request) to scale on")
    cpu = r.integer(f"{key}.cpu", cpu, 1, 100) if cpu is not None else None
    memory = r.integer(f"{key}.memory", memory, 1, 100) if memory is not None else None
    scale_down = spec.get("scaleDownSeconds")
    if scale_down is not None:
        scale_down = r.integer(f"{key}.scaleDownSeconds", scale_down, 0, 3600)
    return AutoscaleSpec(
        max_replicas=max_replicas, cpu_percent=cpu, memory_percent=memory, scale_down_seconds=scale_down
    )


def sync(ctx: KeyContext, key: str, raw: Any) -> tuple[SyncSpec, ...]:
    """`make dev`'s live-update rules: [{path, target, action, ignore}], as Compose's develop.watch.
    Syncing writes into the running container, so its target must be writable: the root file system
    (`readOnly: false`); a volume or scratch path would hide the image's own files there."""
    r, build = ctx.r, ctx.read.get("build")
    entries = decode_json(raw)
    if not isinstance(entries, list):
        r.fail(key, "a list of {path, target, action, ignore}", entries)
        return ()
    if "build" not in ctx.written:
        r.fail(key, "a service with `build`: live update copies files of its build context")
        return ()
    rules = []
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        entry = r.mapping(where, entry)
        r.unknown_keys(f"{where}.", entry, ("path", "target", "action", "ignore"))
        action = r.choice(f"{where}.action", entry.get("action", SyncSpec.action), SYNC_ACTIONS)
        path = r.text(f"{where}.path", entry.get("path"), expected="a path in the service's build context")
        if path is not None and build is not None:
            path = os.path.normpath(os.path.join(ctx.base_dir, path))
            context = os.path.realpath(build.context)
            if os.path.commonpath([context, os.path.realpath(path)]) != context:
                context_shown = os.path.relpath(build.context, ctx.base_dir)
                r.fail(f"{where}.path", f"a path inside the service's build context {context_shown}", entry["path"])
        target = entry.get("target")
        if action != "rebuild" or target is not None:
            target = r.text(f"{where}.target", target, ABSOLUTE_PATH, "an absolute path in the container")
        if target is not None and action != "rebuild" and ctx.read.get("read_only", ServiceSpec.read_only):
            r.fail(
                f"{where}.target",
                f"a writable path: {target} is on the service's read-only root file system; set `readOnly: false` "
                "on the service (a development stack's opt-out, flagged by the policy pack) to sync into it",
            )
        ignore = read_names(r, f"{where}.ignore", entry.get("ignore", []))
        if path is not None and action is not None:
            rules.append(SyncSpec(path=path, target=target, action=action, ignore=tuple(ignore)))
    return tuple(rules)


def aliases(ctx: KeyContext, key: str, raw: Any) -> tuple[str, ...]:
    return tuple(
        alias
        for alias in read_names(ctx.r, key, raw)
        if ctx.r.text(key, alias, DNS_LABEL, "lowercase DNS labels (a-z, 0-9, '-'; at most 32)")
    )
