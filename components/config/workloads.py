"""`services`, `jobs` and `networks` of the stack config read into the app spec (components/spec.py),
with the references between workloads checked and the workloads ordered dependencies first."""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping, Optional

from ..conventions import DEFAULT_NETWORK, SECRETS_DIR
from ..spec import (
    ANY_HOST_PORT,
    DEFAULT_USER,
    MAIN_PORT,
    AppSpec,
    BuildSpec,
    FileSpec,
    HealthSpec,
    JobSpec,
    NetworkSpec,
    PortSpec,
    SecretFileSpec,
    ServiceSpec,
    VolumeSpec,
    WorkloadSpec,
)
from .errors import (
    ABSOLUTE_PATH,
    CONFIG_KEY,
    DNS_LABEL,
    FILE_LIMIT,
    QUANTITY,
    Reader,
    as_int,
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

_PORT_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,13}[a-z0-9])?$")

_SIGNAL = re.compile(r"^SIG[A-Z0-9+-]+$")

_SYSCTL = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_-]+)+$")

_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")

_IP = re.compile(r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*)$")

_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


WORKLOAD_KEYS = (
    "build",
    "image",
    "command",
    "args",
    "env",
    "secretEnv",
    "secretFiles",
    "files",
    "links",
    "dependsOn",
    "user",
    "readOnly",
    "capabilities",
    "cpu",
    "cpuRequest",
    "memory",
    "labels",
    "networks",
    "workingDir",
    "tty",
    "stdinOpen",
    "init",
    "extraHosts",
    "sysctls",
    "ulimits",
    "shmSize",
    "tmpfs",
    "ephemeral",
    "stopSignal",
    "stopGracePeriod",
)

SERVICE_KEYS = WORKLOAD_KEYS + (
    "port",
    "publish",
    "ports",
    "replicas",
    "volume",
    "volumes",
    "health",
    "aliases",
    "restart",
)

JOB_KEYS = WORKLOAD_KEYS + ("timeout",)

HEALTH_KEYS = ("http", "port", "command", "interval", "timeout", "retries", "startPeriod")


# The defaults, as the spec's dataclasses define them (once, there).
_SERVICE = ServiceSpec(name="defaults")
_JOB = JobSpec(name="defaults")
_HEALTH = HealthSpec()
_VOLUME = VolumeSpec(path="/")


def workload_key(workload: WorkloadSpec) -> str:
    return f"{'jobs' if isinstance(workload, JobSpec) else 'services'}.{workload.name}"


