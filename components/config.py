"""The stack's configuration: one typed model, parsed and validated in one place.

`parse_stack_config` turns raw config values (as Pulumi hands them to the program: strings, or
JSON for structured keys) into frozen dataclasses, or raises `ConfigError` naming every bad key
and what was expected. It runs before any resource is declared, so bad input never creates
anything. `load_stack_config` feeds it the current stack's config.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import pulumi

TARGETS = ("docker", "kubernetes")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
# Keys that hold credentials: they must be set with `pulumi config set --secret`.
SECRET_KEYS = ("registryPassword", "appSecret")

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUANTITY = re.compile(r"^[1-9][0-9]{0,5}(Mi|Gi|Ti)$")
# registry[:port]/path, as in `docker tag`: lowercase path components, optional :tag or @digest.
_REPOSITORY = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]{1,5})?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")


class ConfigError(pulumi.RunError, ValueError):
    """Raised for invalid configuration; lists each problem as `key: what is expected`.

    A RunError, so Pulumi reports the message alone, without a traceback."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class BuildSpec:
    context: str
    dockerfile: str = "Dockerfile"
    target: Optional[str] = None
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeSpec:
    path: str
    size: str = "1Gi"


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the app; the same spec drives the Docker and the Kubernetes target."""

    name: str
    port: int
    build: Optional[BuildSpec] = None
    image: Optional[str] = None
    publish: Optional[int] = None
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    links: tuple[str, ...] = ()
    replicas: int = 1
    volume: Optional[VolumeSpec] = None
    health_path: Optional[str] = None
    health_command: tuple[str, ...] = ()
    user: int = 10001
    read_only: bool = True
    cpu: float = 0.5
    cpu_request: float = 0.05
    memory_mb: int = 128

    @property
    def stateful(self) -> bool:
        return self.volume is not None


@dataclass(frozen=True)
class Registry:
    server: str
    username: str
    password: pulumi.Input[str]

    @property
    def url(self) -> str:
        """Docker's rule: a registry on the loopback host speaks plain HTTP, any other one HTTPS."""
        host = self.server.rsplit(":", 1)[0] if self.server.count(":") == 1 else self.server
        return ("http://" if host in ("localhost", "127.0.0.1") else "https://") + self.server


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    service_type: str = "NodePort"
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    storage_class: Optional[str] = None
    node_host: str = "127.0.0.1"


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    target: str
    services: tuple[ServiceSpec, ...]
    image_repository: str
    push: bool
    registry: Optional[Registry]
    pinned_images: Mapping[str, str]
    images_from: Optional[str]
    port_offset: int
    kubernetes: KubernetesSettings
    docker_host: Optional[str]
    secrets: Mapping[str, pulumi.Input[str]]

    @property
    def name_prefix(self) -> str:
        """Prefix of every engine/cluster object, so stacks side by side never clash."""
        return f"{self.project}-{self.stack}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/part-of": self.project,
            "app.kubernetes.io/managed-by": "pulumi",
            "cloudservice.dev/stack": self.stack,
        }

    def service(self, name: str) -> ServiceSpec:
        return next(s for s in self.services if s.name == name)


