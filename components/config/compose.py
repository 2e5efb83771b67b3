"""A Compose file as the app spec: `cloudservice:compose: path/to/compose.yaml`.

Compose's own loader reads the file: `compose-loader` (toolchain/compose-loader) runs compose-go, the
library Docker Compose and Kompose load with, so variables are interpolated from the `.env` beside
the file and the stack's `composeEnv` (never from whoever's shell), `composeProfiles` pick the
profiles, `include`, `extends`, anchors and YAML 1.2 scalars work, and every short syntax arrives
normalised. `compose_to_spec` maps that project onto the raw app spec (`services`, `jobs`,
`networks`, `routes`), which the stack parser then validates like a hand-written one. A service that another
one waits for with `condition: service_completed_successfully` becomes a job.

Each Compose key is mapped, mapped approximately with a notice (`ComposeApp.notices`, shown by
`pulumi up` as warnings), or refused when it cannot exist on a cluster: host paths, the Docker
socket, privileged containers, host namespaces, devices, static IPs. Problems are reported all at
once, each naming the file, the service and the key, before any resource exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Optional

from .compose_rules import dns_name
from .compose_service import ServiceMapper
from .errors import ConfigError
from .exposed_ports import ImageInspector, inspect_local_image

LOADER = "compose-loader"


@dataclass(frozen=True)
class ComposeApp:
    services: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    networks: dict[str, dict] = field(default_factory=dict)
    """The app's networks when the file declares its own (empty: one default network)."""
    routes: list[dict] = field(default_factory=list)
    """The entry point's routes, from Kompose's kompose.service.expose labels."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Secret config key -> the content of the Compose secret's file (plain: the parser marks it secret)."""
    notices: tuple[str, ...] = ()
    """What was mapped approximately or ignored, for `pulumi up` to show as warnings."""


def load_compose(
    path: str,
    base_dir: str,
    given_secrets: Collection[str] = (),
    environment: Mapping[str, str] = {},
    profiles: Collection[str] = (),
    inspect: ImageInspector = inspect_local_image,
) -> ComposeApp:
    """Loads the Compose file at `path` (relative to `base_dir`) with Compose's loader and maps it
    (see compose_to_spec). `environment` plays the shell's part for interpolation, over the `.env`."""
    project = run_loader(os.path.join(os.path.abspath(base_dir), path), environment, profiles, source=path)
    return compose_to_spec(project, path, base_dir, given_secrets, inspect)


def run_loader(compose_file: str, environment: Mapping[str, str], profiles: Collection[str], source: str) -> dict:
    """The project as compose-go normalises it (`docker compose config`), or a ConfigError with its message."""
    loader = shutil.which(LOADER)
    if loader is None:
        raise ConfigError(
            [
                f"compose: expected the Compose loader `{LOADER}` on PATH (built by `make toolchain`, "
                "put on PATH by scripts/env.sh)"
            ]
        )
    request = {
        "workingDir": os.path.dirname(compose_file),
        "files": [compose_file],
        "environment": dict(environment),
        "profiles": list(profiles),
    }
    result = subprocess.run([loader], input=json.dumps(request), capture_output=True, text=True, timeout=120)
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        raise ConfigError([f"compose: {LOADER} failed ({result.returncode}): {result.stderr.strip()[-500:]}"]) from None
    if "error" in answer:
        raise ConfigError([f"{source}: {answer['error']}"])
    return answer["project"]


def compose_to_spec(
    project: Mapping[str, Any],
    source: str,
    base_dir: str,
    given_secrets: Collection[str] = (),
    inspect: ImageInspector = inspect_local_image,
) -> ComposeApp:
    """Maps a normalised Compose project onto raw `services`/`jobs`/`networks`, or raises ConfigError
    listing every problem as `<source>: services.<service>.<key>: ...`.

    `source` is the Compose file's path relative to `base_dir`; `given_secrets` are the secret keys
    the stack config already sets; `inspect` reads a referenced image's exposed ports."""
    mapper = ProjectMapper(project, source, base_dir, given_secrets, inspect)
    app = mapper.map()
    if mapper.problems:
        raise ConfigError([f"{source}: {problem}" for problem in mapper.problems])
    return app


