"""The stack's config parsed and validated in one place: `parse_stack_config` turns raw config values
(as Pulumi hands them to the program: strings, or JSON for structured keys) into the typed model of
components/spec.py, or raises ConfigError naming every bad key and what was expected. It runs before
any resource is declared, so bad input never creates anything."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import pulumi

from ..conventions import DEFAULT_KEEP_RELEASES, DEFAULT_READY_TIMEOUT, STACK_LABEL
from ..spec import ANY_HOST_PORT, MAIN_PORT, AppSpec, DockerSettings, ImageSources, KubernetesSettings, Registry
from .errors import DNS_LABEL, REPOSITORY, ConfigError, Reader, decode_json, is_image_reference, read_env, read_names
from .isolation import ISOLATIONS, isolate_by_links
from .workloads import WorkloadReader, workload_key

TARGETS = ("docker", "kubernetes")

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")

_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    target: str
    app: AppSpec
    images: ImageSources
    docker: DockerSettings
    kubernetes: KubernetesSettings
    secrets: Mapping[str, pulumi.Input[str]]
    """Secret config key -> its value (a secret Output), for every key a workload uses."""
    ready_timeout: int = DEFAULT_READY_TIMEOUT
    keep_releases: int = DEFAULT_KEEP_RELEASES
    """Not used by the program: `make gc` reads it (keep_releases()); validated here so `up` rejects it first."""
    notices: tuple[str, ...] = ()
    """What a Compose file's mapping approximated or ignored: `pulumi up` shows them as warnings."""

    @property
    def name_prefix(self) -> str:
        """Prefix of every engine/cluster object, so stacks side by side never clash."""
        return f"{self.project}-{self.stack}"

    @property
    def target_settings(self) -> DockerSettings | KubernetesSettings:
        return self.docker if self.target == "docker" else self.kubernetes

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/part-of": self.project,
            "app.kubernetes.io/managed-by": "pulumi",
            STACK_LABEL: self.stack,
        }


STACK_KEYS = (
    "target",
    "services",
    "jobs",
    "networks",
    "routes",
    "isolation",
    "imageRepository",
    "push",
    "registryServer",
    "registryUsername",
    "registryPassword",
    "images",
    "imagesFrom",
    "replicas",
    "portOffset",
    "routerPort",
    "dockerHost",
    "kubernetes",
    "buildArgs",
    "baseImages",
    "readyTimeout",
    "keepReleases",
    "compose",
    "composeEnv",
    "composeProfiles",
)

KUBERNETES_KEYS = (
    "namespace",
    "serviceType",
    "kubeconfig",
    "context",
    "storageClass",
    "nodeHost",
    "ingressClass",
    "httpsPort",
    "routeDomain",
)