class _Reader:
    """Collects every problem instead of stopping at the first, so one run shows them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, expected: str, value: Any = None) -> None:
        got = "" if value is None else f" (got {value!r})"
        self.problems.append(f"{key}: expected {expected}{got}")

    def unknown(self, key: str, known: tuple[str, ...]) -> None:
        self.problems.append(f"{key}: unknown key; known keys are " + ", ".join(known))

    def integer(self, key: str, value: Any, low: int, high: int) -> Optional[int]:
        number = _as_int(value)
        if number is None or not low <= number <= high:
            self.fail(key, f"an integer from {low} to {high}", value)
            return None
        return number

    def number(self, key: str, value: Any, low: float, high: float) -> Optional[float]:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.fail(key, f"a number from {low} to {high}", value)
            return None
        try:
            number = float(value)
        except (ValueError, OverflowError):  # float(10**400) overflows
            number = None
        if number is None or not low <= number <= high:
            self.fail(key, f"a number from {low} to {high}", value)
            return None
        return number

    def boolean(self, key: str, value: Any) -> Optional[bool]:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(key, "true or false", value)
        return None

    def choice(self, key: str, value: Any, choices: tuple[str, ...]) -> Optional[str]:
        if value not in choices:
            self.fail(key, "one of " + ", ".join(choices), value)
            return None
        return value

    def text(self, key: str, value: Any, pattern: Optional[re.Pattern] = None, expected: str = "") -> Optional[str]:
        if not isinstance(value, str) or not value or (pattern and not pattern.match(value)):
            self.fail(key, expected or "a non-empty string", value)
            return None
        return value

    def mapping(self, key: str, value: Any) -> Mapping[str, Any]:
        value = _decode_json(value)
        if not isinstance(value, Mapping):
            self.fail(key, "an object (key: value pairs)", value)
            return {}
        return value

    def unknown_keys(self, prefix: str, given: Mapping[str, Any], known: tuple[str, ...]) -> None:
        for key in given:
            if key not in known:
                self.unknown(f"{prefix}{key}", known)


def _as_int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,9}", value.strip()):
        return int(value)
    return None


def _decode_json(value: Any) -> Any:
    """Structured config reaches the program as JSON text; plain YAML values come decoded."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def is_image_reference(value: str) -> bool:
    """True for `repository[:tag]` or `repository@sha256:<64 hex>`, as `docker pull` accepts."""
    name, _, digest = value.partition("@")
    if digest:
        return bool(_DIGEST.match(digest)) and bool(_REPOSITORY.match(name))
    last_slash = name.rfind("/")
    repo, colon, tag = name.rpartition(":") if name.rfind(":") > last_slash else (name, "", "")
    return bool(_REPOSITORY.match(repo)) and (not colon or bool(_TAG.match(tag)))


STACK_KEYS = (
    "target", "services", "imageRepository", "push", "registryServer", "registryUsername",
    "registryPassword", "images", "imagesFrom", "replicas", "portOffset", "dockerHost",
    "kubernetes", "appSecret", "buildArgs",
)
SERVICE_KEYS = (
    "build", "image", "port", "publish", "env", "secretEnv", "links", "replicas", "volume",
    "health", "user", "readOnly", "cpu", "cpuRequest", "memory",
)
KUBERNETES_KEYS = ("namespace", "serviceType", "kubeconfig", "context", "storageClass", "nodeHost")


def parse_stack_config(
    values: Mapping[str, Any],
    *,
    project: str,
    stack: str,
    is_secret: Callable[[str], bool] = lambda key: True,
    base_dir: str = ".",
) -> StackConfig:
    """Validates raw config `values` (keys without the project prefix) into a StackConfig.

    `is_secret(key)` tells whether a value was stored encrypted; `base_dir` resolves build contexts.
    """
    r = _Reader()
    r.unknown_keys("", values, STACK_KEYS)

    target = r.choice("target", values.get("target", "docker"), TARGETS)
    replicas_override = None
    if "replicas" in values:
        replicas_override = r.integer("replicas", values["replicas"], 0, 100)
    secrets = _read_secrets(r, values, is_secret)
    build_args = _read_env(r, "buildArgs", values.get("buildArgs", {}))
    services = _read_services(r, values.get("services"), base_dir, replicas_override, secrets, build_args)

    repository = r.text(
        "imageRepository", values.get("imageRepository", f"{project}"), _REPOSITORY,
        "a repository prefix such as localhost:5000/team or docker.io/user",
    )
    push = r.boolean("push", values.get("push", False))
    registry = _read_registry(r, values, push, secrets, repository or "")
    pinned = _read_pinned_images(r, values.get("images", {}), services)
    images_from = None
    if "imagesFrom" in values:
        images_from = r.text("imagesFrom", values["imagesFrom"], _STACK_NAME, "a stack name such as organization/cloudservice/dev")
    port_offset = r.integer("portOffset", values.get("portOffset", 0), 0, 65534)
    docker_host = values.get("dockerHost")
    if docker_host is not None:
        r.text("dockerHost", docker_host, re.compile(r"^(unix|tcp|ssh)://.+"), "a Docker host URL such as unix:///var/run/docker.sock")
    kubernetes = _read_kubernetes(r, values.get("kubernetes", {}), project, stack, target)

    if target == "docker":
        _check_docker_target(r, services, port_offset or 0)
    elif not push and not images_from:
        for service in services:
            if service.build is not None and service.name not in pinned:
                r.fail("push", f"true on the kubernetes target: the cluster pulls services.{service.name} from a "
                       "registry (or pin it in images, or set imagesFrom)", push)

    if r.problems:
        raise ConfigError(r.problems)
    return StackConfig(
        project=project, stack=stack, target=target, services=tuple(services),
        image_repository=repository, push=push, registry=registry, pinned_images=pinned,
        images_from=images_from, port_offset=port_offset, kubernetes=kubernetes,
        docker_host=docker_host, secrets=secrets,
    )