class ProjectMapper:
    """One pass over the project; collects every problem and notice instead of stopping at the first."""

    def __init__(
        self,
        project: Mapping[str, Any],
        source: str,
        base_dir: str,
        given_secrets: Collection[str],
        inspect: ImageInspector,
    ) -> None:
        self.project, self.source, self.inspect = project, source, inspect
        self.base_dir = os.path.realpath(base_dir)
        self.given_secrets = set(given_secrets)
        self.problems: list[str] = []
        self.notices: list[str] = []
        self.secret_values: dict[str, str] = {}

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def notice(self, key: str, message: str) -> None:
        self.notices.append(f"{self.source}: {key}: {message}")

    def project_path(self, key: str, path: str) -> Optional[str]:
        """An absolute path from the loader as a path relative to the project root, or None (reported)
        when it lies outside the project."""
        resolved = os.path.realpath(path)
        if os.path.commonpath([self.base_dir, resolved]) != self.base_dir:
            self.fail(key, f"expected a path inside the project (got {path})")
            return None
        return os.path.relpath(resolved, self.base_dir)

    def map(self) -> ComposeApp:
        services = self.project.get("services") or {}
        if not services:
            self.fail("services", "expected at least one service (in the active profiles)")
        jobs = {
            target
            for spec in services.values()
            for target, dependency in (spec.get("depends_on") or {}).items()
            if dependency.get("condition") == "service_completed_successfully"
        }
        networks = self.networks(services)
        secrets = self.top_level_files("secrets")
        configs = self.top_level_files("configs")
        mapped: dict[str, dict] = {}
        mappers: dict[str, ServiceMapper] = {}
        volume_users: dict[str, list[str]] = {}
        for name, spec in services.items():
            service = mappers[name] = ServiceMapper(self, name, spec, name in jobs, secrets, configs, bool(networks))
            mapped[name] = service.map()
            for volume in service.named_volumes:
                volume_users.setdefault(volume, []).append(name)
        for volume, users in volume_users.items():
            if len(users) > 1:
                self.fail(
                    f"volumes.{volume}",
                    "expected a named volume per service (a volume or PVC each, which "
                    "one replica writes); used by " + ", ".join(users),
                )
        self.aliases_from_links(mapped)
        routes = [route for service in mappers.values() for route in service.routes()]
        routed = {route["service"] for route in routes}
        for name, service in mappers.items():
            referenced = self.referenced(name, mapped) or dns_name(name) in routed
            if name not in jobs and "ports" not in mapped[name] and referenced:
                service.ports_from_image()
        self.check_reachable(mapped, jobs)
        for name in mapped:
            if dns_name(name) != name:
                self.notice(f"services.{name}", f"named {dns_name(name)} (a DNS label, as both targets need)")
        return ComposeApp(
            services={dns_name(n): s for n, s in mapped.items() if n not in jobs},
            jobs={dns_name(n): s for n, s in mapped.items() if n in jobs},
            networks=networks,
            routes=routes,
            secrets=self.secret_values,
            notices=tuple(self.notices),
        )

    def networks(self, services: Mapping[str, Any]) -> dict[str, dict]:
        """The file's networks, when it declares any besides `default`: Compose isolates them."""
        declared = self.project.get("networks") or {}
        used = {network for spec in services.values() for network in (spec.get("networks") or {"default": None})}
        if set(declared) <= {"default"} and used <= {"default"}:
            return {}
        networks = {}
        for name, spec in declared.items():
            spec = spec or {}
            if spec.get("external"):
                networks[dns_name(name)] = {"external": spec.get("name") or name}
                continue
            if name != "default":  # the app's default network, which the stack always has
                networks[dns_name(name)] = {}
            if spec.get("driver") not in (None, "", "bridge"):
                self.notice(
                    f"networks.{name}.driver",
                    f"{spec['driver']}: a bridge network on Docker, the pod network on Kubernetes",
                )
            if spec.get("internal"):
                self.notice(f"networks.{name}.internal", "its workloads can still reach outside addresses")
        return networks

    def top_level_files(self, kind: str) -> dict[str, dict]:
        """Top-level `secrets:` or `configs:`: name -> {file: project path} or {external: True}."""
        definitions = {}
        for name, spec in (self.project.get(kind) or {}).items():
            key = f"{kind}.{name}"
            if kind == "secrets" and spec.get("external"):
                if name not in self.given_secrets:
                    self.fail(f"{key}.external", f"expected a stack secret: `pulumi config set --secret {name}`")
                definitions[name] = {"external": True}
                continue
            if not spec.get("file"):
                what = "a stack secret" if kind == "secrets" else "a file"
                self.fail(key, f"expected `file:` (inline and environment {kind} are not mapped; use {what})")
                continue
            path = self.project_path(f"{key}.file", spec["file"])
            if path is None:
                continue
            definitions[name] = {"file": path}
            if kind == "secrets" and name not in self.given_secrets:  # the stack's own secret wins
                self.read_secret(key, name, path)
        return definitions

    def read_secret(self, key: str, name: str, path: str) -> None:
        try:
            with open(os.path.join(self.base_dir, path), encoding="utf-8") as handle:
                self.secret_values[name] = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            self.fail(
                f"{key}.file",
                f"expected a readable text file, or set the stack secret "
                f"`pulumi config set --secret {name}` ({error}: {path})",
            )

    def aliases_from_links(self, mapped: Mapping[str, dict]) -> None:
        """`links: [db:database]` makes db answer to `database` too."""
        for spec in mapped.values():
            for target, alias in spec.pop("linkAliases", {}).items():
                if target in mapped and alias != target and alias not in mapped[target].get("aliases", []):
                    mapped[target].setdefault("aliases", []).append(alias)

    @staticmethod
    def users(name: str, mapped: Mapping[str, dict]) -> list[str]:
        """The services that link to or depend on `name`."""
        return sorted(n for n, s in mapped.items() if dns_name(name) in (*s.get("links", []), *s.get("dependsOn", {})))

    def referenced(self, name: str, mapped: Mapping[str, dict]) -> bool:
        """Whether another workload reaches `name`: it links to or depends on it, or names it as a host in
        its environment or command line (`REDIS_HOST=redis`, `postgres://db:5432/app`)."""
        host = re.compile(rf"(^|[\s/@=,]){re.escape(name)}($|[\s:/,])")
        mentions = (
            value
            for other, spec in mapped.items()
            if other != name
            for value in (*spec.get("env", {}).values(), *spec.get("args", []), *spec.get("command", []))
        )
        return bool(self.users(name, mapped)) or any(host.search(value) for value in mentions)

    def check_reachable(self, mapped: Mapping[str, dict], jobs: Collection[str]) -> None:
        """A service others reach by name needs a port: on Kubernetes its name is a Service's."""
        for name, spec in mapped.items():
            users = [
                user
                for user in self.users(name, mapped)
                if dns_name(name) in mapped[user].get("links", [])
                or mapped[user].get("dependsOn", {}).get(dns_name(name)) != "completed"
            ]
            if name not in jobs and users and "ports" not in spec:
                self.notice(
                    f"services.{name}",
                    "no ports (none in the file or its image): reachable by nobody on "
                    f"Kubernetes, though {', '.join(users)} depend on it; declare them "
                    "with `expose:`",
                )
