"""A Compose file as the app spec: `cloudservice:compose: path/to/compose.yaml`.

`load_compose` reads the file with PyYAML and `compose_to_spec` maps the document onto the raw
`services` and `jobs` of the app spec (README, "App spec"), which the stack parser then validates
like hand-written ones. A service that another one waits for with
`condition: service_completed_successfully` becomes a job (run to exit 0).

Every Compose key is either mapped or refused: an unsupported key or value is a ConfigError naming
the service and key, all problems at once, before any resource exists. `x-` extensions are
ignored. What the stack decides for itself is documented, not refused: `version` and `name` (the
stack names every object), `image` next to `build` (built images are named
<imageRepository>/<service>), `cap_drop` (every capability is dropped), `restart: always |
unless-stopped` (services always restart). Variables (`${VAR}`) are not interpolated: per-environment
values belong in the stack config; `$$` is a literal `$` as in Compose.

Paths in the result (build contexts, config files) are relative to `base_dir`, the project root
the parser resolves them against. Secret values read from the Compose file's `secrets: {file:}`
come back apart (`ComposeApp.secrets`) for the parser to wrap as Pulumi secrets; a stack secret
config key of the same name takes precedence, and its file is then not read.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Optional

import dotenv
import yaml

from .config import ConfigError

TOP_LEVEL_KEYS = ("version", "name", "services", "volumes", "secrets", "configs")
# The Compose service keys the stack maps, each by a `_ServiceMapper.key_<name>` method.
SERVICE_KEYS = (
    "build", "image", "command", "entrypoint", "ports", "expose", "environment", "env_file", "volumes",
    "depends_on", "healthcheck", "secrets", "configs", "user", "read_only", "deploy", "restart",
    "cap_add", "cap_drop", "links",
)
CONDITIONS = {
    "service_started": "started",
    "service_healthy": "healthy",
    "service_completed_successfully": "completed",
}
# Spec keys a job has no use for, by the Compose key they come from.
SERVICE_ONLY = {"ports": "ports", "expose": "ports", "volumes": "volume", "healthcheck": "health"}

# [host_ip:][published:]target[/protocol]; host_ip may be a bracketed IPv6 address.
_PORT = re.compile(
    r"^(?:(?P<ip>\[[^\]]*\]|[^:\[\]]+):(?=[^:]*:))?(?:(?P<published>[^:/]*):)?"
    r"(?P<target>[^:/]+)(?:/(?P<protocol>[a-z]+))?$"
)
_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:h|ms|m|s|us|ns))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|ns)")
_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_BYTES = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)b?$", re.IGNORECASE)
_INTERPOLATION = re.compile(r"\$(\{|[A-Za-z_])")


@dataclass(frozen=True)
class ComposeApp:
    services: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    """Secret config key -> the content of the Compose secret's file (plain: the parser marks it secret)."""