def _read_secrets(r: _Reader, values: Mapping[str, Any], is_secret: Callable[[str], bool]) -> dict:
    secrets = {}
    for key in SECRET_KEYS:
        if key not in values:
            continue
        if not is_secret(key):
            r.fail(key, f"a secret value: set it with `pulumi config set --secret {key}`")
        elif r.text(key, values[key]) is not None:
            secrets[key] = pulumi.Output.secret(values[key])
    return secrets


def _read_services(
    r: _Reader, raw: Any, base_dir: str, replicas_override: Optional[int], secrets: Mapping[str, Any],
    build_args: Mapping[str, str],
) -> list[ServiceSpec]:
    specs = r.mapping("services", raw if raw is not None else {})
    if not specs and not r.problems:
        r.fail("services", "at least one service")
    services = []
    for name, spec in specs.items():
        key = f"services.{name}"
        if r.text(f"{key} (name)", name, _DNS_LABEL, "a lowercase DNS label (a-z, 0-9, '-'; at most 32)") is None:
            continue
        service = _read_service(r, key, name, r.mapping(key, spec), base_dir, replicas_override, secrets, build_args)
        if service:
            services.append(service)
    names = {s.name for s in services}
    for service in services:
        for link in service.links:
            if link not in names or link == service.name:
                r.fail(f"services.{service.name}.links", "names of other services: " + ", ".join(sorted(names - {service.name})), link)
    return _linked_first(r, services)


def _linked_first(r: _Reader, services: list[ServiceSpec]) -> list[ServiceSpec]:
    """Orders services so that each comes after the services it links to; rejects cycles."""
    by_name = {s.name: s for s in services}
    ordered: list[ServiceSpec] = []
    visiting: set[str] = set()

    def visit(service: ServiceSpec) -> None:
        if service in ordered:
            return
        if service.name in visiting:
            r.fail(f"services.{service.name}.links", "links without a cycle")
            return
        visiting.add(service.name)
        for link in service.links:
            if link in by_name:
                visit(by_name[link])
        visiting.discard(service.name)
        if service not in ordered:
            ordered.append(service)

    for service in services:
        visit(service)
    return ordered