def parse_stack_config(
    values: Mapping[str, Any],
    *,
    project: str,
    stack: str,
    is_secret: Callable[[str], bool] = lambda key: True,
    base_dir: str = ".",
) -> StackConfig:
    """Validates raw config `values` (keys without the project prefix) into a StackConfig.

    `is_secret(key)` tells whether a value was stored encrypted; `base_dir` resolves build contexts
    and files. Keys other than the known ones are the user's secrets (`pulumi config set --secret
    dbPassword ...`), which services reference by name.
    """
    r = Reader()
    notices: tuple[str, ...] = ()
    if "compose" in values:
        values, is_secret, notices = _with_compose(r, values, is_secret, base_dir)
    for key in values:
        if key not in STACK_KEYS and not is_secret(key):
            r.problems.append(
                f"{key}: unknown key; known keys are {', '.join(STACK_KEYS)}, or a secret set with "
                f"`pulumi config set --secret {key}` for services' secretEnv/secretFiles"
            )

    target = r.choice("target", values.get("target", "docker"), TARGETS)
    replicas_override = None
    if "replicas" in values:
        replicas_override = r.integer("replicas", values["replicas"], 0, 100)
    build_args = read_env(r, "buildArgs", values.get("buildArgs", {}))
    reader = WorkloadReader(r, base_dir, build_args, replicas_override)
    app = reader.app(values.get("services"), values.get("jobs", {}), values.get("networks", {}), values.get("routes"))
    if r.choice("isolation", values.get("isolation", ISOLATIONS[0]), ISOLATIONS) == "links":
        app = isolate_by_links(r, app)
    secrets = _read_secrets(r, values, is_secret, app)
    ready_timeout = r.integer("readyTimeout", values.get("readyTimeout", DEFAULT_READY_TIMEOUT), 5, 3600)
    keep = _read_keep_releases(r, values.get("keepReleases"))

    images = _read_image_sources(r, values, is_secret, app, project)
    docker = _read_docker(r, values)
    kubernetes = _read_kubernetes(r, values.get("kubernetes", {}), project, stack, target)
    if target == "docker":
        _check_docker_target(r, app, docker)
    else:
        _check_kubernetes_target(r, app, images)

    if r.problems:
        raise ConfigError(r.problems)
    return StackConfig(
        project=project,
        stack=stack,
        target=target,
        app=app,
        images=images,
        docker=docker,
        kubernetes=kubernetes,
        secrets=secrets,
        ready_timeout=ready_timeout,
        keep_releases=keep,
        notices=notices,
    )


def _read_keep_releases(r: Reader, value: Any) -> int:
    kept = r.integer("keepReleases", DEFAULT_KEEP_RELEASES if value is None else value, 1, 1000)
    return DEFAULT_KEEP_RELEASES if kept is None else kept


def keep_releases(value: Any) -> int:
    """The `keepReleases` of a stack (None: unset), as `make gc` reads it; ConfigError naming the key."""
    r = Reader()
    kept = _read_keep_releases(r, value)
    if r.problems:
        raise ConfigError(r.problems)
    return kept


def _read_docker(r: Reader, values: Mapping[str, Any]) -> DockerSettings:
    port_offset = r.integer("portOffset", values.get("portOffset", DockerSettings.port_offset), 0, 65534)
    docker_host = values.get("dockerHost")
    if docker_host is not None:
        r.text(
            "dockerHost",
            docker_host,
            re.compile(r"^(unix|tcp|ssh)://.+"),
            "a Docker host URL such as unix:///var/run/docker.sock",
        )
    router_port = r.integer("routerPort", values.get("routerPort", DockerSettings.router_port), 1, 65535)
    return DockerSettings(host=docker_host, port_offset=port_offset, router_port=router_port)


def _check_kubernetes_target(r: Reader, app: AppSpec, images: ImageSources) -> None:
    """The cluster pulls what it runs: every built image must reach a registry (or come from elsewhere)."""
    if images.push or images.images_from:
        return
    for workload in app.workloads:
        if workload.build is not None and workload.name not in images.pinned:
            r.fail(
                "push",
                f"true on the kubernetes target: the cluster pulls {workload_key(workload)} from a "
                "registry (or pin it in images, or set imagesFrom)",
                images.push,
            )


def _read_image_sources(
    r: Reader, values: Mapping[str, Any], is_secret: Callable[[str], bool], app: AppSpec, project: str
) -> ImageSources:
    """Where the images come from: the repository built images are pushed to, pinned references,
    another stack's images, and local stand-ins for the bases Dockerfiles start FROM."""
    repository = r.text(
        "imageRepository",
        values.get("imageRepository", f"{project}"),
        REPOSITORY,
        "a repository prefix such as localhost:5000/team or docker.io/user",
    )
    push = r.boolean("push", values.get("push", ImageSources.push))
    registry = _read_registry(r, values, push, is_secret, repository or "")
    pinned = _read_pinned_images(r, values.get("images", {}), app)
    base_images = r.mapping("baseImages", values.get("baseImages", {}))
    for name, stand_in in base_images.items():
        if not is_image_reference(str(name)) or not isinstance(stand_in, str) or not is_image_reference(stand_in):
            r.fail(
                f"baseImages.{name}",
                "an image name of a FROM line to a local image reference, such as "
                "python:3.12-slim: cloudservice/base:bookworm",
                stand_in,
            )
    images_from = None
    if "imagesFrom" in values:
        images_from = r.text(
            "imagesFrom", values["imagesFrom"], _STACK_NAME, "a stack name such as organization/cloudservice/dev"
        )
    return ImageSources(
        repository=repository,
        push=bool(push),
        registry=registry,
        pinned=pinned,
        images_from=images_from,
        base_images=dict(base_images),
    )