def load_compose(path: str, base_dir: str, given_secrets: Collection[str] = ()) -> ComposeApp:
    """Reads the Compose file at `path` (relative to `base_dir`) and maps it (see compose_to_spec)."""
    try:
        with open(os.path.join(base_dir, path), encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as error:
        raise ConfigError([f"compose: expected a readable Compose file ({error.strerror}: {path})"]) from None
    except yaml.YAMLError as error:
        raise ConfigError([f"compose: {path} is not valid YAML: {error}"]) from None
    return compose_to_spec(document, path, base_dir, given_secrets)


def compose_to_spec(document: Any, source: str, base_dir: str, given_secrets: Collection[str] = ()) -> ComposeApp:
    """Maps a parsed Compose document onto raw `services`/`jobs`, or raises ConfigError listing every
    problem as `<source>: services.<service>.<key>: ...`.

    `source` is the Compose file's path relative to `base_dir` (files it names are relative to its
    directory); `given_secrets` are the secret keys the stack config already sets."""
    mapper = _ComposeMapper(source, base_dir, given_secrets)
    app = mapper.map(document)
    if mapper.problems:
        raise ConfigError([f"{source}: {problem}" for problem in mapper.problems])
    return app


def _literal(value: Any, key: str, fail: Callable[[str, str], None]) -> Any:
    """The document with Compose's `$$` escapes undone; interpolation (`$VAR`, `${VAR}`) refused."""
    if isinstance(value, Mapping):
        return {k: v if str(k).startswith("x-") else _literal(v, f"{key}.{k}" if key else str(k), fail)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(item, f"{key}[{index}]", fail) for index, item in enumerate(value)]
    if isinstance(value, str):
        pieces = value.split("$$")
        if any(_INTERPOLATION.search(piece) for piece in pieces):
            fail(key, "variables are not interpolated: write the value (per-environment values belong in "
                      f"the stack config), or `$$` for a literal `$` (got {value!r})")
        return "$".join(pieces)
    return value


def _without_extensions(value: Mapping) -> dict:
    return {k: v for k, v in value.items() if not str(k).startswith("x-")}


def _seconds(text: Any) -> Optional[int]:
    """A Compose duration (`1m30s`, `500ms`) in whole seconds, at least 1."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return max(1, math.ceil(text)) if math.isfinite(text) else None
    if not isinstance(text, str) or not _DURATION.match(text):
        return None
    total = sum(float(number) * _SECONDS[unit] for number, unit in _DURATION_PART.findall(text))
    return max(1, math.ceil(total))


def _mebibytes(value: Any) -> Optional[int]:
    """A Compose byte value (`512m`, `1.5g`, `134217728`) in MiB, rounded up."""
    if isinstance(value, int) and not isinstance(value, bool):
        return math.ceil(value / 2**20)
    match = _BYTES.match(value.strip()) if isinstance(value, str) else None
    if not match:
        return None
    power = {"": 0, "k": 1, "m": 2, "g": 3}[match.group(2).lower()]
    return math.ceil(float(match.group(1)) * 1024**power / 2**20)


class _ComposeMapper:
    """One pass over a Compose document; collects every problem instead of stopping at the first."""

    def __init__(self, source: str, base_dir: str, given_secrets: Collection[str]) -> None:
        self.directory = os.path.dirname(source)
        self.base_dir = base_dir
        self.given_secrets = set(given_secrets)
        self.problems: list[str] = []
        self.secrets: dict[str, str] = {}

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def project_path(self, path: str) -> str:
        """`path` as written in the Compose file, relative to the project root."""
        return os.path.normpath(os.path.join(self.directory, os.path.expanduser(path)))

    def mapping(self, key: str, value: Any, expected: str = "a mapping") -> dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(key, f"expected {expected} (got {value!r})")
            return {}
        return _without_extensions(value)

    def unsupported(self, key: str, given: Mapping, supported: Collection[str]) -> None:
        for name in given:
            if name not in supported:
                self.fail(f"{key}.{name}", "Compose key not supported by the stack; supported: "
                          + (", ".join(supported) or "none"))

    # -- the document ---------------------------------------------------------------------------

    def map(self, document: Any) -> ComposeApp:
        if not isinstance(document, Mapping):
            self.fail("(file)", f"expected a Compose document with `services:` (got {type(document).__name__})")
            return ComposeApp()
        document = _literal(_without_extensions(document), "", self.fail)
        self.unsupported("(top level)", document, TOP_LEVEL_KEYS)
        compose_services = self.mapping("services", document.get("services"))
        if not compose_services:
            self.fail("services", "expected at least one service")
        volumes = self.top_level_volumes(document.get("volumes"))
        secrets = self.top_level_files("secrets", document.get("secrets"), ("file", "external"))
        configs = self.top_level_files("configs", document.get("configs"), ("file",))

        jobs = {dependency for spec in compose_services.values() if isinstance(spec, Mapping)
                for dependency, condition in self.conditions(spec.get("depends_on")).items()
                if condition == "completed"}
        mapped: dict[str, dict] = {}
        volume_users: dict[str, list[str]] = {}
        for name, spec in compose_services.items():
            key = f"services.{name}"
            spec = self.mapping(key, spec)
            service = _ServiceMapper(self, key, name, name in jobs, compose_services, volumes, secrets, configs)
            mapped[name] = service.map(spec)
            if service.volume_name:
                volume_users.setdefault(service.volume_name, []).append(name)
        for volume, users in volume_users.items():
            if len(users) > 1:
                self.fail(f"volumes.{volume}", "a named volume belongs to one service (a volume or PVC each); "
                                               "used by " + ", ".join(users))
        self.check_dependencies(compose_services, mapped, jobs)
        return ComposeApp(
            services={n: s for n, s in mapped.items() if n not in jobs},
            jobs={n: s for n, s in mapped.items() if n in jobs},
            secrets=self.secrets,
        )

    @staticmethod
    def conditions(depends_on: Any) -> dict[str, str]:
        """depends_on as {service: spec condition}; malformed entries are reported by the service."""
        if isinstance(depends_on, list):
            return {name: "started" for name in depends_on if isinstance(name, str)}
        if isinstance(depends_on, Mapping):
            conditions = {name: (spec or {}).get("condition", "service_started")
                          for name, spec in depends_on.items() if isinstance(spec, (Mapping, type(None)))}
            return {name: CONDITIONS.get(c, "") if isinstance(c, str) else "" for name, c in conditions.items()}
        return {}

    def top_level_volumes(self, raw: Any) -> set[str]:
        volumes = self.mapping("volumes", raw)
        for name, spec in volumes.items():
            self.unsupported(f"volumes.{name}", self.mapping(f"volumes.{name}", spec), ())
        return set(volumes)

    def top_level_files(self, kind: str, raw: Any, supported: tuple[str, ...]) -> dict[str, dict]:
        """Top-level `secrets:` or `configs:`: name -> {file: project path} or {external: True}."""
        definitions = {}
        for name, spec in self.mapping(kind, raw).items():
            key = f"{kind}.{name}"
            spec = self.mapping(key, spec)
            self.unsupported(key, spec, supported)
            if kind == "secrets" and spec.get("external") is True:
                if name not in self.given_secrets:
                    self.fail(f"{key}.external", f"expected a stack secret: `pulumi config set --secret {name}`")
                definitions[name] = {"external": True}
                continue
            if kind == "secrets" and "external" in spec:
                self.fail(f"{key}.external", f"expected true (got {spec['external']!r})")
            if not isinstance(spec.get("file"), str):
                self.fail(f"{key}.file", f"expected the path of a file (got {spec.get('file')!r})")
                continue
            path = self.project_path(spec["file"])
            definitions[name] = {"file": path}
            if kind == "secrets" and name in self.given_secrets:
                continue  # the stack's own secret wins; the file may be a local default only
            try:
                with open(os.path.join(self.base_dir, path), encoding="utf-8") as handle:
                    content = handle.read()
            except (OSError, UnicodeDecodeError) as error:
                hint = f", or set the stack secret `pulumi config set --secret {name}`" if kind == "secrets" else ""
                self.fail(f"{key}.file", f"expected a readable text file{hint} ({error}: {path})")
                continue
            if kind == "secrets":
                self.secrets[name] = content
        return definitions

    def check_dependencies(self, compose_services: Mapping, mapped: Mapping[str, dict], jobs: set[str]) -> None:
        """depends_on/links name existing services, without cycles; conditions fit their targets."""
        graph: dict[str, list[str]] = {}
        for name, spec in mapped.items():
            depends_on = spec.get("dependsOn", {})
            graph[name] = [*depends_on, *spec.get("links", [])]
            for target, condition in depends_on.items():
                key = f"services.{name}.depends_on.{target}"
                if target not in compose_services or target == name:
                    self.fail(key, "expected another service of this file: " + ", ".join(sorted(set(compose_services) - {name})))
                elif target in jobs and condition != "completed":
                    self.fail(key, f"{target} runs to completion (a service waits for it with "
                                   f"service_completed_successfully): use that condition (got {condition})")
                elif condition == "healthy" and "health" not in mapped.get(target, {}):
                    self.fail(key, f"condition service_healthy needs a healthcheck on {target}")
            for link in spec.get("links", []):
                if link not in compose_services or link == name:
                    self.fail(f"services.{name}.links", f"expected another service of this file (got {link!r})")

        state: dict[str, str] = {}

        def visit(name: str, path: list[str]) -> None:
            state[name] = "visiting"
            for target in graph.get(name, []):
                if state.get(target) == "visiting":
                    cycle = path[path.index(target):] + [target]
                    self.fail(f"services.{name}.depends_on", "expected no cycle (got " + " -> ".join(cycle) + ")")
                elif target in graph and target not in state:
                    visit(target, [*path, target])
            state[name] = "done"

        for name in graph:
            if name not in state:
                visit(name, [name])


class _ServiceMapper:
    """One Compose service onto one raw spec entry."""

    def __init__(self, document: _ComposeMapper, key: str, name: str, is_job: bool, services: Mapping,
                 volumes: set[str], secrets: Mapping[str, dict], configs: Mapping[str, dict]) -> None:
        self.document, self.key, self.name, self.is_job = document, key, name, is_job
        self.services, self.volumes, self.secrets, self.configs = services, volumes, secrets, configs
        self.volume_name: Optional[str] = None
        self.spec: dict[str, Any] = {}

    def fail(self, key: str, message: str) -> None:
        self.document.fail(f"{self.key}.{key}", message)

    def entries(self, name: str, raw: Any) -> list[tuple[str, Any]]:
        """(`name[i]`, entry) for each entry of the Compose list `name`; anything else is reported."""
        if not isinstance(raw, list):
            self.fail(name, f"expected a list (got {raw!r})")
            return []
        return [(f"{name}[{index}]", entry) for index, entry in enumerate(raw)]

    def map(self, compose: Mapping) -> dict:
        self.document.unsupported(self.key, compose, SERVICE_KEYS)
        if "build" not in compose and "image" not in compose:
            self.document.fail(self.key, "expected `build` or `image`")
        env: dict[str, str] = {}
        if "env_file" in compose:
            env.update(self.env_files(compose["env_file"]))
        if "environment" in compose:
            env.update(self.environment(compose["environment"]))
        if env:
            self.spec["env"] = env
        for name in SERVICE_KEYS:
            if name in compose and name not in ("environment", "env_file"):
                getattr(self, f"key_{name}")(compose[name])
        if "ports" in self.spec and not self.spec["ports"]:
            del self.spec["ports"]
        if self.is_job:
            for compose_key, spec_key in SERVICE_ONLY.items():
                if compose_key in compose:
                    self.fail(compose_key, f"{self.name} runs as a job (a service waits for it with "
                                           "service_completed_successfully), which has none")
                    self.spec.pop(spec_key, None)
        return self.spec

    # -- image and process ----------------------------------------------------------------------

    def key_build(self, raw: Any) -> None:
        build = {"context": raw} if isinstance(raw, str) else self.document.mapping(f"{self.key}.build", raw, "a path or a mapping")
        self.document.unsupported(f"{self.key}.build", build, ("context", "dockerfile", "target", "args"))
        context = build.get("context", ".")
        if not isinstance(context, str) or re.match(r"^[a-z]+://|^git@", context):
            self.fail("build.context", f"expected a directory of this repository (got {context!r})")
            return
        mapped: dict[str, Any] = {"context": self.document.project_path(context)}
        for name in ("dockerfile", "target"):
            if name in build:
                if isinstance(build[name], str) and build[name]:
                    mapped[name] = build[name]
                else:
                    self.fail(f"build.{name}", f"expected a string (got {build[name]!r})")
        if "args" in build:
            mapped["args"] = self.assignments("build.args", build["args"])
        self.spec["build"] = mapped

    def key_image(self, raw: Any) -> None:
        if "build" in self.spec:
            return  # image next to build only names the built image; the stack names it <imageRepository>/<service>
        if isinstance(raw, str) and raw:
            self.spec["image"] = raw
        else:
            self.fail("image", f"expected an image reference (got {raw!r})")

    def argv(self, key: str, raw: Any) -> Optional[list[str]]:
        """A command as a list, or a string split like a shell would (as Compose does)."""
        try:
            argv = shlex.split(raw) if isinstance(raw, str) else raw
        except ValueError as error:
            self.fail(key, f"expected a command line ({error}: {raw!r})")
            return None
        if not isinstance(argv, list) or not argv or not all(isinstance(a, (str, int, float)) for a in argv):
            self.fail(key, f"expected a non-empty command, as a list or a string (got {raw!r})")
            return None
        return [str(a) for a in argv]

    def key_entrypoint(self, raw: Any) -> None:
        argv = self.argv("entrypoint", raw)
        if argv:
            self.spec["command"] = argv

    def key_command(self, raw: Any) -> None:
        argv = self.argv("command", raw)
        if argv:
            self.spec["args"] = argv

    def key_user(self, raw: Any) -> None:
        text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        match = re.fullmatch(r"([0-9]+)(?::([0-9]+))?", text) if isinstance(text, str) else None
        if not match or int(match.group(1)) == 0:
            self.fail("user", "expected a numeric non-root uid or uid:gid, such as 10001 (the targets run no "
                              f"container as root and Kubernetes verifies the user by number) (got {raw!r})")
        else:
            self.spec["user"] = text if match.group(2) else int(match.group(1))

    def key_read_only(self, raw: Any) -> None:
        if isinstance(raw, bool):
            self.spec["readOnly"] = raw
        else:
            self.fail("read_only", f"expected true or false (got {raw!r})")

    def key_cap_add(self, raw: Any) -> None:
        if isinstance(raw, list) and all(isinstance(c, str) for c in raw):
            self.spec["capabilities"] = [c.upper().removeprefix("CAP_") for c in raw]
        else:
            self.fail("cap_add", f"expected a list of capability names (got {raw!r})")

    def key_cap_drop(self, raw: Any) -> None:
        if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
            self.fail("cap_drop", f"expected a list of capability names (got {raw!r})")
        # Nothing to map: every container already starts with all capabilities dropped.

    def key_restart(self, raw: Any) -> None:
        allowed = ("no",) if self.is_job else ("always", "unless-stopped")
        policy = "no" if raw is False else raw  # YAML reads an unquoted `no` as false
        if policy not in allowed:
            what = "a job runs once and a failure fails `up`" if self.is_job else "services are always restarted"
            self.fail("restart", f"expected {' or '.join(allowed)}: {what} (got {raw!r})")

    # -- environment ----------------------------------------------------------------------------

    def assignments(self, key: str, raw: Any) -> dict[str, str]:
        """`{K: v}` or `[K=v]`; a name without a value (taken from the host's environment) is refused."""
        if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
        if not isinstance(raw, Mapping):
            self.fail(key, f"expected a mapping or a list of NAME=value (got {raw!r})")
            return {}
        values = {}
        for name, value in raw.items():
            if value is None:
                self.fail(f"{key}.{name}", "expected a value: values from the environment of the machine "
                                           "running the stack are not taken (per-environment values belong in the stack config)")
            elif isinstance(value, (Mapping, list)):
                self.fail(f"{key}.{name}", f"expected a string (got {value!r})")
            else:
                values[str(name)] = str(value).lower() if isinstance(value, bool) else str(value)
        return values

    def environment(self, raw: Any) -> dict[str, str]:
        return self.assignments("environment", raw)

    def env_files(self, raw: Any) -> dict[str, str]:
        entries = raw if isinstance(raw, list) else [raw]
        env: dict[str, str] = {}
        for index, entry in enumerate(entries):
            key = "env_file" if isinstance(raw, (str, Mapping)) else f"env_file[{index}]"
            spec = {"path": entry} if isinstance(entry, str) else self.document.mapping(key, entry, "a path")
            self.document.unsupported(f"{self.key}.{key}", spec, ("path", "required"))
            if not isinstance(spec.get("path"), str):
                self.fail(key, f"expected the path of an env file (got {entry!r})")
                continue
            path = self.document.project_path(spec["path"])
            full = os.path.join(self.document.base_dir, path)
            if not os.path.isfile(full):
                if spec.get("required", True) is not False:
                    self.fail(key, f"expected an existing env file (got {path})")
                continue
            values = dotenv.dotenv_values(full, interpolate=False)
            env.update(self.assignments(key, _literal(dict(values), "", lambda k, m: self.fail(f"{key}.{k}", m))))
        return env

    # -- network --------------------------------------------------------------------------------

    def add_port(self, key: str, target: int, published: Optional[int], name: Optional[str]) -> None:
        ports = self.spec.setdefault("ports", {})
        existing = next((n for n, p in ports.items() if p["port"] == target), None)
        if existing is not None:
            if published is not None:
                self.fail(key, f"container port {target} is listed twice")
            return
        entry = {"port": target}
        if published is not None:
            entry["publish"] = published
        ports[name or f"p{target}"] = entry

    def port_number(self, key: str, raw: Any, what: str) -> Optional[int]:
        text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        if isinstance(text, str) and re.fullmatch(r"[0-9]+-[0-9]+", text):
            self.fail(key, f"expected one {what} port, not a range (got {raw!r})")
        elif isinstance(text, str) and text.isdigit() and 1 <= int(text) <= 65535:
            return int(text)
        else:
            self.fail(key, f"expected a {what} port from 1 to 65535 (got {raw!r})")
        return None

    def key_ports(self, raw: Any) -> None:
        self.spec.setdefault("ports", {})
        for key, entry in self.entries("ports", raw):
            if isinstance(entry, Mapping):
                entry = _without_extensions(entry)
                self.document.unsupported(f"{self.key}.{key}", entry, ("target", "published", "host_ip", "protocol", "name"))
                host_ip, published, target = entry.get("host_ip"), entry.get("published"), entry.get("target")
                protocol, name = entry.get("protocol", "tcp"), entry.get("name")
            else:
                match = _PORT.match(str(entry)) if isinstance(entry, (str, int)) and not isinstance(entry, bool) else None
                if not match:
                    self.fail(key, f"expected [host_ip:]published:target[/tcp] (got {entry!r})")
                    continue
                host_ip, published, target = match.group("ip"), match.group("published") or None, match.group("target")
                protocol, name = match.group("protocol") or "tcp", None
            if protocol != "tcp":
                self.fail(key, f"expected a tcp port (got {protocol!r})")
            if host_ip not in (None, "127.0.0.1", "localhost"):
                self.fail(key, f"expected no host_ip or 127.0.0.1: published ports listen on the loopback host (got {host_ip!r})")
            if published is None:
                self.fail(key, f"expected a host port (published:target): a random host port cannot be "
                               f"addressed; use expose for a port that is not published (got {entry!r})")
                continue
            target_port = self.port_number(key, target, "container")
            published_port = self.port_number(key, published, "published")
            if target_port and published_port:
                self.add_port(key, target_port, published_port, name)

    def key_expose(self, raw: Any) -> None:
        for key, entry in self.entries("expose", raw):
            port, _, protocol = str(entry).partition("/")
            if protocol not in ("", "tcp"):
                self.fail(key, f"expected a tcp port (got {entry!r})")
            number = self.port_number(key, port, "container")
            if number:
                self.add_port(key, number, None, None)

    def key_links(self, raw: Any) -> None:
        if not isinstance(raw, list) or not all(isinstance(link, str) for link in raw):
            self.fail("links", f"expected a list of service names (got {raw!r})")
            return
        for link in raw:
            if ":" in link:
                self.fail("links", f"expected a service name without an alias: services are reached by name (got {link!r})")
        self.spec["links"] = [link for link in raw if ":" not in link]

    def key_depends_on(self, raw: Any) -> None:
        if isinstance(raw, list) and all(isinstance(name, str) for name in raw):
            self.spec["dependsOn"] = {name: "started" for name in raw}
            return
        entries = self.document.mapping(f"{self.key}.depends_on", raw, "a list or a mapping of service names")
        depends_on = {}
        for target, spec in entries.items():
            key = f"depends_on.{target}"
            spec = self.document.mapping(f"{self.key}.{key}", spec)
            self.document.unsupported(f"{self.key}.{key}", spec, ("condition", "required"))
            if spec.get("required", True) is not True:
                self.fail(f"{key}.required", "expected true: every dependency is deployed with the stack")
            condition = spec.get("condition", "service_started")
            if not isinstance(condition, str) or condition not in CONDITIONS:
                self.fail(f"{key}.condition", "expected one of " + ", ".join(CONDITIONS) + f" (got {condition!r})")
            else:
                depends_on[target] = CONDITIONS[condition]
        self.spec["dependsOn"] = depends_on

    # -- health and resources -------------------------------------------------------------------

    def key_healthcheck(self, raw: Any) -> None:
        check = self.document.mapping(f"{self.key}.healthcheck", raw)
        self.document.unsupported(f"{self.key}.healthcheck", check,
                                  ("test", "interval", "timeout", "retries", "start_period", "disable"))
        test = check.get("test")
        if check.get("disable") is True or test in (["NONE"], "NONE"):
            return
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if not (isinstance(test, list) and len(test) > 1 and test[0] in ("CMD", "CMD-SHELL")
                and all(isinstance(arg, str) for arg in test)):
            self.fail("healthcheck.test", f"expected [CMD, ...], [CMD-SHELL, command] or a command string (got {test!r})")
            return
        health: dict[str, Any] = {"command": test[1:] if test[0] == "CMD" else ["sh", "-c", " ".join(test[1:])]}
        for compose_key, spec_key in (("interval", "interval"), ("timeout", "timeout"), ("start_period", "startPeriod")):
            if compose_key in check:
                seconds = _seconds(check[compose_key])
                if seconds is None:
                    self.fail(f"healthcheck.{compose_key}", f"expected a duration such as 10s or 1m30s (got {check[compose_key]!r})")
                else:
                    health[spec_key] = seconds
        if "retries" in check:
            retries = check["retries"]
            if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 1:
                health["retries"] = retries
            else:
                self.fail("healthcheck.retries", f"expected a positive integer (got {retries!r})")
        self.spec["health"] = health

    def key_deploy(self, raw: Any) -> None:
        deploy = self.document.mapping(f"{self.key}.deploy", raw)
        self.document.unsupported(f"{self.key}.deploy", deploy, ("replicas", "resources", "mode"))
        if deploy.get("mode", "replicated") != "replicated":
            self.fail("deploy.mode", f"expected replicated (got {deploy['mode']!r})")
        if "replicas" in deploy:
            replicas = deploy["replicas"]
            if self.is_job:
                self.fail("deploy.replicas", f"{self.name} runs as a job (a service waits for it with service_completed_successfully), which runs once")
            elif isinstance(replicas, int) and not isinstance(replicas, bool):
                self.spec["replicas"] = replicas
            else:
                self.fail("deploy.replicas", f"expected an integer (got {replicas!r})")
        resources = self.document.mapping(f"{self.key}.deploy.resources", deploy.get("resources"))
        self.document.unsupported(f"{self.key}.deploy.resources", resources, ("limits", "reservations"))
        limits = self.document.mapping(f"{self.key}.deploy.resources.limits", resources.get("limits"))
        self.document.unsupported(f"{self.key}.deploy.resources.limits", limits, ("cpus", "memory"))
        reservations = self.document.mapping(f"{self.key}.deploy.resources.reservations", resources.get("reservations"))
        self.document.unsupported(f"{self.key}.deploy.resources.reservations", reservations, ("cpus",))
        for section, values, spec_key in (("limits", limits, "cpu"), ("reservations", reservations, "cpuRequest")):
            if "cpus" in values:
                try:
                    self.spec[spec_key] = float(values["cpus"])
                except (TypeError, ValueError):
                    self.fail(f"deploy.resources.{section}.cpus", f"expected a number of CPUs such as 0.5 (got {values['cpus']!r})")
        if "memory" in limits:
            memory = _mebibytes(limits["memory"])
            if memory is None:
                self.fail("deploy.resources.limits.memory", f"expected a size such as 256m or 1g (got {limits['memory']!r})")
            else:
                self.spec["memory"] = memory

    # -- storage and files ----------------------------------------------------------------------

    def key_volumes(self, raw: Any) -> None:
        for key, entry in self.entries("volumes", raw):
            if isinstance(entry, str):
                source, _, rest = entry.partition(":") if ":" in entry else ("", "", entry)
                target, _, mode = rest.partition(":")
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
                read_only = mode == "ro"
                if mode not in ("", "rw", "ro"):
                    self.fail(key, f"expected no mode, rw or ro (got {mode!r})")
            elif isinstance(entry, Mapping):
                entry = _without_extensions(entry)
                self.document.unsupported(f"{self.key}.{key}", entry, ("type", "source", "target", "read_only"))
                kind, source, target = entry.get("type"), entry.get("source") or "", entry.get("target")
                read_only = entry.get("read_only", False)
            else:
                self.fail(key, f"expected source:target or a mapping (got {entry!r})")
                continue
            if kind == "bind":
                self.fail(key, f"expected a named volume: a bind mount of a host path ({source}) does not exist "
                               "on a cluster; use a named volume, or configs for files")
            elif kind != "volume":
                self.fail(key, f"expected type volume (got {kind!r})")
            elif not source:
                self.fail(key, "expected a named volume (name:/path): an anonymous volume's data would be lost on update")
            elif source not in self.volumes:
                self.fail(key, f"expected a volume declared in the top-level volumes (got {source!r})")
            elif read_only:
                self.fail(key, "expected a writable volume: a service's named volume holds its state")
            elif not isinstance(target, str) or not target.startswith("/"):
                self.fail(key, f"expected an absolute path in the container (got {target!r})")
            elif self.volume_name is not None:
                self.fail(key, f"expected one named volume per service (already {self.volume_name})")
            else:
                self.volume_name = source
                self.spec["volume"] = {"path": target}

    def file_references(self, kind: str, raw: Any, default_target: Callable[[str], str]) -> dict[str, str]:
        """Service-level `secrets:`/`configs:`: {path in the container: top-level name}."""
        definitions = self.secrets if kind == "secrets" else self.configs
        mounts = {}
        for key, entry in self.entries(kind, raw):
            reference = {"source": entry} if isinstance(entry, str) else self.document.mapping(f"{self.key}.{key}", entry, "a name or a mapping")
            self.document.unsupported(f"{self.key}.{key}", reference, ("source", "target"))
            source = reference.get("source")
            if not isinstance(source, str) or source not in definitions:
                self.fail(key, f"expected one of the top-level {kind}: " + ", ".join(sorted(definitions)) + f" (got {source!r})")
                continue
            target = str(reference.get("target") or default_target(source))
            target = target if target.startswith("/") else default_target(target)
            if kind == "secrets" and os.path.dirname(target) != "/run/secrets":
                self.fail(f"{key}.target", f"expected a file name directly in /run/secrets, where both targets mount secrets (got {target!r})")
                continue
            mounts[target] = source
        return mounts

    def key_secrets(self, raw: Any) -> None:
        mounts = self.file_references("secrets", raw, lambda name: f"/run/secrets/{name}")
        if mounts:
            self.spec["secretFiles"] = mounts

    def key_configs(self, raw: Any) -> None:
        mounts = self.file_references("configs", raw, lambda name: f"/{name}")
        if mounts:
            self.spec["files"] = {path: self.configs[name]["file"] for path, name in mounts.items()}