def _read_service(r, key, name, spec, base_dir, replicas_override, secrets, build_args) -> Optional[ServiceSpec]:
    before = len(r.problems)
    r.unknown_keys(f"{key}.", spec, SERVICE_KEYS)
    build, image = None, None
    if ("build" in spec) == ("image" in spec):
        r.fail(key, "exactly one of `build` (a Docker build) or `image` (an existing image reference)")
    elif "build" in spec:
        build = _read_build(r, f"{key}.build", spec["build"], base_dir, build_args)
    else:
        image = r.text(f"{key}.image", spec["image"], expected="an image reference such as redis:7 or repo@sha256:<digest>")
        if image and not is_image_reference(image):
            r.fail(f"{key}.image", "an image reference such as redis:7 or repo@sha256:<digest>", image)
    port = r.integer(f"{key}.port", spec.get("port"), 1, 65535)
    publish = None
    if spec.get("publish") is not None:
        publish = r.integer(f"{key}.publish", spec["publish"], 1, 65535)
    env = _read_env(r, f"{key}.env", spec.get("env", {}))
    secret_env = _read_env(r, f"{key}.secretEnv", spec.get("secretEnv", {}))
    for var, secret_key in secret_env.items():
        if secret_key not in SECRET_KEYS:
            r.fail(f"{key}.secretEnv.{var}", "the name of a secret config key: " + ", ".join(SECRET_KEYS), secret_key)
        elif secret_key not in secrets:
            r.fail(secret_key, f"a value (used by {key}.secretEnv.{var}): `pulumi config set --secret {secret_key}`")
    links = spec.get("links", [])
    if not isinstance(links, list) or not all(isinstance(link, str) for link in links):
        r.fail(f"{key}.links", "a list of service names", links)
        links = []
    volume = _read_volume(r, f"{key}.volume", spec["volume"]) if "volume" in spec else None
    replicas = r.integer(f"{key}.replicas", spec.get("replicas", 1), 0, 100)
    if volume is not None and replicas is not None and replicas > 1:
        r.fail(f"{key}.replicas", "0 or 1 for a service with a volume (its state lives on one volume)", replicas)
    if replicas_override is not None and volume is None:
        replicas = replicas_override
    health_path, health_command = _read_health(r, f"{key}.health", spec.get("health"))
    user = r.integer(f"{key}.user", spec.get("user", 10001), 1, 2**31 - 1)
    read_only = r.boolean(f"{key}.readOnly", spec.get("readOnly", True))
    cpu = r.number(f"{key}.cpu", spec.get("cpu", 0.5), 0.01, 64)
    cpu_request = r.number(f"{key}.cpuRequest", spec.get("cpuRequest", min(0.05, cpu or 0.05)), 0.001, 64)
    if cpu and cpu_request and cpu_request > cpu:
        r.fail(f"{key}.cpuRequest", f"at most the cpu limit ({cpu})", cpu_request)
    memory = r.integer(f"{key}.memory", spec.get("memory", 128), 6, 1024 * 1024)
    if len(r.problems) > before:
        return None
    return ServiceSpec(
        name=name, port=port, build=build, image=image, publish=publish, env=env,
        secret_env=secret_env, links=tuple(links), replicas=replicas, volume=volume,
        health_path=health_path, health_command=health_command, user=user, read_only=read_only, cpu=cpu, cpu_request=cpu_request, memory_mb=memory,
    )


def _read_health(r: _Reader, key: str, raw: Any) -> tuple[Optional[str], tuple[str, ...]]:
    """`/path` is an HTTP check on the service port; a list is a command run in the container."""
    if raw is None:
        return None, ()
    if isinstance(raw, list) and raw and all(isinstance(arg, str) and arg for arg in raw):
        return None, tuple(raw)
    if isinstance(raw, str) and re.match(r"^/[!-~]*$", raw):
        return raw, ()
    r.fail(key, "an HTTP path such as /healthz, or a command such as [redis-cli, ping]", raw)
    return None, ()


def _read_build(r: _Reader, key: str, raw: Any, base_dir: str, stack_args: Mapping[str, str]) -> Optional[BuildSpec]:
    """A path, or {context, dockerfile, target, args}. The stack's buildArgs apply to every build
    and win over the spec's own (e.g. BASE_IMAGE pointing at a locally built base offline)."""
    spec = r.mapping(key, {"context": raw} if isinstance(raw, str) else raw)
    r.unknown_keys(f"{key}.", spec, ("context", "dockerfile", "target", "args"))
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
    return BuildSpec(context=context, dockerfile=dockerfile, target=target, args=merged)


def _read_env(r: _Reader, key: str, raw: Any) -> dict[str, str]:
    env = r.mapping(key, raw)
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            r.fail(f"{key}", "environment variable names (letters, digits, _)", name)
        elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
            r.fail(f"{key}.{name}", "a string value", value)
    return {k: str(v) for k, v in env.items()}


def _read_volume(r: _Reader, key: str, raw: Any) -> Optional[VolumeSpec]:
    spec = r.mapping(key, raw)
    r.unknown_keys(f"{key}.", spec, ("path", "size"))
    path = r.text(f"{key}.path", spec.get("path"), re.compile(r"^/[^\0]*$"), "an absolute path in the container")
    size = r.text(f"{key}.size", spec.get("size", "1Gi"), _QUANTITY, "a size such as 512Mi or 1Gi")
    return VolumeSpec(path=path, size=size) if path and size else None