def _with_compose(r: Reader, values: Mapping[str, Any], is_secret: Callable[[str], bool], base_dir: str):
    """`compose` provides `services`, `jobs` and `networks`, and the content of its secret files as the
    values of the secrets the stack does not set itself (secret like those). `composeEnv` and
    `composeProfiles` are the variables and profiles the file is loaded with."""
    # Imported here: a stack without a Compose file does not pay for the mapping (a few tens of ms of
    # every preview and update).
    from .compose import load_compose

    for key in ("services", "jobs", "networks"):  # `routes` given by the stack replace the file's
        if key in values:
            r.fail(key, "no value when `compose` gives the app (set one or the other)")
    path = r.text("compose", values["compose"], expected="the path of a Compose file, relative to the project")
    environment = read_env(r, "composeEnv", values.get("composeEnv", {}))
    profiles = read_names(r, "composeProfiles", decode_json(values.get("composeProfiles", [])))
    if path is None or r.problems:
        return values, is_secret, ()
    try:
        app = load_compose(
            path,
            base_dir,
            given_secrets={key for key in values if is_secret(key)},
            environment=environment,
            profiles=profiles,
        )
    except ConfigError as error:
        r.problems.extend(error.problems)
        return {**values, "services": {}}, is_secret, ()
    from_file = {key: value for key, value in app.secrets.items() if key not in values}
    return (
        {
            "routes": app.routes,
            **values,
            "services": app.services,
            "jobs": app.jobs,
            "networks": app.networks,
            **from_file,
        },
        lambda key: key in from_file or is_secret(key),
        app.notices,
    )


def _read_secrets(r: Reader, values: Mapping[str, Any], is_secret: Callable[[str], bool], app: AppSpec) -> dict:
    """Every secret the workloads reference must be set, and set as a secret."""
    secrets = {}
    for workload in app.workloads:
        uses = [(f"secretEnv.{var}", key) for var, key in workload.secret_env.items()]
        uses += [(f"secretFiles.{f.path}", f.key) for f in workload.secret_files]
        for where, key in uses:
            if key in secrets:
                continue
            if key not in values:
                r.fail(key, f"a value (used by {workload_key(workload)}.{where}): `pulumi config set --secret {key}`")
            elif not is_secret(key):
                r.fail(key, f"a secret value: set it with `pulumi config set --secret {key}`")
            elif r.text(key, values[key]) is not None:
                secrets[key] = pulumi.Output.secret(values[key])
    return secrets


def _read_registry(r: Reader, values, push, is_secret, repository) -> Optional[Registry]:
    """The private registry: pushed to when `push`, and pulled from by the cluster (imagePullSecret)."""
    server = values.get("registryServer")
    if server is None:
        if push:
            r.fail("registryServer", "the registry to push to (host[:port]) when push is true")
        return None
    before = len(r.problems)
    r.text("registryServer", server, re.compile(r"^[a-zA-Z0-9.-]+(:[0-9]{1,5})?$"), "a registry host[:port]")
    username = r.text("registryUsername", values.get("registryUsername"), expected="the user name for registryServer")
    password = values.get("registryPassword")
    if password is None:
        r.fail("registryPassword", "a secret for registryServer: `pulumi config set --secret registryPassword`")
    elif not is_secret("registryPassword"):
        r.fail("registryPassword", "a secret value: set it with `pulumi config set --secret registryPassword`")
    else:
        r.text("registryPassword", password)
    if push and repository and not repository.startswith(f"{server}/"):
        r.fail("imageRepository", f"a repository on the push registry, i.e. starting with {server}/", repository)
    if len(r.problems) > before:
        return None
    return Registry(server=server, username=username, password=pulumi.Output.secret(password))