class WorkloadReader:
    """Reads `services` and `jobs` into the spec, checking the references between them."""

    def __init__(self, r: Reader, base_dir: str, build_args: Mapping[str, str], replicas_override: Optional[int]):
        self.r, self.base_dir, self.build_args, self.replicas_override = r, base_dir, build_args, replicas_override
        # Names of workloads with problems of their own: references to them are not problems too.
        self.declared: set[str] = set()
        self.invalid: set[str] = set()

    def app(self, raw_services: Any, raw_jobs: Any, raw_networks: Any) -> AppSpec:
        r = self.r
        networks = self._networks(raw_networks)
        self.network_names = {network.name for network in networks} | {DEFAULT_NETWORK}
        services = self._each("services", raw_services if raw_services is not None else {}, self.service)
        if not services and not r.problems:
            r.fail("services", "at least one service")
        jobs = self._each("jobs", raw_jobs, self.job)
        self.invalid = self.declared - {w.name for w in (*services, *jobs)}
        by_name: dict[str, WorkloadSpec] = {}
        for workload in (*services, *jobs):
            if workload.name in by_name:
                r.fail(workload_key(workload), f"a name not already used by {workload_key(by_name[workload.name])}")
            by_name[workload.name] = workload
        for workload in by_name.values():
            self._check_references(workload, by_name)
        self._check_aliases(services, by_name)
        return AppSpec(workloads=tuple(dependencies_first(r, list(by_name.values()))), networks=networks)

    def _networks(self, raw: Any) -> tuple[NetworkSpec, ...]:
        """`networks: {front: {}, shared: {external: proxy-net}}`: the networks workloads may join."""
        networks = []
        for name, spec in self.r.mapping("networks", raw).items():
            key = f"networks.{name}"
            if (
                self.r.text(f"{key} (name)", name, DNS_LABEL, "a lowercase DNS label (a-z, 0-9, '-'; at most 32)")
                is None
            ):
                continue
            spec = self.r.mapping(key, spec if spec is not None else {})
            self.r.unknown_keys(f"{key}.", spec, ("external",))
            external = spec.get("external")
            if external is not None:
                external = self.r.text(f"{key}.external", external, expected="the name of an existing Docker network")
            networks.append(NetworkSpec(name=name, external=external))
        return tuple(networks)

    def _check_aliases(self, services: list[ServiceSpec], by_name: Mapping[str, WorkloadSpec]) -> None:
        """An alias is one more DNS name of one service: it may not be any other workload's name or alias."""
        owners: dict[str, str] = {}
        for service in services:
            for alias in service.aliases:
                if alias in by_name or alias in owners:
                    self.r.fail(
                        f"services.{service.name}.aliases", "names not used by another workload or alias", alias
                    )
                owners[alias] = service.name

    def _each(self, section: str, raw: Any, read: Callable) -> list:
        result = []
        for name, spec in self.r.mapping(section, raw).items():
            key = f"{section}.{name}"
            if (
                self.r.text(f"{key} (name)", name, DNS_LABEL, "a lowercase DNS label (a-z, 0-9, '-'; at most 32)")
                is None
            ):
                continue
            self.declared.add(name)
            before = len(self.r.problems)
            workload = read(key, name, self.r.mapping(key, spec))
            if len(self.r.problems) == before:
                result.append(workload)
        return result

    def service(self, key: str, name: str, spec: Mapping[str, Any]) -> Optional[ServiceSpec]:
        r = self.r
        r.unknown_keys(f"{key}.", spec, SERVICE_KEYS)
        common = self._workload(key, name, spec)
        ports = self._ports(key, spec)
        volumes = self._volumes(key, spec)
        stateful = any(not volume.read_only for volume in volumes or ())
        replicas = r.integer(f"{key}.replicas", spec.get("replicas", _SERVICE.replicas), 0, 100)
        if stateful and replicas is not None and replicas > 1:
            r.fail(f"{key}.replicas", "0 or 1 for a service with a volume (its state lives on one volume)", replicas)
        if self.replicas_override is not None and not stateful:
            replicas = self.replicas_override
        health = self._health(f"{key}.health", spec.get("health"), ports)
        aliases = [
            alias
            for alias in read_names(r, f"{key}.aliases", spec.get("aliases", []))
            if r.text(f"{key}.aliases", alias, DNS_LABEL, "lowercase DNS labels (a-z, 0-9, '-'; at most 32)")
        ]
        restart = r.choice(f"{key}.restart", spec.get("restart", _SERVICE.restart), RESTART_POLICIES)
        if common is None or None in (ports, volumes, replicas, restart):
            return None
        self._check_mount_paths(key, common, volumes, volume_shorthand="volume" in spec)
        return ServiceSpec(
            **common,
            ports=ports,
            replicas=replicas,
            volumes=volumes,
            health=health,
            aliases=tuple(aliases),
            restart=restart,
        )

    def job(self, key: str, name: str, spec: Mapping[str, Any]) -> Optional[JobSpec]:
        self.r.unknown_keys(f"{key}.", spec, JOB_KEYS)
        common = self._workload(key, name, spec)
        timeout = self.r.integer(f"{key}.timeout", spec.get("timeout", _JOB.timeout), 1, 86400)
        if common is None or not timeout:
            return None
        self._check_mount_paths(key, common, ())
        return JobSpec(**common, timeout=timeout)

    def _check_mount_paths(
        self, key: str, common: Mapping[str, Any], volumes: tuple[VolumeSpec, ...], volume_shorthand: bool = False
    ) -> None:
        """Each path in the container is mounted once: by a file, a secret file, a volume or a scratch path."""
        seen: dict[str, str] = {}
        mounts = [
            *((f.path, "files") for f in common["files"]),
            *((f.path, "secretFiles") for f in common["secret_files"]),
            *((v.path, "volume.path" if volume_shorthand else f"volumes.{v.name}.path") for v in volumes),
            *((p, "tmpfs") for p in common["tmpfs"]),
            *((p, "ephemeral") for p in common["ephemeral"]),
        ]
        for path, where in mounts:
            if path in seen:
                self.r.fail(f"{key}.{where}", f"a path not also used by {seen[path]}", path)
            seen.setdefault(path, where.split(".")[0])

    def _workload(self, key: str, name: str, spec: Mapping[str, Any]) -> Optional[dict]:
        r = self.r
        before = len(r.problems)
        build, image = None, None
        if ("build" in spec) == ("image" in spec):
            r.fail(key, "exactly one of `build` (a Docker build) or `image` (an existing image reference)")
        elif "build" in spec:
            build = _read_build(r, f"{key}.build", spec["build"], self.base_dir, self.build_args)
        else:
            image = r.text(
                f"{key}.image", spec["image"], expected="an image reference such as redis:7 or repo@sha256:<digest>"
            )
            if image and not is_image_reference(image):
                r.fail(f"{key}.image", "an image reference such as redis:7 or repo@sha256:<digest>", image)
        command = read_argv(r, f"{key}.command", spec.get("command"))
        args = read_argv(r, f"{key}.args", spec.get("args"))
        env = read_env(r, f"{key}.env", spec.get("env", {}))
        secret_env = read_env(r, f"{key}.secretEnv", spec.get("secretEnv", {}))
        for var, secret_key in secret_env.items():
            r.text(
                f"{key}.secretEnv.{var}", secret_key, CONFIG_KEY, "the name of a secret config key such as dbPassword"
            )
        secret_files = [
            SecretFileSpec(path=path, key=secret_key)
            for path, secret_key in self._paths(f"{key}.secretFiles", spec.get("secretFiles", {})).items()
            if r.text(
                f"{key}.secretFiles.{path}",
                secret_key,
                CONFIG_KEY,
                "the name of a secret config key such as dbPassword",
            )
        ]
        for file in secret_files:
            if os.path.dirname(file.path) != SECRETS_DIR or file.path == f"{SECRETS_DIR}/":
                r.fail(
                    f"{key}.secretFiles.{file.path}",
                    f"a file directly in {SECRETS_DIR}/, where both targets mount secrets (as Compose does)",
                    file.path,
                )
        files = [
            file
            for path, source in self._paths(f"{key}.files", spec.get("files", {})).items()
            if (file := self._file(f"{key}.files.{path}", path, source)) is not None
        ]
        for path in {f.path for f in files} & {f.path for f in secret_files}:
            r.fail(f"{key}.secretFiles.{path}", "a path not also used by files", path)
        links = read_names(r, f"{key}.links", spec.get("links", []))
        depends_on = self._depends_on(f"{key}.dependsOn", spec.get("dependsOn", {}))
        user = _read_user(r, f"{key}.user", spec.get("user", DEFAULT_USER))
        read_only = r.boolean(f"{key}.readOnly", spec.get("readOnly", _SERVICE.read_only))
        capabilities = read_names(r, f"{key}.capabilities", spec.get("capabilities", []))
        for capability in capabilities:
            if capability not in CAPABILITIES:
                r.fail(
                    f"{key}.capabilities", "Linux capability names such as NET_BIND_SERVICE (without CAP_)", capability
                )
        cpu = r.number(f"{key}.cpu", spec.get("cpu", _SERVICE.cpu), 0.01, 64)
        cpu_request = r.number(
            f"{key}.cpuRequest",
            spec.get("cpuRequest", min(_SERVICE.cpu_request, cpu or _SERVICE.cpu_request)),
            0.001,
            64,
        )
        if cpu and cpu_request and cpu_request > cpu:
            r.fail(f"{key}.cpuRequest", f"at most the cpu limit ({cpu})", cpu_request)
        memory = r.integer(f"{key}.memory", spec.get("memory", _SERVICE.memory_mb), 6, 1024 * 1024)
        runtime = self._runtime(key, spec)
        if len(r.problems) > before:
            return None
        return dict(
            name=name,
            build=build,
            image=image,
            command=command,
            args=args,
            env=env,
            secret_env=secret_env,
            secret_files=tuple(secret_files),
            files=tuple(files),
            links=tuple(links),
            depends_on=depends_on,
            user=user,
            read_only=read_only,
            capabilities=tuple(capabilities),
            cpu=cpu,
            cpu_request=cpu_request,
            memory_mb=memory,
            **runtime,
        )

    def _runtime(self, key: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """What `docker run` flags say about the process and its surroundings, beyond the image and the
        hardening: labels, networks, working dir, terminal, init, hosts, kernel settings, scratch space, stop."""
        r = self.r
        labels = read_env(r, f"{key}.labels", spec.get("labels", {}), names=re.compile(r"^[^\s=]+$"))
        networks = read_names(r, f"{key}.networks", spec.get("networks", []))
        for network in networks:
            if network not in self.network_names:
                r.fail(
                    f"{key}.networks",
                    "names of the stack's networks: " + ", ".join(sorted(self.network_names)),
                    network,
                )
        working_dir = spec.get("workingDir")
        if working_dir is not None:
            r.text(f"{key}.workingDir", working_dir, ABSOLUTE_PATH, "an absolute path in the container")
        flags = {
            flag: r.boolean(f"{key}.{name}", spec.get(name, False))
            for flag, name in (("tty", "tty"), ("stdin_open", "stdinOpen"), ("init", "init"))
        }
        extra_hosts = {}
        for host, addresses in r.mapping(f"{key}.extraHosts", spec.get("extraHosts", {})).items():
            addresses = addresses if isinstance(addresses, list) else [addresses]
            if not _HOST_NAME.match(str(host)) or not all(isinstance(a, str) and _IP.match(a) for a in addresses):
                r.fail(f"{key}.extraHosts.{host}", "a host name to an IP address (or a list of them)", addresses)
            else:
                extra_hosts[host] = tuple(addresses)
        sysctls = read_env(r, f"{key}.sysctls", spec.get("sysctls", {}), names=_SYSCTL)
        ulimits = {}
        for name, limit in r.mapping(f"{key}.ulimits", spec.get("ulimits", {})).items():
            limit = {"soft": limit, "hard": limit} if not isinstance(limit, Mapping) else limit
            soft, hard = as_int(limit.get("soft")), as_int(limit.get("hard"))
            if not re.match(r"^[a-z]+$", str(name)) or soft is None or hard is None or not 0 <= soft <= hard:
                r.fail(
                    f"{key}.ulimits.{name}", "a limit such as nofile: 65536 or nofile: {soft: 1024, hard: 65536}", limit
                )
            else:
                ulimits[name] = (soft, hard)
        shm_size = r.integer(f"{key}.shmSize", spec["shmSize"], 1, 1024 * 1024) if "shmSize" in spec else None
        scratch = {
            name: tuple(self._absolute_paths(f"{key}.{name}", spec.get(name, []))) for name in ("tmpfs", "ephemeral")
        }
        stop_signal = spec.get("stopSignal")
        if stop_signal is not None:
            r.text(f"{key}.stopSignal", stop_signal, _SIGNAL, "a signal name such as SIGQUIT")
        grace = spec.get("stopGracePeriod")
        if grace is not None:
            grace = r.integer(f"{key}.stopGracePeriod", grace, 0, 3600)
        return dict(
            labels=labels,
            networks=tuple(networks),
            working_dir=working_dir,
            **flags,
            extra_hosts=extra_hosts,
            sysctls=sysctls,
            ulimits=ulimits,
            shm_size_mb=shm_size,
            **scratch,
            stop_signal=stop_signal,
            stop_grace_period=grace,
        )

    def _absolute_paths(self, key: str, raw: Any) -> list[str]:
        paths = read_names(self.r, key, raw)
        for path in paths:
            self.r.text(key, path, ABSOLUTE_PATH, "absolute paths in the container")
        return paths

    def _ports(self, key: str, spec: Mapping[str, Any]) -> Optional[tuple[PortSpec, ...]]:
        """`port` (+ `publish`) is the one-port shorthand of `ports: {main: {port, publish}}`."""
        r = self.r
        if "ports" in spec and ("port" in spec or "publish" in spec):
            r.fail(key, "either `port`/`publish` or `ports`, not both")
            return None
        if "ports" not in spec:
            if "port" not in spec:
                if "publish" in spec:
                    r.fail(f"{key}.port", "the container port that `publish` publishes")
                return ()
            raw = {
                MAIN_PORT: {
                    "port": spec["port"],
                    **({"publish": spec["publish"]} if spec.get("publish") is not None else {}),
                }
            }
        else:
            raw = r.mapping(f"{key}.ports", spec["ports"])
        ports, before = [], len(r.problems)
        for name, port in raw.items():
            port_key = f"{key}.ports.{name}"
            r.text(
                f"{port_key} (name)", name, _PORT_NAME, "a port name: a lowercase DNS label of at most 15 characters"
            )
            port = r.mapping(port_key, {"port": port} if isinstance(port, (int, str)) else port)
            r.unknown_keys(f"{port_key}.", port, ("port", "publish", "protocol"))
            where = f"{port_key}." if "ports" in spec else f"{key}."  # errors name the keys the user wrote
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
                    f"{key}.ports.{port.name}.port",
                    "a container port not used by another port of the service",
                    port.port,
                )
        return tuple(ports) if len(r.problems) == before else None

    def _health(self, key: str, raw: Any, ports: Optional[tuple[PortSpec, ...]]) -> Optional[HealthSpec]:
        """`/path` (HTTP on the main port), a command, or the long form with timings in seconds."""
        r = self.r
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

    def _volumes(self, key: str, spec: Mapping[str, Any]) -> Optional[tuple[VolumeSpec, ...]]:
        """`volume` is the shorthand of `volumes: {data: ...}`, the name the first release gave it."""
        if "volume" in spec and "volumes" in spec:
            self.r.fail(key, "either `volume` or `volumes`, not both")
            return None
        raw = (
            {"data": spec["volume"]} if "volume" in spec else self.r.mapping(f"{key}.volumes", spec.get("volumes", {}))
        )
        before = len(self.r.problems)
        volumes = []
        for name, volume in raw.items():
            where = f"{key}.volume" if "volume" in spec else f"{key}.volumes.{name}"
            self.r.text(f"{where} (name)", name, DNS_LABEL, "a lowercase DNS label (a-z, 0-9, '-'; at most 32)")
            volume = self.r.mapping(where, volume)
            self.r.unknown_keys(f"{where}.", volume, ("path", "size", "readOnly"))
            path = self.r.text(f"{where}.path", volume.get("path"), ABSOLUTE_PATH, "an absolute path in the container")
            size = self.r.text(
                f"{where}.size", volume.get("size", _VOLUME.size), QUANTITY, "a size such as 512Mi or 1Gi"
            )
            read_only = self.r.boolean(f"{where}.readOnly", volume.get("readOnly", False))
            volumes.append(VolumeSpec(path=path, size=size, name=name, read_only=bool(read_only)))
        return tuple(volumes) if len(self.r.problems) == before else None

    def _paths(self, key: str, raw: Any) -> dict[str, Any]:
        """An object whose keys are absolute container paths."""
        entries = self.r.mapping(key, raw)
        for path in entries:
            self.r.text(f"{key} (path)", path, ABSOLUTE_PATH, "absolute paths in the container as keys")
        return {path: value for path, value in entries.items() if ABSOLUTE_PATH.match(str(path))}

    def _file(self, key: str, path: str, source: Any) -> Optional[FileSpec]:
        """A text file inside the project, read now: its content is what gets mounted."""
        # A NUL byte would make the path functions raise instead of the file being reported missing.
        if self.r.text(key, source, re.compile(r"^[^\0]+$"), "a file path relative to the project") is None:
            return None
        project = os.path.realpath(self.base_dir)
        resolved = os.path.realpath(os.path.join(project, source))
        if os.path.commonpath([project, resolved]) != project or not os.path.isfile(resolved):
            self.r.fail(key, "a file inside the project", source)
            return None
        if os.path.getsize(resolved) > FILE_LIMIT:
            self.r.fail(key, f"a file of at most {FILE_LIMIT // 1024} KiB", source)
            return None
        try:
            with open(resolved, encoding="utf-8") as handle:
                return FileSpec(
                    path=path,
                    source=resolved,
                    content=handle.read(),
                    executable=bool(os.stat(resolved).st_mode & 0o111),
                )
        except UnicodeDecodeError:
            self.r.fail(key, "a UTF-8 text file", source)
            return None

    def _depends_on(self, key: str, raw: Any) -> dict[str, str]:
        """A list of names (started), or names to a condition."""
        if isinstance(raw, list):
            raw = {name: "started" for name in read_names(self.r, key, raw)}
        conditions = self.r.mapping(key, raw)
        for name, condition in conditions.items():
            self.r.choice(f"{key}.{name}", condition, CONDITIONS)
        return {name: condition for name, condition in conditions.items() if condition in CONDITIONS}

    def _check_references(self, workload: WorkloadSpec, by_name: Mapping[str, WorkloadSpec]) -> None:
        r, key = self.r, workload_key(workload)
        services = sorted(n for n, w in by_name.items() if isinstance(w, ServiceSpec) and n != workload.name)
        for link in workload.links:
            target = by_name.get(link)
            if link in self.invalid:
                continue
            if not isinstance(target, ServiceSpec) or link == workload.name:
                r.fail(f"{key}.links", "names of other services: " + ", ".join(services), link)
            elif not target.ports:
                r.fail(f"{key}.links", f"a service with a port (services.{link} has none)", link)
        for name, condition in workload.depends_on.items():
            target = by_name.get(name)
            if name in self.invalid:
                continue
            if target is None or name == workload.name:
                r.fail(
                    f"{key}.dependsOn.{name}",
                    "the name of another service or job: " + ", ".join(sorted(set(by_name) - {workload.name})),
                )
            elif isinstance(target, JobSpec) and condition != "completed":
                r.fail(f"{key}.dependsOn.{name}", f"completed (jobs.{name} is a job)", condition)
            elif isinstance(target, ServiceSpec) and condition == "completed":
                r.fail(
                    f"{key}.dependsOn.{name}",
                    f"started or healthy (services.{name} is a service; jobs complete)",
                    condition,
                )
            elif condition == "healthy" and target.health is None:
                r.fail(f"{key}.dependsOn.{name}", f"started, or a health check on services.{name}", condition)