def _read_registry(r: _Reader, values, push, secrets, repository) -> Optional[Registry]:
    """The private registry: pushed to when `push`, and pulled from by the cluster (imagePullSecret)."""
    server = values.get("registryServer")
    if server is None:
        if push:
            r.fail("registryServer", "the registry to push to (host[:port]) when push is true")
        return None
    before = len(r.problems)
    r.text("registryServer", server, re.compile(r"^[a-zA-Z0-9.-]+(:[0-9]{1,5})?$"), "a registry host[:port]")
    username = r.text("registryUsername", values.get("registryUsername"), expected="the user name for registryServer")
    if "registryPassword" not in secrets and "registryPassword" not in values:
        r.fail("registryPassword", "a secret for registryServer: `pulumi config set --secret registryPassword`")
    if push and repository and not repository.startswith(f"{server}/"):
        r.fail("imageRepository", f"a repository on the push registry, i.e. starting with {server}/", repository)
    if len(r.problems) > before or "registryPassword" not in secrets:  # a plaintext one is reported already
        return None
    return Registry(server=server, username=username, password=secrets["registryPassword"])


def _read_pinned_images(r: _Reader, raw: Any, services: list[ServiceSpec]) -> dict[str, str]:
    pinned = r.mapping("images", raw)
    names = {s.name for s in services}
    for name, ref in pinned.items():
        if name not in names:
            r.fail(f"images.{name}", "a service name: " + ", ".join(sorted(names)))
        elif not isinstance(ref, str) or "@" not in ref or not is_image_reference(ref):
            r.fail(f"images.{name}", "an immutable reference repo@sha256:<64 hex digits>", ref)
    return dict(pinned)


def _read_kubernetes(r: _Reader, raw: Any, project: str, stack: str, target: Optional[str]) -> KubernetesSettings:
    spec = r.mapping("kubernetes", raw)
    r.unknown_keys("kubernetes.", spec, KUBERNETES_KEYS)
    namespace = r.text(
        "kubernetes.namespace", spec.get("namespace", f"{project}-{stack}".lower()), re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"),
        "a Kubernetes namespace name (lowercase DNS label)",
    )
    service_type = r.choice("kubernetes.serviceType", spec.get("serviceType", "NodePort"), SERVICE_TYPES)
    kubeconfig = spec.get("kubeconfig")
    if kubeconfig is not None and target == "kubernetes":
        path = os.path.expanduser(str(kubeconfig))
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            r.fail("kubernetes.kubeconfig", "a readable kubeconfig file", kubeconfig)
    context = spec.get("context")
    if context is not None:
        r.text("kubernetes.context", context)
    storage_class = spec.get("storageClass")
    if storage_class is not None:
        r.text("kubernetes.storageClass", storage_class, _DNS_LABEL, "a StorageClass name")
    node_host = r.text("kubernetes.nodeHost", spec.get("nodeHost", "127.0.0.1"), re.compile(r"^[A-Za-z0-9.:-]+$"), "a host name or IP")
    return KubernetesSettings(
        namespace=namespace, service_type=service_type, kubeconfig=kubeconfig, context=context,
        storage_class=storage_class, node_host=node_host,
    )


def _check_docker_target(r: _Reader, services: list[ServiceSpec], port_offset: int) -> None:
    host_ports: dict[int, str] = {}
    for service in services:
        if service.replicas > 1:
            r.fail(f"services.{service.name}.replicas", "1 on the docker target (one container per service; scale on kubernetes)", service.replicas)
        if service.publish is None:
            continue
        host_port = service.publish + port_offset
        if host_port > 65535:
            r.fail("portOffset", f"an offset that keeps services.{service.name}.publish within 65535", port_offset)
        elif host_port in host_ports:
            r.fail(f"services.{service.name}.publish", f"a host port not already published by services.{host_ports[host_port]}", service.publish)
        host_ports[host_port] = service.name


def load_stack_config(base_dir: str = ".") -> StackConfig:
    """Reads and validates the current stack's config (raises ConfigError before any resource)."""
    project, stack = pulumi.get_project(), pulumi.get_stack()
    prefix = f"{project}:"
    # Config reaches the program either in-process (language host, Automation API) or by environment.
    everything = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    values = {key[len(prefix):]: value for key, value in everything.items() if key.startswith(prefix)}
    return parse_stack_config(
        values, project=project, stack=stack, base_dir=base_dir,
        is_secret=lambda key: pulumi.runtime.is_config_secret(prefix + key),
    )
