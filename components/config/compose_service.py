"""One Compose service (as compose-go normalised it) onto one raw app spec entry."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from ..conventions import SECRETS_DIR
from .compose_rules import (
    ANY_ADDRESS,
    CONDITIONS,
    DIRECTORY_FILES,
    EXTENSION,
    HANDLED_ELSEWHERE,
    HOST_BOUND,
    IGNORED,
    LOOPBACK,
    RESTARTS,
    WATCH_ACTIONS,
    dns_name,
    mebibytes,
    seconds,
)
from .errors import DNS_LABEL, FILE_LIMIT
from .exposed_ports import exposed_ports

# Kompose's labels for a HorizontalPodAutoscaler (kompose.hpa.cpu, .replicas.min, ...).
KOMPOSE_HPA = "kompose.hpa."
# Kompose's labels for an Ingress: `true` (no host) or hosts with an optional path, comma-separated.
KOMPOSE_EXPOSE = "kompose.service.expose"
KOMPOSE_TLS_SECRET = f"{KOMPOSE_EXPOSE}.tls-secret"

if TYPE_CHECKING:
    from .compose import ProjectMapper


class ServiceMapper:
    """One Compose service onto one raw spec entry."""

    def __init__(
        self,
        project: ProjectMapper,
        name: str,
        compose: Mapping[str, Any],
        is_job: bool,
        secrets: Mapping[str, dict],
        configs: Mapping[str, dict],
        has_networks: bool,
    ) -> None:
        self.project, self.name, self.is_job = project, name, is_job
        self.key = f"services.{name}"
        self.compose = {k: v for k, v in compose.items() if v not in (None, [], {}, "") and not k.startswith("x-")}
        self.extension = compose.get(EXTENSION) or {}
        self.secrets, self.configs, self.has_networks = secrets, configs, has_networks
        self.named_volumes: list[str] = []
        self.kompose_hpa: dict[str, Any] = {}
        self.kompose_expose: dict[str, str] = {}
        self.spec: dict[str, Any] = {}

    def fail(self, key: str, message: str) -> None:
        self.project.fail(f"{self.key}.{key}", message)

    def notice(self, key: str, message: str) -> None:
        self.project.notice(f"{self.key}.{key}", message)

    def map(self) -> dict:
        compose = self.compose
        if "build" not in compose and "image" not in compose:
            self.project.fail(self.key, "expected `build` or `image`")
        for key, value in compose.items():
            if key in HOST_BOUND and HOST_BOUND[key][0](value):
                self.fail(key, f"not supported: {HOST_BOUND[key][1]} (got {value!r})")
            elif key in IGNORED:
                self.notice(key, f"ignored: {IGNORED[key]}")
            elif hasattr(self, f"key_{key}"):
                getattr(self, f"key_{key}")(value)
            elif key not in HOST_BOUND and key not in HANDLED_ELSEWHERE:
                self.fail(key, "Compose key not supported by the stack")
        self.resources()
        self.autoscale()
        if self.is_job:
            self.as_job()
        if not isinstance(self.extension, dict):
            self.fail(EXTENSION, f"expected a mapping of app spec keys (got {self.extension!r})")
        else:
            self.spec.update(self.extension)
        return self.spec

    def as_job(self) -> None:
        for spec_key, compose_key in (
            ("ports", "ports"),
            ("volumes", "volumes"),
            ("health", "healthcheck"),
            ("aliases", "container_name"),
            ("restart", "restart"),
            ("replicas", "deploy"),
            ("autoscale", "labels"),
            ("sync", "develop"),
        ):
            if spec_key in self.spec:
                if spec_key in ("ports", "health", "aliases", "restart", "replicas", "autoscale", "sync"):
                    self.notice(
                        compose_key,
                        f"ignored: {self.name} runs as a job (a service waits for it with "
                        "service_completed_successfully), to its exit, once",
                    )
                else:
                    self.fail(
                        compose_key,
                        f"{self.name} runs as a job (a service waits for it with "
                        "service_completed_successfully), which keeps no volume",
                    )
                del self.spec[spec_key]

    # -- image and process ----------------------------------------------------------------------

    def key_build(self, build: Mapping[str, Any]) -> None:
        context = build.get("context", "")
        if re.match(r"^[a-z]+://|^git@", context):
            self.fail("build.context", f"expected a directory of this repository (got {context!r})")
            return
        for key in ("dockerfile_inline", "additional_contexts", "ssh", "secrets"):
            if build.get(key):
                self.fail(f"build.{key}", "not supported: the stack builds from a context directory and its Dockerfile")
        path = self.project.project_path(f"{self.key}.build.context", context)
        if path is None:
            return
        mapped: dict[str, Any] = {"context": path, "dockerfile": build.get("dockerfile") or "Dockerfile"}
        if build.get("target"):
            mapped["target"] = build["target"]
        args = {k: v for k, v in (build.get("args") or {}).items() if v is not None}
        if args:
            mapped["args"] = args
        platforms = build.get("platforms") or []
        if self.compose.get("platform") or len(platforms) == 1:
            mapped["platform"] = self.compose.get("platform") or platforms[0]
        elif platforms:
            self.notice("build.platforms", "the image is built for the engine's platform only")
        self.spec["build"] = mapped

    def key_image(self, image: Optional[str]) -> None:
        if image and "build" not in self.compose:  # next to build it only names the built image
            self.spec["image"] = image

    def key_platform(self, platform: str) -> None:
        if "build" not in self.compose:
            self.notice("platform", "ignored: the image is run as the engine has it")

    def key_entrypoint(self, argv: list) -> None:
        self.spec["command"] = [str(a) for a in argv]

    def key_command(self, argv: list) -> None:
        self.spec["args"] = [str(a) for a in argv]

    def key_develop(self, develop: Mapping[str, Any]) -> None:
        """develop.watch: `make dev`'s live update (`sync`); `pulumi up` deploys the image either way.
        Syncing writes into the running container: only where `x-cloudservice: {readOnly: false}`
        makes its root file system writable (Compose's default, the stack's opt-out)."""
        rules = []
        for index, trigger in enumerate(develop.get("watch") or []):
            key, action = f"develop.watch[{index}]", trigger.get("action")
            if action not in WATCH_ACTIONS:
                self.notice(f"{key}.action", f"{action}: not supported by `make dev`; a save there rebuilds instead")
                continue
            writable = isinstance(self.extension, dict) and self.extension.get("readOnly") is False
            if action != "rebuild" and not writable:
                self.notice(
                    key,
                    f"not synced: {trigger.get('target')} is on the read-only root file system (set "
                    "`x-cloudservice: {readOnly: false}` to sync there); a save there rebuilds instead",
                )
                continue
            path = self.project.project_path(f"{self.key}.{key}.path", trigger.get("path", ""))
            if path is None:
                continue
            rule = {"path": path, "action": action}
            if trigger.get("target"):
                rule["target"] = trigger["target"]
            if trigger.get("ignore"):
                rule["ignore"] = list(trigger["ignore"])
            rules.append(rule)
        if rules:
            self.spec["sync"] = rules

    def key_user(self, user: str) -> None:
        match = re.fullmatch(r"([0-9]+)(?::([0-9]+))?", str(user))
        if not match:
            self.fail(
                "user",
                "expected a numeric uid or uid:gid (Kubernetes checks a non-root user by number): "
                f"look up `{user}` with `docker run --rm --entrypoint id IMAGE {user}`",
            )
        elif int(match.group(1)) == 0:
            self.fail("user", "expected a non-root uid: containers run unprivileged on both targets (got 0)")
        else:
            self.spec["user"] = user if match.group(2) else int(match.group(1))

    def key_read_only(self, read_only: bool) -> None:
        self.spec["readOnly"] = read_only

    def key_cap_add(self, capabilities: list) -> None:
        added = [c.upper().removeprefix("CAP_") for c in capabilities]
        if "ALL" in added:
            self.fail("cap_add", "not supported: every capability makes a root-equivalent container")
        self.spec["capabilities"] = added

    def key_cap_drop(self, capabilities: list) -> None:
        """Nothing to map: every container already starts with all capabilities dropped."""

    def key_restart(self, restart: str) -> None:
        policy = RESTARTS.get(restart.split(":")[0])
        if policy is None:
            self.fail("restart", f"expected no, always, unless-stopped or on-failure (got {restart!r})")
        elif not self.is_job:
            self.spec["restart"] = policy

    def key_working_dir(self, path: str) -> None:
        self.spec["workingDir"] = path

    def key_init(self, init: bool) -> None:
        self.spec["init"] = init

    def key_tty(self, tty: bool) -> None:
        self.spec["tty"] = tty

    def key_stdin_open(self, stdin_open: bool) -> None:
        self.spec["stdinOpen"] = stdin_open

    def key_stop_signal(self, signal: str) -> None:
        self.spec["stopSignal"] = signal if signal.startswith("SIG") else f"SIG{signal}"

    def key_stop_grace_period(self, duration: str) -> None:
        grace = seconds(duration)
        if grace is None:
            self.fail("stop_grace_period", f"expected a duration such as 10s or 1m30s (got {duration!r})")
        else:
            self.spec["stopGracePeriod"] = grace

    def key_labels(self, labels: Mapping[str, str]) -> None:
        """The user's labels, except Kompose's autoscaling ones (kompose.hpa.*), which say `autoscale`,
        and its kompose.service.expose*, which say the stack's `routes`."""
        self.kompose_hpa.update({k: str(v) for k, v in labels.items() if k.startswith(KOMPOSE_HPA)})
        self.kompose_expose.update({k: str(v) for k, v in labels.items() if k.startswith(KOMPOSE_EXPOSE)})
        labels = {k: str(v) for k, v in labels.items() if not k.startswith((KOMPOSE_HPA, KOMPOSE_EXPOSE))}
        if labels:
            self.spec.setdefault("labels", {}).update(labels)

    def routes(self) -> list[dict]:
        """Kompose's kompose.service.expose as routes to the service's main port: `true` routes any
        host, `shop.localhost,api.localhost/v1` each host (and path); .tls-secret is each one's TLS Secret."""
        expose = self.kompose_expose.get(KOMPOSE_EXPOSE, "").strip()
        for key in set(self.kompose_expose) - {KOMPOSE_EXPOSE, KOMPOSE_TLS_SECRET}:
            self.notice(f"labels.{key}", "ignored: the stack's router or ingress controller serves every route")
        if expose.lower() in ("", "false"):
            if KOMPOSE_TLS_SECRET in self.kompose_expose:
                self.notice(f"labels.{KOMPOSE_TLS_SECRET}", f"ignored without {KOMPOSE_EXPOSE}")
            return []
        if self.is_job:
            self.notice(f"labels.{KOMPOSE_EXPOSE}", f"ignored: {self.name} runs as a job, which takes no requests")
            return []
        tls_secret = self.kompose_expose.get(KOMPOSE_TLS_SECRET)
        routes = []
        for target in [""] if expose.lower() == "true" else [t.strip() for t in expose.split(",") if t.strip()]:
            host, slash, path = target.partition("/")
            route: dict[str, Any] = {"service": dns_name(self.name)}
            if host:
                route["host"] = host
            if slash:
                route["path"] = f"/{path}"
            if tls_secret:
                route["tlsSecret"] = tls_secret
            routes.append(route)
        return routes

    def autoscale(self) -> None:
        """Kompose's labels, with Kompose's defaults: from kompose.hpa.replicas.min (else the replicas)
        up to .max (10), at .cpu percent (50). Its memory target is a quantity where the spec's is a
        percent of the memory limit: reported, not guessed."""
        if not self.kompose_hpa:
            return
        # Label values are strings; Kompose writes the CPU target as 80 or 80%.
        labels = {k: int(v.rstrip("%")) if v.rstrip("%").isdigit() else v for k, v in self.kompose_hpa.items()}
        autoscale: dict[str, Any] = {"max": labels.get(f"{KOMPOSE_HPA}replicas.max", 10)}
        autoscale["cpu"] = labels.get(f"{KOMPOSE_HPA}cpu", 50)
        if f"{KOMPOSE_HPA}memory" in labels:
            self.notice(
                f"labels.{KOMPOSE_HPA}memory",
                "ignored: give x-cloudservice autoscale.memory, a percent of the memory limit",
            )
        if f"{KOMPOSE_HPA}replicas.min" in labels:
            self.spec["replicas"] = labels[f"{KOMPOSE_HPA}replicas.min"]
        for key in set(labels) - {f"{KOMPOSE_HPA}{k}" for k in ("replicas.min", "replicas.max", "cpu", "memory")}:
            self.notice(f"labels.{key}", "ignored: not a Kompose autoscaling label")
        self.spec["autoscale"] = autoscale

    def key_sysctls(self, sysctls: Mapping[str, Any]) -> None:
        self.spec["sysctls"] = {k: str(v) for k, v in sysctls.items()}

    def key_ulimits(self, ulimits: Mapping[str, Any]) -> None:
        self.spec["ulimits"] = {
            name: limit
            if isinstance(limit, int)
            else {"soft": limit.get("soft", limit.get("single")), "hard": limit.get("hard", limit.get("single"))}
            for name, limit in ulimits.items()
        }

    def key_shm_size(self, size: Any) -> None:
        self.spec["shmSize"] = mebibytes(size)

    def key_tmpfs(self, paths: list) -> None:
        self.spec.setdefault("tmpfs", []).extend(path.split(":")[0] for path in paths)

    def key_extra_hosts(self, hosts: Any) -> None:
        if isinstance(hosts, list):  # host:ip or host=ip
            pairs = [re.split(r"=|:(?=[^:]*$)", entry, maxsplit=1) for entry in hosts]
            hosts = {}
            for host, address in (pair for pair in pairs if len(pair) == 2):
                hosts.setdefault(host, []).append(address)
        mapped = {}
        for host, addresses in hosts.items():
            addresses = addresses if isinstance(addresses, list) else [addresses]
            if "host-gateway" in addresses:
                self.fail(
                    f"extra_hosts.{host}",
                    "not supported: host-gateway is the Docker host, which a cluster's pods do not have",
                )
            else:
                mapped[host] = addresses
        if mapped:
            self.spec["extraHosts"] = mapped

    def key_container_name(self, name: str) -> None:
        self.alias("container_name", name)

    def key_hostname(self, name: str) -> None:
        self.alias("hostname", name)

    def alias(self, key: str, name: str) -> None:
        """Another name of the service is one more DNS name of it on both targets."""
        if name == self.name:
            return
        if not DNS_LABEL.match(name):
            self.notice(key, f"ignored: {name!r} is not a DNS label, so no name of the service on Kubernetes")
        elif name not in self.spec.get("aliases", []):
            self.spec.setdefault("aliases", []).append(name)

    def key_links(self, links: list) -> None:
        names = [link.split(":")[0] for link in links]
        self.spec["links"] = [dns_name(name) for name in names]
        aliases = {dns_name(name): alias for name, _, alias in (link.partition(":") for link in links) if alias}
        if aliases:
            self.spec["linkAliases"] = aliases

    def key_depends_on(self, depends_on: Mapping[str, Mapping[str, Any]]) -> None:
        self.spec["dependsOn"] = {
            dns_name(target): CONDITIONS[dependency.get("condition", "service_started")]
            for target, dependency in depends_on.items()
        }

    def key_network_mode(self, mode: str) -> None:
        if mode not in ("bridge", "default"):
            self.fail(
                "network_mode",
                f"not supported: {mode} (the host's, another container's or no network) does "
                "not exist for a pod; services join the app's networks",
            )

    def key_networks(self, networks: Mapping[str, Any]) -> None:
        for network, options in networks.items():
            for address in ("ipv4_address", "ipv6_address", "link_local_ips"):
                if (options or {}).get(address):
                    self.fail(
                        f"networks.{network}.{address}",
                        "not supported: static IPs; pods get theirs from the cluster (reach services by name)",
                    )
            for alias in (options or {}).get("aliases") or []:
                self.alias(f"networks.{network}.aliases", alias)
        if self.has_networks and list(networks) != ["default"]:
            self.spec["networks"] = [dns_name(n) for n in networks]

    # -- ports ----------------------------------------------------------------------------------

    def add_port(
        self, key: str, target: int, protocol: str, published: Optional[int], name: Optional[str] = None
    ) -> None:
        ports = self.spec.setdefault("ports", {})
        existing = next(
            (n for n, p in ports.items() if (p["port"], p.get("protocol", "tcp")) == (target, protocol)), None
        )
        if existing is not None:
            if published is not None and ports[existing].get("publish") not in (None, published):
                self.notice(
                    key, f"container port {target}/{protocol} is published once, on {ports[existing]['publish']}"
                )
            elif published is not None:
                ports[existing]["publish"] = published
            return
        entry: dict[str, Any] = {"port": target}
        if published is not None:
            entry["publish"] = published
        if protocol != "tcp":
            entry["protocol"] = protocol
        ports[name or f"{'p' if protocol == 'tcp' else 'u'}{target}"] = entry

    def key_ports(self, ports: list) -> None:
        for index, port in enumerate(ports):
            key = f"ports[{index}]"
            host_ip, protocol = port.get("host_ip"), port.get("protocol", "tcp")
            if protocol not in ("tcp", "udp"):
                self.fail(key, f"expected tcp or udp (got {protocol!r})")
                continue
            if host_ip in ANY_ADDRESS:
                self.notice(f"{key}.host_ip", f"{host_ip}: published on 127.0.0.1 only, like every port of the stack")
            elif host_ip not in LOOPBACK:
                self.fail(
                    f"{key}.host_ip",
                    f"expected no host_ip or 127.0.0.1: ports are published on the loopback host (got {host_ip!r})",
                )
                continue
            published = str(port.get("published") or "0")
            if "-" in published:  # a range of candidate host ports: the first free one, Docker says
                self.notice(f"{key}.published", f"the host port range {published} becomes its first port")
                published = published.split("-")[0]
            name = port.get("name") if DNS_LABEL.match(port.get("name") or "") else None
            self.add_port(key, int(port["target"]), protocol, int(published), name)

    def key_expose(self, exposed: list) -> None:
        for index, entry in enumerate(exposed):
            number, _, protocol = str(entry).partition("/")
            first, _, last = number.partition("-")
            if not (first.isdigit() and (last or first).isdigit()):
                self.fail(f"expose[{index}]", f"expected a port or range such as 8080 or 8000-8010 (got {entry!r})")
                continue
            for port in range(int(first), int(last or first) + 1):
                self.add_port(f"expose[{index}]", port, protocol or "tcp", None)

    def ports_from_image(self) -> None:
        """Compose users rarely declare `expose` for internal services: the image says it (EXPOSE)."""
        build = self.spec.get("build")
        found = exposed_ports(self.project.base_dir, build, self.spec.get("image"), self.project.inspect)
        for port, protocol in found:
            self.add_port("(image)", port, protocol, None)
        if found:
            self.notice("ports", "from the image's EXPOSE: " + ", ".join(f"{p}/{proto}" for p, proto in found))

    # -- health and resources -------------------------------------------------------------------

    def key_healthcheck(self, check: Mapping[str, Any]) -> None:
        test = check.get("test") or []
        if check.get("disable") or not test or test[0] == "NONE":
            return
        health: dict[str, Any] = {"command": test[1:] if test[0] == "CMD" else ["sh", "-c", " ".join(test[1:])]}
        for compose_key, spec_key in (
            ("interval", "interval"),
            ("timeout", "timeout"),
            ("start_period", "startPeriod"),
        ):
            if check.get(compose_key):
                health[spec_key] = seconds(check[compose_key])
        if check.get("retries"):
            health["retries"] = check["retries"]
        self.spec["health"] = health

    def key_deploy(self, deploy: Mapping[str, Any]) -> None:
        if deploy.get("mode") not in (None, "replicated"):
            self.notice("deploy.mode", f"{deploy['mode']}: runs as a replicated service")
        if deploy.get("replicas") is not None:
            self.spec["replicas"] = deploy["replicas"]
        policy = (deploy.get("restart_policy") or {}).get("condition")
        if policy and not self.is_job:
            self.spec["restart"] = {"none": "no", "any": "always"}.get(policy, policy)
        self.key_labels(deploy.get("labels") or {})
        for key in ("placement", "update_config", "rollback_config", "endpoint_mode"):
            if deploy.get(key):
                self.notice(f"deploy.{key}", "ignored: the targets place and roll workloads themselves")

    def resources(self) -> None:
        """deploy.resources, or the older mem_limit and cpus; scale is the older deploy.replicas."""
        resources = (self.compose.get("deploy") or {}).get("resources") or {}
        limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
        cpus, memory = (
            limits.get("cpus") or self.compose.get("cpus"),
            limits.get("memory") or self.compose.get("mem_limit"),
        )
        if cpus:
            self.spec["cpu"] = float(cpus)
        if reservations.get("cpus"):
            self.spec["cpuRequest"] = float(reservations["cpus"])
        if memory:
            self.spec["memory"] = mebibytes(memory)
        if self.compose.get("scale") is not None and "replicas" not in self.spec:
            self.spec["replicas"] = self.compose["scale"]
        self.key_labels(self.compose.get("annotations") or {})
        for var, value in (self.compose.get("environment") or {}).items():
            if value is None:
                self.notice(
                    f"environment.{var}",
                    "not set: neither the .env beside the file nor the stack's composeEnv gives it a value",
                )
            else:
                self.spec.setdefault("env", {})[var] = value

    # -- storage and files ----------------------------------------------------------------------

    def key_volumes(self, mounts: list) -> None:
        live_reload: list[str] = []
        anonymous: list[tuple[str, str]] = []
        for index, mount in enumerate(mounts):
            key, kind, target = f"volumes[{index}]", mount.get("type"), mount.get("target", "")
            if kind == "bind":
                if self.bind(key, mount):
                    live_reload.append(target)
            elif kind == "volume" and mount.get("source"):
                self.named_volume(key, mount)
            elif kind == "volume":
                anonymous.append((key, target))
            elif kind == "tmpfs":
                self.spec.setdefault("tmpfs", []).append(target)
            else:
                self.fail(key, f"expected a bind mount, a volume or a tmpfs (got type {kind!r})")
        for key, target in anonymous:
            if any(target.startswith(path.rstrip("/") + "/") for path in live_reload):
                self.notice(
                    key,
                    f"ignored: {target} only kept the image's files from the live-reload mount, which is not deployed",
                )
            else:
                self.spec.setdefault("ephemeral", []).append(target)

    def named_volume(self, key: str, mount: Mapping[str, Any]) -> None:
        source = mount["source"]
        definition = (self.project.project.get("volumes") or {}).get(source) or {}
        if definition.get("external"):
            self.fail(
                key,
                f"not supported: the external volume {source} lives outside the stack; let the stack "
                "make it (drop external)",
            )
            return
        self.named_volumes.append(source)
        self.add_volume(dns_name(source), mount["target"], bool(mount.get("read_only")))

    def add_volume(self, name: str, path: str, read_only: bool) -> None:
        """The service's first volume is `data`, the name the first release gave a Compose service's
        one volume: its Docker volume and PVC keep their names across the upgrade."""
        volumes = self.spec.setdefault("volumes", {})
        volumes["data" if not volumes else name] = {"path": path, **({"readOnly": True} if read_only else {})}

    def bind(self, key: str, mount: Mapping[str, Any]) -> bool:
        """A bind mount of a project path: a file or a directory of small text files become read-only
        files, the build context (a live-reload mount) is left to the image, a data directory becomes
        a named volume. True for a live-reload mount. Host paths stay refused."""
        source, target = mount.get("source", ""), mount.get("target", "")
        resolved = os.path.realpath(source)
        if os.path.commonpath([self.project.base_dir, resolved]) != self.project.base_dir:
            why = (
                "the Docker socket hands the container the engine"
                if source.endswith("docker.sock")
                else "a host path does not exist on a cluster's nodes"
            )
            self.fail(
                key,
                f"not supported: a bind mount of {source} ({why}); mount project files, or use a named volume for data",
            )
            return False
        relative = os.path.relpath(resolved, self.project.base_dir)
        context = (self.compose.get("build") or {}).get("context")
        if context and os.path.commonpath([os.path.realpath(context), resolved]) == os.path.realpath(context):
            self.notice(
                key,
                f"ignored: {relative} is the service's build context (a live-reload mount); the image has its files",
            )
            return True
        if os.path.isfile(resolved) and os.path.getsize(resolved) > FILE_LIMIT:
            self.fail(
                key,
                f"expected a project file of at most {FILE_LIMIT // 1024} KiB to mount as a file (got "
                f"{os.path.getsize(resolved) // 1024} KiB: {relative}); build it into the image",
            )
            return False
        files = self.small_text_files(resolved)
        if files is not None:
            self.spec.setdefault("files", {}).update(
                {os.path.join(target, name): os.path.join(relative, name) for name in files}
                if os.path.isdir(resolved)
                else {target: relative}
            )
            if not mount.get("read_only"):
                self.notice(key, f"{relative} is mounted read-only, as files (a change rolls the service)")
            return False
        self.notice(key, f"{relative} is a data directory: a named volume (a PVC on Kubernetes), created empty")
        self.add_volume(dns_name(f"{self.name}-{os.path.basename(relative)}"), target, bool(mount.get("read_only")))
        return False

    @staticmethod
    def small_text_files(path: str) -> Optional[list[str]]:
        """The names of the files to mount for a file ([""]) or a directory of at most 64 small UTF-8
        files; None for a missing path, an empty directory or one that holds data."""
        if os.path.isfile(path):
            names = [""]
        elif os.path.isdir(path):
            names = [os.path.relpath(os.path.join(root, f), path) for root, _, found in os.walk(path) for f in found]
            if not names or len(names) > DIRECTORY_FILES:
                return None
        else:
            return None
        total = 0
        for name in names:
            file = os.path.join(path, name) if name else path
            total += os.path.getsize(file)
            try:
                with open(file, encoding="utf-8") as handle:
                    handle.read()
            except (OSError, UnicodeDecodeError):
                return None
        return sorted(names) if total <= FILE_LIMIT else None

    def file_references(self, kind: str, references: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        """Service-level `secrets:`/`configs:`: {path in the container: top-level name}."""
        definitions = self.secrets if kind == "secrets" else self.configs
        mounts = {}
        for index, reference in enumerate(references):
            key, source = f"{kind}[{index}]", reference.get("source")
            if source not in definitions:
                continue  # reported with the top-level definition
            target = reference.get("target") or (f"{SECRETS_DIR}/{source}" if kind == "secrets" else f"/{source}")
            target = target if target.startswith("/") else f"{SECRETS_DIR}/{target}"
            if kind == "secrets" and os.path.dirname(target) != SECRETS_DIR:
                self.fail(
                    f"{key}.target",
                    f"expected a file name directly in {SECRETS_DIR}, where both targets mount "
                    f"secrets (got {target!r})",
                )
                continue
            mounts[target] = source
        return mounts

    def key_secrets(self, references: list) -> None:
        mounts = self.file_references("secrets", references)
        if mounts:
            self.spec["secretFiles"] = mounts

    def key_configs(self, references: list) -> None:
        mounts = self.file_references("configs", references)
        if mounts:
            self.spec.setdefault("files", {}).update(
                {path: self.configs[name]["file"] for path, name in mounts.items()}
            )