def dependencies_first(r: Reader, workloads: list[WorkloadSpec]) -> list[WorkloadSpec]:
    """Orders workloads so that each comes after what it links to or depends on; rejects cycles."""
    by_name = {w.name: w for w in workloads}
    ordered: list[WorkloadSpec] = []
    visiting: set[str] = set()

    def visit(workload: WorkloadSpec, referenced_by: str = "") -> None:
        if workload in ordered:
            return
        if workload.name in visiting:  # the reference that closes the cycle is named: links or dependsOn
            r.fail(referenced_by, "links and dependencies without a cycle", workload.name)
            return
        visiting.add(workload.name)
        for key, names in (("links", workload.links), ("dependsOn", workload.depends_on)):
            for name in names:
                if name in by_name:
                    visit(by_name[name], f"{workload_key(workload)}.{key}")
        visiting.discard(workload.name)
        if workload not in ordered:
            ordered.append(workload)

    for workload in workloads:
        visit(workload)
    return ordered


def _read_user(r: Reader, key: str, raw: Any) -> Optional[tuple[int, int]]:
    """A non-root uid, `uid:gid`, or `image` to keep the image's own user (a hardening opt-out)."""
    if raw == "image":
        return None
    uid, _, gid = str(raw).partition(":") if isinstance(raw, str) else (raw, "", raw)
    uid, gid = as_int(uid), as_int(gid if gid != "" else uid)
    if uid is None or gid is None or not 1 <= uid < 2**31 or not 0 <= gid < 2**31:
        r.fail(key, "a non-root numeric user such as 10001 or 10001:10001, or `image` for the image's own user", raw)
        return None
    return uid, gid


def _read_build(r: Reader, key: str, raw: Any, base_dir: str, stack_args: Mapping[str, str]) -> Optional[BuildSpec]:
    """A path, or {context, dockerfile, target, args}. The stack's buildArgs apply to every build
    and win over the spec's own (e.g. BASE_IMAGE pointing at a locally built base offline)."""
    spec = r.mapping(key, {"context": raw} if isinstance(raw, str) else raw)
    r.unknown_keys(f"{key}.", spec, ("context", "dockerfile", "target", "args", "platform"))
    context = r.text(f"{key}.context", spec.get("context"), expected="a directory path")
    if context is None:
        return None
    context = os.path.normpath(os.path.join(base_dir, context))
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
    merged = {**{k: str(v) for k, v in args.items()}, **stack_args}
    platform = spec.get("platform")
    if platform is not None:
        r.text(f"{key}.platform", platform, _PLATFORM, "a platform such as linux/amd64")
    return BuildSpec(context=context, dockerfile=dockerfile, target=target, args=merged, platform=platform)