def _read_pinned_images(r: Reader, raw: Any, app: AppSpec) -> dict[str, str]:
    pinned = r.mapping("images", raw)
    names = {w.name for w in app.workloads}
    for name, ref in pinned.items():
        if name not in names:
            r.fail(f"images.{name}", "a service or job name: " + ", ".join(sorted(names)))
        elif not isinstance(ref, str) or "@" not in ref or not is_image_reference(ref):
            r.fail(f"images.{name}", "an immutable reference repo@sha256:<64 hex digits>", ref)
    return dict(pinned)


def _read_kubernetes(r: Reader, raw: Any, project: str, stack: str, target: Optional[str]) -> KubernetesSettings:
    spec = r.mapping("kubernetes", raw)
    r.unknown_keys("kubernetes.", spec, KUBERNETES_KEYS)
    namespace = r.text(
        "kubernetes.namespace",
        spec.get("namespace", f"{project}-{stack}".lower()),
        re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"),
        "a Kubernetes namespace name (lowercase DNS label)",
    )
    service_type = r.choice(
        "kubernetes.serviceType", spec.get("serviceType", KubernetesSettings.service_type), SERVICE_TYPES
    )
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
        r.text("kubernetes.storageClass", storage_class, DNS_LABEL, "a StorageClass name")
    node_host = r.text(
        "kubernetes.nodeHost",
        spec.get("nodeHost", KubernetesSettings.node_host),
        re.compile(r"^[A-Za-z0-9.:-]+$"),
        "a host name or IP",
    )
    return KubernetesSettings(
        namespace=namespace,
        service_type=service_type,
        kubeconfig=kubeconfig,
        context=context,
        storage_class=storage_class,
        node_host=node_host,
        ingress_class=r.text(
            "kubernetes.ingressClass",
            spec.get("ingressClass", KubernetesSettings.ingress_class),
            DNS_LABEL,
            "an IngressClass name",
        ),
        https_port=r.integer("kubernetes.httpsPort", spec.get("httpsPort", KubernetesSettings.https_port), 1, 65535),
        route_domain=r.text(
            "kubernetes.routeDomain",
            spec.get("routeDomain", KubernetesSettings.route_domain),
            re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
            "a DNS domain",
        ),
    )


def _check_docker_target(r: Reader, app: AppSpec, docker: DockerSettings) -> None:
    """Host ports are published once each: by one service's port, or by the router (with routes)."""
    port_offset = docker.port_offset or 0
    host_ports: dict[tuple[int, str], str] = {}
    if app.routes and docker.router_port is not None:
        host_ports[(docker.router_port + port_offset, "tcp")] = "routerPort"
        if docker.router_port + port_offset > 65535:
            r.fail("portOffset", "an offset that keeps routerPort within 65535", port_offset)
    for service in app.services:
        for port in service.published:
            where = (
                f"services.{service.name}.publish"
                if port.name == MAIN_PORT
                else f"services.{service.name}.ports.{port.name}.publish"
            )
            if service.replicas > 1:
                r.fail(
                    where,
                    f"no published port with replicas > 1 on the docker target ({service.replicas} containers "
                    "cannot share one host port): reach it through `routes`",
                    port.publish,
                )
                continue
            if port.publish == ANY_HOST_PORT:
                continue  # the engine picks a free one
            host_port = (port.publish + port_offset, port.protocol)
            if host_port[0] > 65535:
                r.fail("portOffset", f"an offset that keeps {where} within 65535", port_offset)
            elif host_port in host_ports:
                r.fail(where, f"a host port not already published by {host_ports[host_port]}", port.publish)
            host_ports[host_port] = where
