"""components/config/ (stack.py, workloads.py): every malformed stack config fails with a ConfigError naming the key; valid
config becomes the typed model of components/spec.py; the project's own Pulumi.yaml and
Pulumi.<stack>.yaml files parse; arbitrary input never crashes it."""

from __future__ import annotations

import copy
import json
import os

import pulumi
import pytest
from harness import PROJECT, REGISTRY, ROOT, as_pulumi_config, default_services, project_defaults, stack_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recorder import fake_digest, install_mocks, is_secret

from components.config import (
    JOB_KEYS,
    KUBERNETES_KEYS,
    SERVICE_KEYS,
    STACK_KEYS,
    ConfigError,
    StackConfig,
    is_image_reference,
    keep_releases,
    load_stack_config,
    parse_stack_config,
)
from components.spec import (
    BuildSpec,
    DockerSettings,
    FileSpec,
    HealthSpec,
    JobSpec,
    KubernetesSettings,
    PortSpec,
    Registry,
    RouteSpec,
    SecretFileSpec,
    ServiceSpec,
    SyncSpec,
    VolumeSpec,
)

DIGEST = fake_digest("pinned")
CONFIG_FILE = "app/redis/redis.conf"  # a text file of the project, mounted by the `files` cases
SECRET_KEYS = {"registryPassword", "dbPassword", "apiToken", "appSecret"}
"""The keys the tests set with `--secret`."""


def base_values() -> dict:
    """A valid docker-target config: the project's app spec pushed to the local registry."""
    return {"target": "docker", "services": default_services(), **REGISTRY}


def parse(values: dict, *, stack: str = "dev", secret=SECRET_KEYS.__contains__, base_dir: str = ROOT) -> StackConfig:
    return parse_stack_config(values, project=PROJECT, stack=stack, is_secret=secret, base_dir=base_dir)


def problems_of(values: dict, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse(values, **kwargs)
    return error.value.problems


def _set(path: str, value):
    """A change that sets `a.b.c` (None deletes it) in a copy of the base values."""

    def change(values: dict) -> None:
        *parents, last = path.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return change


def _all(*changes):
    def change(values: dict) -> None:
        for each in changes:
            each(values)

    return change


def _kubernetes(values: dict) -> None:
    values["target"] = "kubernetes"


def _web_ports(ports):
    """web with `ports` instead of its `port`/`publish` shorthand."""
    return _all(_set("services.web.port", None), _set("services.web.publish", None), _set("services.web.ports", ports))


def _job(**spec):
    """A `migrate` job (from the web image's build) with `spec` on top."""
    return _set("jobs.migrate", {"build": "app/web", "args": ["migrate"], **spec})


def _writable_web(values: dict) -> None:
    values["services"]["web"]["readOnly"] = False


def _sync_web(**rule):
    """web (on a writable root file system) with one sync rule; `from_` writes the key `from`."""
    return _all(_writable_web, _set("services.web.sync", [{k.rstrip("_"): v for k, v in rule.items()}]))


def _secret(key="dbPassword", value="s3cr3t-db-pw"):
    return _set(key, value)


# (id, change to the valid base, key the error must name)
MALFORMED = [
    ("target-unknown", _set("target", "nomad"), "target"),
    ("target-wrong-type", _set("target", 3), "target"),
    # ports: the `port`/`publish` shorthand and the named form
    ("port-not-a-number", _set("services.web.port", "http"), "services.web.port"),
    ("port-zero", _set("services.web.port", 0), "services.web.port"),
    ("port-above-65535", _set("services.redis.port", 70000), "services.redis.port"),
    ("port-bool", _set("services.web.port", True), "services.web.port"),
    ("publish-without-port", _set("services.web.port", None), "services.web.port"),
    ("publish-out-of-range", _set("services.web.publish", 65536), "services.web.publish"),
    ("ports-and-port", _set("services.web.ports", {"http": {"port": 8080}}), "services.web"),
    ("ports-not-an-object", _web_ports([8080]), "services.web.ports"),
    ("ports-entry-not-an-object", _web_ports({"http": [8080]}), "services.web.ports.http"),
    ("ports-name-uppercase", _web_ports({"HTTP": {"port": 8080}}), "services.web.ports.HTTP (name)"),
    ("ports-name-too-long", _web_ports({"a" * 16: {"port": 8080}}), f"services.web.ports.{'a' * 16} (name)"),
    ("ports-name-underscore", _web_ports({"web_ui": {"port": 8080}}), "services.web.ports.web_ui (name)"),
    ("ports-port-missing", _web_ports({"http": {"publish": 8080}}), "services.web.ports.http.port"),
    ("ports-port-zero", _web_ports({"http": {"port": 0}}), "services.web.ports.http.port"),
    (
        "ports-publish-out-of-range",
        _web_ports({"http": {"port": 8080, "publish": 70000}}),
        "services.web.ports.http.publish",
    ),
    ("ports-unknown-key", _web_ports({"http": {"port": 8080, "scheme": "https"}}), "services.web.ports.http.scheme"),
    (
        "ports-bad-protocol",
        _web_ports({"http": {"port": 8080, "protocol": "sctp"}}),
        "services.web.ports.http.protocol",
    ),
    (
        "ports-duplicate-container-port",
        _web_ports({"http": {"port": 8080}, "alt": {"port": 8080}}),
        "services.web.ports.alt.port",
    ),
    (
        "ports-duplicate-host-port",
        _web_ports({"http": {"port": 8080, "publish": 8080}, "admin": {"port": 9000, "publish": 8080}}),
        "services.web.ports.admin.publish",
    ),
    ("conflicting-host-ports", _set("services.redis.publish", 8080), "services.web.publish"),
    ("port-offset-overflow", _set("portOffset", 60000), "portOffset"),
    ("port-offset-negative", _set("portOffset", -1), "portOffset"),
    # replicas
    ("replicas-negative", _set("replicas", -1), "replicas"),
    ("replicas-too-many", _all(_kubernetes, _set("services.web.replicas", 101)), "services.web.replicas"),
    ("replicas-on-docker-with-publish", _set("services.web.replicas", 2), "services.web.publish"),
    (
        "replicas-on-docker-with-any-host-port",
        _all(_set("services.web.replicas", 3), _set("services.web.publish", 0)),
        "services.web.publish",
    ),
    # routes
    ("routes-not-a-list", _set("routes", {"service": "web"}), "routes"),
    ("routes-entry-not-an-object", _set("routes", ["web"]), "routes[0]"),
    ("routes-unknown-key", _set("routes", [{"service": "web", "prefix": "/"}]), "routes[0].prefix"),
    ("routes-no-service", _set("routes", [{"path": "/"}]), "routes[0].service"),
    ("routes-unknown-service", _set("routes", [{"service": "api"}]), "routes[0].service"),
    ("routes-service-without-ports", _all(_job(), _set("routes", [{"service": "migrate"}])), "routes[0].service"),
    ("routes-unknown-port", _set("routes", [{"service": "web", "port": "admin"}]), "routes[0].port"),
    ("routes-path-relative", _set("routes", [{"service": "web", "path": "api"}]), "routes[0].path"),
    ("routes-path-with-quote", _set("routes", [{"service": "web", "path": "/a`b"}]), "routes[0].path"),
    ("routes-host-uppercase", _set("routes", [{"service": "web", "host": "Shop.localhost"}]), "routes[0].host"),
    ("routes-host-wildcard", _set("routes", [{"service": "web", "host": "*.localhost"}]), "routes[0].host"),
    ("routes-host-url", _set("routes", [{"service": "web", "host": "https://shop"}]), "routes[0].host"),
    ("routes-tls-secret-invalid", _set("routes", [{"service": "web", "tlsSecret": "My_Cert"}]), "routes[0].tlsSecret"),
    (
        "routes-duplicate",
        _set("routes", [{"service": "web", "path": "/api"}, {"service": "redis", "path": "/api/"}]),
        "routes[1]",
    ),
    ("router-port-zero", _set("routerPort", 0), "routerPort"),
    (
        "router-port-published-by-a-service",
        _all(_set("routes", [{"service": "web"}]), _set("routerPort", 8080)),
        "services.web.publish",
    ),
    (
        "router-port-offset-overflow",
        _all(_set("routes", [{"service": "web"}]), _set("routerPort", 65000), _set("portOffset", 1000)),
        "portOffset",
    ),
    ("replicas-with-volume", _all(_kubernetes, _set("services.redis.replicas", 2)), "services.redis.replicas"),
    ("autoscale-not-an-object", _all(_kubernetes, _set("services.web.autoscale", 5)), "services.web.autoscale"),
    (
        "autoscale-without-max",
        _all(_kubernetes, _set("services.web.autoscale", {"cpu": 50})),
        "services.web.autoscale.max",
    ),
    ("autoscale-max-zero", _all(_kubernetes, _set("services.web.autoscale", {"max": 0})), "services.web.autoscale.max"),
    (
        "autoscale-cpu-above-100",
        _all(_kubernetes, _set("services.web.autoscale", {"max": 3, "cpu": 150})),
        "services.web.autoscale.cpu",
    ),
    (
        "autoscale-no-target",
        _all(_kubernetes, _set("services.web.autoscale", {"max": 3, "cpu": None})),
        "services.web.autoscale",
    ),
    (
        "autoscale-unknown-key",
        _all(_kubernetes, _set("services.web.autoscale", {"max": 3, "min": 2})),
        "services.web.autoscale.min",
    ),
    (
        "autoscale-floor-above-max",
        _all(_kubernetes, _set("services.web.replicas", 4), _set("services.web.autoscale", {"max": 3})),
        "services.web.replicas",
    ),
    (
        "autoscale-with-volume",
        _all(_kubernetes, _set("services.redis.autoscale", {"max": 3})),
        "services.redis.autoscale",
    ),
    # names, images and builds
    ("service-name-uppercase", lambda v: v["services"].update(Web_1=v["services"].pop("web")), "services.Web_1 (name)"),
    (
        "service-name-too-long",
        lambda v: v["services"].update({"x" * 40: {"image": "redis:7", "port": 1}}),
        f"services.{'x' * 40} (name)",
    ),
    (
        "image-uppercase",
        _all(_set("services.redis.build", None), _set("services.redis.image", "Redis:7")),
        "services.redis.image",
    ),
    (
        "image-bad-digest",
        _all(_set("services.redis.build", None), _set("services.redis.image", "redis@sha256:1234")),
        "services.redis.image",
    ),
    ("image-and-build", _set("services.redis.image", "redis:7"), "services.redis"),
    ("neither-image-nor-build", _set("services.redis.build", None), "services.redis"),
    ("build-context-missing", _set("services.web.build", "app/nope"), "services.web.build.context"),
    (
        "build-dockerfile-missing",
        _set("services.web.build", {"context": "app/web", "dockerfile": "Nope"}),
        "services.web.build.dockerfile",
    ),
    (
        "build-unknown-key",
        _set("services.web.build", {"context": "app/web", "platform": "arm"}),
        "services.web.build.platform",
    ),
    ("build-args-invalid", _set("buildArgs", {"BASE": ["x"]}), "buildArgs.BASE"),
    ("pinned-mutable-tag", _set("images", {"web": "localhost:5000/cloudservice/web:v1"}), "images.web"),
    ("pinned-unknown-service", _set("images", {"api": f"localhost:5000/cloudservice/api@{DIGEST}"}), "images.api"),
    # registry
    ("registry-password-missing", _set("registryPassword", None), "registryPassword"),
    ("registry-password-empty", _set("registryPassword", ""), "registryPassword"),
    ("registry-username-missing", _set("registryUsername", None), "registryUsername"),
    ("registry-server-invalid", _set("registryServer", "https://localhost:5000"), "registryServer"),
    (
        "push-without-registry",
        _all(_set("registryServer", None), _set("registryUsername", None), _set("registryPassword", None)),
        "registryServer",
    ),
    ("push-outside-registry", _set("imageRepository", "docker.io/someone"), "imageRepository"),
    ("push-not-boolean", _set("push", "yes"), "push"),
    ("image-repository-invalid", _set("imageRepository", "Local Host/x"), "imageRepository"),
    # command and args
    ("command-not-a-list", _set("services.web.command", 3), "services.web.command"),
    ("command-empty", _set("services.web.command", []), "services.web.command"),
    ("command-blank-string", _set("services.web.command", "  "), "services.web.command"),
    ("command-non-string-item", _set("services.web.command", ["python3", 3]), "services.web.command"),
    ("args-not-a-list", _set("services.web.args", {"workers": 2}), "services.web.args"),
    # env and secrets
    ("env-nested-value", _set("services.web.env", {"MODE": {"a": 1}}), "services.web.env.MODE"),
    ("env-bool-value", _set("services.web.env", {"DEBUG": True}), "services.web.env.DEBUG"),
    ("env-bad-name", _set("services.web.env", {"1MODE": "x"}), "services.web.env"),
    ("env-not-object", _set("services.web.env", ["MODE=x"]), "services.web.env"),
    ("secret-env-unset", _set("services.web.secretEnv", {"DB_PASSWORD": "dbPassword"}), "dbPassword"),
    (
        "secret-env-bad-key-name",
        _set("services.web.secretEnv", {"DB_PASSWORD": "db password"}),
        "services.web.secretEnv.DB_PASSWORD",
    ),
    (
        "secret-env-bad-var-name",
        _all(_secret(), _set("services.web.secretEnv", {"DB PASSWORD": "dbPassword"})),
        "services.web.secretEnv",
    ),
    ("secret-env-not-an-object", _set("services.web.secretEnv", ["dbPassword"]), "services.web.secretEnv"),
    (
        "secret-value-empty",
        _all(_secret(value=""), _set("services.web.secretEnv", {"DB_PASSWORD": "dbPassword"})),
        "dbPassword",
    ),
    ("secret-file-unset", _set("services.web.secretFiles", {"/run/secrets/db": "dbPassword"}), "dbPassword"),
    (
        "secret-file-outside-run-secrets",
        _all(_secret(), _set("services.web.secretFiles", {"/etc/db-password": "dbPassword"})),
        "services.web.secretFiles./etc/db-password",
    ),
    (
        "secret-file-in-a-subdirectory",
        _all(_secret(), _set("services.web.secretFiles", {"/run/secrets/db/password": "dbPassword"})),
        "services.web.secretFiles./run/secrets/db/password",
    ),
    (
        "secret-file-relative-path",
        _all(_secret(), _set("services.web.secretFiles", {"run/secrets/db": "dbPassword"})),
        "services.web.secretFiles (path)",
    ),
    (
        "secret-file-bad-key-name",
        _set("services.web.secretFiles", {"/run/secrets/db": ["dbPassword"]}),
        "services.web.secretFiles./run/secrets/db",
    ),
    ("secret-files-not-an-object", _set("services.web.secretFiles", "dbPassword"), "services.web.secretFiles"),
    ("unknown-top-level-key", _set("replica", 2), "replica"),
    # files
    (
        "files-missing",
        _set("services.web.files", {"/etc/web.conf": "app/web/nope.conf"}),
        "services.web.files./etc/web.conf",
    ),
    (
        "files-outside-project",
        _set("services.web.files", {"/etc/web.conf": "../outside.conf"}),
        "services.web.files./etc/web.conf",
    ),
    (
        "files-absolute-source",
        _set("services.web.files", {"/etc/web.conf": "/etc/hostname"}),
        "services.web.files./etc/web.conf",
    ),
    ("files-a-directory", _set("services.web.files", {"/etc/web.conf": "app/web"}), "services.web.files./etc/web.conf"),
    ("files-source-not-a-string", _set("services.web.files", {"/etc/web.conf": 3}), "services.web.files./etc/web.conf"),
    (
        "files-source-with-nul",
        _set("services.web.files", {"/etc/web.conf": "app/redis/redis.conf\0x"}),
        "services.web.files./etc/web.conf",
    ),
    ("files-relative-target", _set("services.web.files", {"etc/web.conf": CONFIG_FILE}), "services.web.files (path)"),
    ("files-not-an-object", _set("services.web.files", [CONFIG_FILE]), "services.web.files"),
    (
        "files-and-secret-files-same-path",
        _all(
            _secret(),
            _set("services.web.files", {"/run/secrets/db": CONFIG_FILE}),
            _set("services.web.secretFiles", {"/run/secrets/db": "dbPassword"}),
        ),
        "services.web.secretFiles./run/secrets/db",
    ),
    ("files-on-the-volume-path", _set("services.redis.files", {"/data": CONFIG_FILE}), "services.redis.volume.path"),
    # several volumes, aliases, restart, networks and the runtime keys (Compose's)
    ("volume-and-volumes", _set("services.redis.volumes", {"more": {"path": "/more"}}), "services.redis"),
    (
        "volumes-name-uppercase",
        _all(_set("services.redis.volume", None), _set("services.redis.volumes", {"Data": {"path": "/d"}})),
        "services.redis.volumes.Data (name)",
    ),
    (
        "volumes-read-only-not-bool",
        _set("services.web.volumes", {"cache": {"path": "/c", "readOnly": "yes"}}),
        "services.web.volumes.cache.readOnly",
    ),
    (
        "volumes-same-path",
        _set("services.web.volumes", {"a": {"path": "/c"}, "b": {"path": "/c"}}),
        "services.web.volumes.b.path",
    ),
    (
        "volumes-writable-with-replicas",
        _all(_set("services.web.volumes", {"a": {"path": "/c"}}), _set("services.web.replicas", 2)),
        "services.web.replicas",
    ),
    ("aliases-not-a-list", _set("services.redis.aliases", "cache"), "services.redis.aliases"),
    ("aliases-another-service", _set("services.redis.aliases", ["web"]), "services.redis.aliases"),
    ("restart-unknown", _set("services.web.restart", "sometimes"), "services.web.restart"),
    ("networks-undeclared", _set("services.web.networks", ["front"]), "services.web.networks"),
    ("networks-bad-name", _set("networks", {"Front": {}}), "networks.Front (name)"),
    ("networks-unknown-key", _set("networks", {"front": {"driver": "overlay"}}), "networks.front.driver"),
    ("labels-not-strings", _set("services.web.labels", {"team": ["a"]}), "services.web.labels.team"),
    ("working-dir-relative", _set("services.web.workingDir", "app"), "services.web.workingDir"),
    ("tty-not-bool", _set("services.web.tty", "maybe"), "services.web.tty"),
    ("stdin-open-not-bool", _set("services.web.stdinOpen", 2), "services.web.stdinOpen"),
    ("init-not-bool", _set("services.web.init", "yes please"), "services.web.init"),
    ("extra-hosts-bad-ip", _set("services.web.extraHosts", {"db": "not-an-ip"}), "services.web.extraHosts.db"),
    ("sysctls-bad-name", _set("services.web.sysctls", {"no dots": "1"}), "services.web.sysctls"),
    (
        "ulimits-soft-above-hard",
        _set("services.web.ulimits", {"nofile": {"soft": 10, "hard": 5}}),
        "services.web.ulimits.nofile",
    ),
    ("shm-size-zero", _set("services.web.shmSize", 0), "services.web.shmSize"),
    ("tmpfs-relative", _set("services.web.tmpfs", ["run"]), "services.web.tmpfs"),
    ("ephemeral-not-a-list", _set("services.web.ephemeral", "/cache"), "services.web.ephemeral"),
    ("ephemeral-on-a-volume", _set("services.redis.ephemeral", ["/data"]), "services.redis.ephemeral"),
    ("stop-signal-unknown", _set("services.web.stopSignal", "quit"), "services.web.stopSignal"),
    ("stop-grace-period-negative", _set("services.web.stopGracePeriod", -1), "services.web.stopGracePeriod"),
    (
        "build-platform",
        _set("services.web.build", {"context": "app/web", "platform": "amd64"}),
        "services.web.build.platform",
    ),
    (
        "base-images-bad-stand-in",
        _set("baseImages", {"python:3.12-slim": "Not A Reference"}),
        "baseImages.python:3.12-slim",
    ),
    # user, readOnly, capabilities
    ("user-root", _set("services.web.user", 0), "services.web.user"),
    ("user-root-uid-gid", _set("services.web.user", "0:0"), "services.web.user"),
    ("user-root-by-name", _set("services.web.user", "root"), "services.web.user"),
    ("user-negative", _set("services.web.user", -5), "services.web.user"),
    ("user-too-large", _set("services.web.user", 2**31), "services.web.user"),
    ("user-bad-gid", _set("services.web.user", "10001:staff"), "services.web.user"),
    ("user-three-parts", _set("services.web.user", "10001:10001:1"), "services.web.user"),
    ("user-bool", _set("services.web.user", True), "services.web.user"),
    ("user-list", _set("services.web.user", [10001]), "services.web.user"),
    ("read-only-not-boolean", _set("services.web.readOnly", "sometimes"), "services.web.readOnly"),
    ("capabilities-unknown", _set("services.web.capabilities", ["FLY"]), "services.web.capabilities"),
    (
        "capabilities-with-cap-prefix",
        _set("services.web.capabilities", ["CAP_NET_BIND_SERVICE"]),
        "services.web.capabilities",
    ),
    ("capabilities-lowercase", _set("services.web.capabilities", ["net_bind_service"]), "services.web.capabilities"),
    ("capabilities-not-a-list", _set("services.web.capabilities", "NET_BIND_SERVICE"), "services.web.capabilities"),
    # resources
    ("cpu-not-a-number", _set("services.web.cpu", "lots"), "services.web.cpu"),
    ("cpu-too-small", _set("services.web.cpu", 0), "services.web.cpu"),
    ("cpu-huge-integer", _set("services.web.cpu", 10**400), "services.web.cpu"),
    ("cpu-request-above-limit", _set("services.web.cpuRequest", 1), "services.web.cpuRequest"),
    ("memory-too-small", _set("services.web.memory", 2), "services.web.memory"),
    ("memory-float", _set("services.web.memory", 96.5), "services.web.memory"),
    # volume
    (
        "unknown-volume-key",
        _set("services.redis.volume", {"path": "/data", "mode": "rw"}),
        "services.redis.volume.mode",
    ),
    ("volume-relative-path", _set("services.redis.volume", {"path": "data"}), "services.redis.volume.path"),
    ("volume-bad-size", _set("services.redis.volume", {"path": "/data", "size": "1G"}), "services.redis.volume.size"),
    # health
    ("health-invalid", _set("services.web.health", "healthz"), "services.web.health"),
    ("health-empty-command", _set("services.redis.health", []), "services.redis.health"),
    (
        "health-http-and-command",
        _set("services.web.health", {"http": "/healthz", "command": ["true"]}),
        "services.web.health",
    ),
    ("health-neither", _set("services.web.health", {"interval": 5}), "services.web.health"),
    ("health-unknown-key", _set("services.web.health", {"http": "/healthz", "grace": 5}), "services.web.health.grace"),
    (
        "health-interval-zero",
        _set("services.web.health", {"http": "/healthz", "interval": 0}),
        "services.web.health.interval",
    ),
    (
        "health-timeout-not-a-number",
        _set("services.web.health", {"http": "/healthz", "timeout": "soon"}),
        "services.web.health.timeout",
    ),
    (
        "health-retries-zero",
        _set("services.web.health", {"http": "/healthz", "retries": 0}),
        "services.web.health.retries",
    ),
    (
        "health-start-period-negative",
        _set("services.web.health", {"http": "/healthz", "startPeriod": -1}),
        "services.web.health.startPeriod",
    ),
    (
        "health-interval-too-long",
        _set("services.web.health", {"http": "/healthz", "interval": 3601}),
        "services.web.health.interval",
    ),
    (
        "health-port-unknown",
        _set("services.web.health", {"http": "/healthz", "port": "metrics"}),
        "services.web.health.port",
    ),
    (
        "health-http-on-a-worker",
        _all(_set("services.web.port", None), _set("services.web.publish", None)),
        "services.web.health",
    ),
    ("health-command-not-a-list", _set("services.redis.health", {"command": 3}), "services.redis.health.command"),
    # links and dependsOn
    ("links-unknown", _set("services.web.links", ["cache"]), "services.web.links"),
    ("links-self", _set("services.web.links", ["web"]), "services.web.links"),
    ("links-not-a-list", _set("services.web.links", "redis"), "services.web.links"),
    (
        "links-to-a-worker",
        _all(_set("services.redis.port", None), _set("services.redis.health", None)),
        "services.web.links",
    ),
    ("links-to-a-job", _all(_job(), _set("services.web.links", ["migrate"])), "services.web.links"),
    ("depends-on-unknown", _set("services.web.dependsOn", ["cache"]), "services.web.dependsOn.cache"),
    ("depends-on-self", _set("services.web.dependsOn", {"web": "started"}), "services.web.dependsOn.web"),
    ("depends-on-bad-condition", _set("services.web.dependsOn", {"redis": "ready"}), "services.web.dependsOn.redis"),
    ("depends-on-not-a-list", _set("services.web.dependsOn", "redis"), "services.web.dependsOn"),
    ("depends-on-list-of-non-names", _set("services.web.dependsOn", [1]), "services.web.dependsOn"),
    (
        "depends-on-service-completed",
        _set("services.web.dependsOn", {"redis": "completed"}),
        "services.web.dependsOn.redis",
    ),
    (
        "depends-on-healthy-without-health",
        _all(_set("services.redis.health", None), _set("services.web.dependsOn", {"redis": "healthy"})),
        "services.web.dependsOn.redis",
    ),
    (
        "depends-on-job-started",
        _all(_job(), _set("services.web.dependsOn", ["migrate"])),
        "services.web.dependsOn.migrate",
    ),
    (
        "depends-on-job-healthy",
        _all(_job(), _set("services.web.dependsOn", {"migrate": "healthy"})),
        "services.web.dependsOn.migrate",
    ),
    # jobs
    ("jobs-not-an-object", _set("jobs", ["migrate"]), "jobs"),
    ("job-not-an-object", _set("jobs.migrate", "app/web"), "jobs.migrate"),
    ("job-name-uppercase", _set("jobs.Migrate", {"build": "app/web"}), "jobs.Migrate (name)"),
    ("job-name-used-by-a-service", _set("jobs.web", {"build": "app/web"}), "jobs.web"),
    ("job-neither-image-nor-build", _set("jobs.migrate", {"args": ["migrate"]}), "jobs.migrate"),
    ("job-service-key", _job(port=8080), "jobs.migrate.port"),
    ("job-health", _job(health="/healthz"), "jobs.migrate.health"),
    ("job-volume", _job(volume={"path": "/data"}), "jobs.migrate.volume"),
    ("job-timeout-zero", _job(timeout=0), "jobs.migrate.timeout"),
    ("job-timeout-too-long", _job(timeout=86401), "jobs.migrate.timeout"),
    ("job-timeout-not-a-number", _job(timeout="5m"), "jobs.migrate.timeout"),
    ("job-bad-user", _job(user=0), "jobs.migrate.user"),
    ("job-bad-command", _job(command=[]), "jobs.migrate.command"),
    ("job-depends-on-unknown", _job(dependsOn={"db": "healthy"}), "jobs.migrate.dependsOn.db"),
    ("job-secret-unset", _job(secretEnv={"DB_PASSWORD": "dbPassword"}), "dbPassword"),
    (
        "job-pinned-mutable-tag",
        _all(_job(), _set("images", {"migrate": "localhost:5000/cloudservice/web:v1"})),
        "images.migrate",
    ),
    # stack settings
    ("ready-timeout-zero", _set("readyTimeout", 0), "readyTimeout"),
    ("ready-timeout-below-five", _set("readyTimeout", 4), "readyTimeout"),
    ("ready-timeout-not-a-number", _set("readyTimeout", "soon"), "readyTimeout"),
    ("ready-timeout-too-long", _set("readyTimeout", 3601), "readyTimeout"),
    ("keep-releases-zero", _set("keepReleases", 0), "keepReleases"),
    ("keep-releases-not-a-number", _set("keepReleases", "all"), "keepReleases"),
    ("unknown-service-key", _set("services.web.portz", 8080), "services.web.portz"),
    ("unknown-kubernetes-key", _set("kubernetes", {"namespaces": "x"}), "kubernetes.namespaces"),
    ("services-not-an-object", _set("services", ["web", "redis"]), "services"),
    ("services-empty", _set("services", {}), "services"),
    ("services-invalid-json", _set("services", "{not json"), "services"),
    ("service-not-an-object", _set("services.web", "app/web"), "services.web"),
    ("kubernetes-target-without-push", _all(_kubernetes, _set("push", False)), "push"),
    (
        "kubernetes-target-job-without-push",
        _all(
            _kubernetes,
            _set("push", False),
            _job(),
            _set("images", {s: f"localhost:5000/cloudservice/{s}@{DIGEST}" for s in ("web", "redis")}),
        ),
        "push",
    ),
    (
        "kubeconfig-unreadable",
        _all(_kubernetes, _set("kubernetes", {"kubeconfig": "/nonexistent/kubeconfig"})),
        "kubernetes.kubeconfig",
    ),
    ("kubeconfig-is-directory", _all(_kubernetes, _set("kubernetes", {"kubeconfig": ROOT})), "kubernetes.kubeconfig"),
    ("service-type-unknown", _set("kubernetes", {"serviceType": "Ingress"}), "kubernetes.serviceType"),
    ("namespace-invalid", _set("kubernetes", {"namespace": "Bad_Namespace"}), "kubernetes.namespace"),
    ("storage-class-invalid", _set("kubernetes", {"storageClass": "Fast SSD"}), "kubernetes.storageClass"),
    ("kubernetes-not-an-object", _set("kubernetes", "staging"), "kubernetes"),
    ("images-from-invalid", _set("imagesFrom", "org/project/stack/extra"), "imagesFrom"),
    ("docker-host-invalid", _set("dockerHost", "localhost:2375"), "dockerHost"),
    # sync: make dev's live-update rules
    ("sync-not-a-list", _all(_writable_web, _set("services.web.sync", {"path": "app/web"})), "services.web.sync"),
    ("sync-path-outside-context", _sync_web(path="app/redis", target="/app"), "services.web.sync[0].path"),
    ("sync-path-escapes-context", _sync_web(path="app/web/../..", target="/app"), "services.web.sync[0].path"),
    ("sync-target-relative", _sync_web(path="app/web", target="app"), "services.web.sync[0].target"),
    ("sync-target-missing", _sync_web(path="app/web"), "services.web.sync[0].target"),
    ("sync-action-unknown", _sync_web(path="app/web", target="/app", action="copy"), "services.web.sync[0].action"),
    ("sync-ignore-not-a-list", _sync_web(path="app/web", target="/app", ignore=3), "services.web.sync[0].ignore"),
    ("sync-unknown-key", _sync_web(path="app/web", target="/app", from_="x"), "services.web.sync[0].from"),
    (
        "sync-target-read-only",
        _set("services.web.sync", [{"path": "app/web", "target": "/app"}]),
        "services.web.sync[0].target",
    ),
    (
        "sync-without-build",
        _all(
            _set("services.redis.build", None),
            _set("services.redis.image", "redis:7"),
            _set("services.redis.readOnly", False),
            _set("services.redis.sync", [{"path": "app/redis", "target": "/data"}]),
        ),
        "services.redis.sync",
    ),
]


@pytest.mark.parametrize("change,key", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_config_names_the_key(change, key):
    values = base_values()
    parse(values)  # the base is valid, so the change alone is what fails
    change(values)
    problems = problems_of(values)
    assert any(names(problem, key) for problem in problems), f"no problem names {key!r}: {problems}"


def names(problem: str, key: str) -> bool:
    """The problem is about `key` or a key inside it (`services.web.health` for `health: []`)."""
    named = problem.split(": ", 1)[0]
    return named == key or named.startswith(f"{key}.") or named.startswith(f"{key} (")


def test_the_table_covers_every_spec_key():
    named = {case[2] for case in MALFORMED}
    assert len({case[0] for case in MALFORMED}) == len(MALFORMED)
    for key in SERVICE_KEYS:
        assert any(f".{key}" in name for name in named), f"no malformed case for services.*.{key}"
    for key in ("timeout",):
        assert f"jobs.migrate.{key}" in named
    for key in ("ports", "health"):
        assert any(name.startswith(f"services.web.{key}.") for name in named), f"no case for a key inside {key}"


@pytest.mark.parametrize(
    "ports,where",
    [
        (
            {"http": {"port": 8080}, "admin": {"port": 8080}},
            ["services.web.ports.http.port", "services.web.ports.admin.port"],
        )
    ],
)
def test_duplicate_container_ports_name_both(ports, where):
    values = base_values()
    _web_ports(ports)(values)
    problems = problems_of(values)
    for key in where:
        assert any(p.startswith(f"{key}:") for p in problems), problems


def test_both_port_forms_is_one_clear_error():
    values = base_values()
    values["services"]["web"]["ports"] = {"http": {"port": 8080}}
    (problem,) = [p for p in problems_of(values) if p.startswith("services.web:")]
    assert "`ports`" in problem and "`port`" in problem


@pytest.mark.parametrize(
    "cycle,keys",
    [
        ({"redis": {"links": ["web"]}}, {"services.web.links", "services.redis.links"}),
        ({"redis": {"dependsOn": ["web"]}}, {"services.web.links", "services.redis.dependsOn"}),
        (
            {"redis": {"dependsOn": {"web": "started"}}, "web": {"links": [], "dependsOn": ["redis"]}},
            {"services.web.dependsOn", "services.redis.dependsOn"},
        ),
    ],
    ids=["links", "links-and-depends-on", "depends-on"],
)
def test_cycles_are_refused_naming_a_key_on_the_cycle(cycle, keys):
    values = base_values()
    for service, spec in cycle.items():
        values["services"][service].update(spec)
    problems = [p for p in problems_of(values) if "cycle" in p]
    assert problems, "the cycle is reported"
    assert {p.split(":")[0] for p in problems} <= keys, problems


def test_a_cycle_through_a_job_is_refused():
    values = base_values()
    _job(dependsOn={"redis": "started"})(values)
    values["services"]["redis"]["dependsOn"] = {"migrate": "completed"}
    values["services"]["redis"].pop("health")
    values["services"]["web"]["dependsOn"] = {}
    problems = problems_of(values)
    assert any(
        "cycle" in p and p.split(":")[0] in ("jobs.migrate.dependsOn", "services.redis.dependsOn") for p in problems
    ), problems


@pytest.mark.parametrize("reference", ["links", "dependsOn"])
def test_a_reference_to_an_invalid_workload_is_not_a_second_problem(reference):
    """redis's own problem is the one to fix: web linking to it is not reported as a bad name."""
    values = base_values()
    values["services"]["redis"]["memory"] = 2
    if reference == "dependsOn":
        values["services"]["web"]["dependsOn"] = {"redis": "healthy"}
    assert [p.split(":")[0] for p in problems_of(values)] == ["services.redis.memory"]


def test_every_problem_is_reported_at_once():
    values = base_values()
    values.update(target="nomad", portOffset="x", bogus=1, readyTimeout=0)
    values["services"]["web"]["port"] = 0
    values["services"]["web"]["user"] = "root"
    values["services"]["redis"]["capabilities"] = ["FLY"]
    values["jobs"] = {"migrate": {"build": "app/web", "timeout": 0}}
    keys = {problem.split(":")[0] for problem in problems_of(values, secret=lambda key: False)}
    assert {
        "target",
        "portOffset",
        "bogus",
        "readyTimeout",
        "services.web.port",
        "services.web.user",
        "services.redis.capabilities",
        "jobs.migrate.timeout",
    } <= keys


def test_unknown_key_lists_the_known_ones():
    (problem,) = problems_of({**base_values(), "replica": 2}, secret=lambda key: key == "registryPassword")
    assert problem.startswith("replica:") and "replicas" in problem and "--secret replica" in problem


def test_unknown_service_key_lists_the_known_ones():
    values = base_values()
    values["services"]["web"]["entrypoint"] = ["sh"]
    (problem,) = problems_of(values)
    assert problem.startswith("services.web.entrypoint:") and "command" in problem


# -- secrets: any user-named secret config key -------------------------------------------------------


def _with_secrets(**spec) -> dict:
    values = base_values()
    values["services"]["web"].update(spec)
    return values


@pytest.mark.parametrize(
    "spec",
    [{"secretEnv": {"DB_PASSWORD": "dbPassword"}}, {"secretFiles": {"/run/secrets/db": "dbPassword"}}],
    ids=["secretEnv", "secretFiles"],
)
def test_unset_secret_names_the_key_and_where_it_is_used(spec):
    (problem,) = problems_of(_with_secrets(**spec))
    assert problem.startswith("dbPassword:")
    assert "services.web.secret" in problem and "pulumi config set --secret dbPassword" in problem


@pytest.mark.parametrize(
    "spec",
    [{"secretEnv": {"DB_PASSWORD": "dbPassword"}}, {"secretFiles": {"/run/secrets/db": "dbPassword"}}],
    ids=["secretEnv", "secretFiles"],
)
def test_plaintext_secret_is_rejected(spec):
    values = {**_with_secrets(**spec), "dbPassword": "typed-in-clear"}
    problems = problems_of(values, secret=lambda key: key != "dbPassword")
    assert [p for p in problems if p.startswith("dbPassword:")], problems
    assert all("--secret dbPassword" in p for p in problems if p.startswith("dbPassword:"))
    assert "typed-in-clear" not in " ".join(problems), "the error does not echo the value"


def test_plaintext_registry_password_is_rejected():
    problems = problems_of({**base_values(), "registryPassword": "plaintext"}, secret=lambda key: False)
    assert any(p.startswith("registryPassword:") and "--secret" in p for p in problems)


def test_a_stack_setting_referenced_as_a_secret_must_be_a_secret():
    values = _with_secrets(secretEnv={"REGISTRY_USER": "registryUsername"})
    problems = problems_of(values, secret=lambda key: key == "registryPassword")
    assert any(p.startswith("registryUsername:") and "--secret" in p for p in problems)


def test_app_secret_is_no_longer_special():
    """`appSecret` is a secret like any other: unset when referenced is an error, set it is used."""
    values = _with_secrets(secretEnv={"APP_SECRET": "appSecret"})
    assert any(p.startswith("appSecret:") for p in problems_of(values))
    config = parse({**values, "appSecret": "app-value"})
    assert set(config.secrets) == {"appSecret"}


def test_unknown_plaintext_key_is_an_error_even_if_it_looks_like_a_secret():
    problems = problems_of({**base_values(), "dbPassword": "x"}, secret=lambda key: key == "registryPassword")
    assert any(p.startswith("dbPassword:") for p in problems)


def test_user_named_secrets_parse_into_the_model(mocks):
    values = {
        **_with_secrets(secretEnv={"DB_PASSWORD": "dbPassword"}, secretFiles={"/run/secrets/api_token": "apiToken"}),
        "dbPassword": "db-value",
        "apiToken": "token-value",
    }
    _job(secretEnv={"DATABASE_PASSWORD": "dbPassword"})(values)
    config = parse(values)
    web = config.app.service("web")
    assert dict(web.secret_env) == {"DB_PASSWORD": "dbPassword"}
    assert web.secret_files == (SecretFileSpec(path="/run/secrets/api_token", key="apiToken"),)
    assert web.secret_keys == {"dbPassword", "apiToken"}
    assert config.app.secret_keys == ["apiToken", "dbPassword"]
    assert set(config.secrets) == {"dbPassword", "apiToken"}, "only the keys some workload uses"
    for key, value in (("dbPassword", "db-value"), ("apiToken", "token-value")):
        assert isinstance(config.secrets[key], pulumi.Output) and is_secret(config.secrets[key])
    assert "db-value" not in repr(config) and "token-value" not in repr(config)
    assert is_secret(config.images.registry.password)
    assert "s3cr3t" not in repr(config)


# -- what valid config becomes --------------------------------------------------------------------


def test_project_default_spec_parses_into_the_model():
    config = parse(base_values())
    assert config.name_prefix == "cloudservice-dev"
    assert config.target == "docker" and config.images.push
    assert [w.name for w in config.app.workloads] == ["redis", "web"], "linked services come first"
    assert config.app.jobs == ()
    web, redis = config.app.service("web"), config.app.service("redis")
    assert isinstance(web, ServiceSpec)
    assert web.ports == (PortSpec(name="main", port=8080, publish=8080),)
    assert web.main_port == web.ports[0] and web.published == web.ports
    assert web.links == ("redis",) and dict(web.depends_on) == {}
    assert web.health == HealthSpec(path="/healthz", port=8080)
    assert (web.health.interval, web.health.timeout, web.health.retries, web.health.start_period) == (2, 3, 3, 2)
    assert web.user == (10001, 10001) and web.read_only and web.capabilities == ()
    assert web.command is None and web.args is None
    assert (web.cpu, web.cpu_request, web.memory_mb, web.replicas) == (0.5, 0.05, 96, 1)
    assert web.build == BuildSpec(context=os.path.join(ROOT, "app", "web"))
    assert redis.volumes == (VolumeSpec(path="/data", size="1Gi"),) and redis.stateful
    assert redis.health == HealthSpec(command=("redis-cli", "ping"))
    assert redis.ports == (PortSpec(name="main", port=6379),) and redis.published == ()
    assert redis.user == (10002, 10002)
    assert config.images.registry == Registry(
        server="localhost:5000", username="cloudservice", password=config.images.registry.password
    )
    assert config.images.repository == "localhost:5000/cloudservice"
    assert config.labels == {
        "app.kubernetes.io/part-of": "cloudservice",
        "app.kubernetes.io/managed-by": "pulumi",
        "cloudservice.dev/stack": "dev",
    }
    assert config.docker == DockerSettings() and config.target_settings is config.docker
    assert config.kubernetes == KubernetesSettings(namespace="cloudservice-dev")
    assert config.ready_timeout == 60 and config.secrets == {}


def test_target_settings_follow_the_target():
    config = parse(
        {**base_values(), "target": "kubernetes", "kubernetes": {"namespace": "team-a", "serviceType": "ClusterIP"}}
    )
    assert config.target_settings is config.kubernetes
    assert config.kubernetes == KubernetesSettings(namespace="team-a", service_type="ClusterIP")


def test_structured_values_arrive_as_json_text():
    """The CLI passes objects as JSON strings and scalars as strings."""
    values = {key: as_pulumi_config(value) for key, value in base_values().items()}
    values.update(portOffset="100", push="true", readyTimeout="30")
    config = parse(values)
    assert config.docker.port_offset == 100 and config.images.push is True and config.ready_timeout == 30
    assert config.app.service("web").ports == (PortSpec(name="main", port=8080, publish=8080),)


def test_named_ports_keep_their_order_and_the_first_is_main():
    values = base_values()
    _web_ports({"http": {"port": 80, "publish": 8080}, "metrics": {"port": 9100}, "admin": "9200"})(values)
    web = parse(values).app.service("web")
    assert web.ports == (PortSpec("http", 80, 8080), PortSpec("metrics", 9100), PortSpec("admin", 9200))
    assert web.main_port.name == "http" and web.published == (PortSpec("http", 80, 8080),)
    assert web.health == HealthSpec(path="/healthz", port=80), "an HTTP check defaults to the main port"


def test_several_published_ports_on_docker():
    values = base_values()
    _web_ports({"http": {"port": 8080, "publish": 8080}, "admin": {"port": 9000, "publish": 9000}})(values)
    assert [p.publish for p in parse(values).app.service("web").published] == [8080, 9000]


def test_a_service_without_ports_is_a_worker():
    values = base_values()
    values["services"]["worker"] = {"build": "app/web", "args": ["worker"], "links": ["redis"]}
    config = parse(values)
    worker = config.app.service("worker")
    assert worker.ports == () and worker.main_port is None and worker.published == () and worker.health is None
    assert worker.links == ("redis",)


def test_a_worker_may_have_a_command_health_check():
    values = base_values()
    values["services"]["worker"] = {"build": "app/web", "health": ["cat", "/tmp/alive"]}
    assert parse(values).app.service("worker").health == HealthSpec(command=("cat", "/tmp/alive"))


@pytest.mark.parametrize(
    "raw,expected",
    [
        (["python3", "-m", "worker"], ("python3", "-m", "worker")),
        ("python3 -m worker", ("python3", "-m", "worker")),
        (["--port", "80"], ("--port", "80")),
    ],
)
def test_command_and_args(raw, expected):
    values = base_values()
    values["services"]["web"].update(command=raw, args=raw)
    web = parse(values).app.service("web")
    assert web.command == expected and web.args == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        (10001, (10001, 10001)),
        ("10001", (10001, 10001)),
        ("10001:20002", (10001, 20002)),
        (1, (1, 1)),
        ("1000:0", (1000, 0)),
        ("image", None),
    ],
)
def test_user(raw, expected):
    values = base_values()
    values["services"]["web"]["user"] = raw
    assert parse(values).app.service("web").user == expected


@pytest.mark.parametrize("raw", [False, "false", "False"])
def test_read_only_can_be_turned_off(raw):
    values = base_values()
    values["services"]["web"]["readOnly"] = raw
    assert parse(values).app.service("web").read_only is False


def test_capabilities_are_added_by_name():
    values = base_values()
    values["services"]["web"]["capabilities"] = ["NET_BIND_SERVICE", "CHOWN"]
    assert parse(values).app.service("web").capabilities == ("NET_BIND_SERVICE", "CHOWN")


def test_files_are_read_from_the_project():
    values = base_values()
    values["services"]["web"]["files"] = {"/etc/web/redis.conf": CONFIG_FILE}
    (file,) = parse(values).app.service("web").files
    path = os.path.join(ROOT, CONFIG_FILE)
    with open(path, encoding="utf-8") as handle:
        assert file == FileSpec(path="/etc/web/redis.conf", source=path, content=handle.read())


@pytest.fixture
def project(tmp_path):
    """A minimal project: a build context and a config directory."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "app.yaml").write_text("level: info\n")
    return tmp_path


def _project_values(files) -> dict:
    return {"services": {"app": {"build": "app", "files": files}}}


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda p: (p / "config" / "big.txt").write_text("x" * (512 * 1024 + 1)), "at most 512 KiB"),
        (lambda p: (p / "config" / "big.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), "UTF-8 text"),
        (lambda p: (p / "config" / "big.txt").symlink_to(p.parent / "elsewhere.txt"), "inside the project"),
    ],
    ids=["too-large", "binary", "symlink-out-of-the-project"],
)
def test_files_that_cannot_be_mounted(project, make, expected):
    (project.parent / "elsewhere.txt").write_text("secret-ish\n")
    make(project)
    problems = problems_of(_project_values({"/etc/app/big.txt": "config/big.txt"}), base_dir=str(project))
    (problem,) = problems
    assert problem.startswith("services.app.files./etc/app/big.txt:") and expected in problem


def test_file_at_the_size_limit_is_fine(project):
    (project / "config" / "limit.txt").write_text("x" * (512 * 1024))
    config = parse(
        _project_values({"/etc/app/limit.txt": "config/limit.txt", "/etc/app/app.yaml": "./config/../config/app.yaml"}),
        base_dir=str(project),
    )
    assert [f.path for f in config.app.service("app").files] == ["/etc/app/limit.txt", "/etc/app/app.yaml"]
    assert config.app.service("app").files[1].content == "level: info\n"


def test_jobs_parse_and_run_before_their_dependants():
    values = base_values()
    _job(
        links=["redis"],
        dependsOn={"redis": "healthy"},
        env={"MODE": "migrate"},
        timeout=120,
        user="image",
        readOnly=False,
    )(values)
    values["services"]["web"]["dependsOn"] = {"migrate": "completed", "redis": "healthy"}
    config = parse(values)
    (job,) = config.app.jobs
    assert isinstance(job, JobSpec) and not isinstance(job, ServiceSpec)
    assert (job.name, job.timeout, job.args, job.links, dict(job.env)) == (
        "migrate",
        120,
        ("migrate",),
        ("redis",),
        {"MODE": "migrate"},
    )
    assert dict(job.depends_on) == {"redis": "healthy"} and job.user is None and job.read_only is False
    assert dict(config.app.service("web").depends_on) == {"migrate": "completed", "redis": "healthy"}
    assert [w.name for w in config.app.workloads] == ["redis", "migrate", "web"]
    assert [s.name for s in config.app.services] == ["redis", "web"]


def test_job_defaults():
    values = base_values()
    values["jobs"] = {"migrate": {"image": "busybox:1.36", "command": ["true"]}}
    (job,) = parse(values).app.jobs
    assert job.timeout == 300 and job.user == (10001, 10001) and job.read_only and job.image == "busybox:1.36"


def test_jobs_may_be_pinned_like_services():
    values = base_values()
    _job()(values)
    values["images"] = {"migrate": f"localhost:5000/cloudservice/migrate@{DIGEST}"}
    assert dict(parse(values).images.pinned) == values["images"]


def test_health_long_form():
    values = base_values()
    _web_ports({"http": {"port": 8080, "publish": 8080}, "admin": {"port": 9000}})(values)
    values["services"]["web"]["health"] = {
        "http": "/ready",
        "port": "admin",
        "interval": 5,
        "timeout": "4",
        "retries": 6,
        "startPeriod": 0,
    }
    values["services"]["redis"]["health"] = {"command": "redis-cli ping", "interval": 1}
    config = parse(values)
    assert config.app.service("web").health == HealthSpec(
        path="/ready", port=9000, interval=5, timeout=4, retries=6, start_period=0
    )
    assert config.app.service("redis").health == HealthSpec(command=("redis-cli", "ping"), interval=1)


@pytest.mark.parametrize(
    "raw,expected",
    [
        (["redis"], {"redis": "started"}),
        ({"redis": "started"}, {"redis": "started"}),
        ({"redis": "healthy"}, {"redis": "healthy"}),
        ([], {}),
    ],
)
def test_depends_on(raw, expected):
    values = base_values()
    values["services"]["web"]["dependsOn"] = raw
    assert dict(parse(values).app.service("web").depends_on) == expected


def test_depends_on_orders_the_workloads():
    values = base_values()
    values["services"] = {
        "api": {"build": "app/web", "port": 8080, "dependsOn": {"cache": "healthy"}},
        "cache": {"build": "app/redis", "port": 6379, "health": ["redis-cli", "ping"], "dependsOn": ["store"]},
        "store": {"image": "redis:7", "port": 6380},
    }
    assert [w.name for w in parse(values).app.workloads] == ["store", "cache", "api"]


def test_ready_timeout():
    assert parse({**base_values(), "readyTimeout": 120}).ready_timeout == 120
    assert parse({**base_values(), "readyTimeout": "5"}).ready_timeout == 5


def test_keep_releases_defaults_to_five_and_is_read_alike_by_gc():
    assert parse(base_values()).keep_releases == 5
    assert parse({**base_values(), "keepReleases": "12"}).keep_releases == 12
    assert keep_releases(None) == 5 and keep_releases("12") == 12
    with pytest.raises(ConfigError, match="keepReleases: expected an integer from 1 to 1000"):
        keep_releases("-1")


def test_stack_replicas_scale_stateless_services_only():
    config = parse({**base_values(), "target": "kubernetes", "replicas": 3})
    assert config.app.service("web").replicas == 3
    assert config.app.service("redis").replicas == 1, "a service with a volume keeps its single replica"


def test_build_args_of_the_stack_win_over_the_spec():
    services = default_services()
    services["web"]["build"] = {"context": "app/web", "args": {"BASE_IMAGE": "python:3.12-slim", "EXTRA": 1}}
    config = parse({**base_values(), "services": services, "buildArgs": {"BASE_IMAGE": "cloudservice/base:bookworm"}})
    assert dict(config.app.service("web").build.args) == {"BASE_IMAGE": "cloudservice/base:bookworm", "EXTRA": "1"}
    assert dict(config.app.service("redis").build.args) == {"BASE_IMAGE": "cloudservice/base:bookworm"}


def test_kubernetes_target_without_push_is_fine_with_pinned_or_promoted_images():
    pinned = {name: f"localhost:5000/cloudservice/{name}@{DIGEST}" for name in ("web", "redis")}
    assert (
        dict(parse({**base_values(), "target": "kubernetes", "push": False, "images": pinned}).images.pinned) == pinned
    )
    promoted = parse(
        {**base_values(), "target": "kubernetes", "push": False, "imagesFrom": "organization/cloudservice/staging"}
    )
    assert promoted.images.images_from == "organization/cloudservice/staging"


def test_readable_kubeconfig_is_accepted(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    config = parse(
        {**base_values(), "target": "kubernetes", "kubernetes": {"kubeconfig": str(kubeconfig), "context": "ci"}}
    )
    assert config.kubernetes.kubeconfig == str(kubeconfig) and config.kubernetes.context == "ci"


@pytest.mark.parametrize(
    "reference,valid",
    [
        ("redis:7", True),
        ("redis", True),
        ("localhost:5000/cloudservice/web:c-1234", True),
        (f"localhost:5000/cloudservice/web@{DIGEST}", True),
        ("docker.io/library/redis:7-bookworm", True),
        ("localhost:5000/web", True),
        ("Redis:7", False),
        ("redis:", False),
        ("redis@sha256:abc", False),
        ("redis@md5:" + "a" * 64, False),
        ("redis:7 ", False),
        ("", False),
        ("/redis", False),
    ],
)
def test_image_reference_grammar(reference, valid):
    assert is_image_reference(reference) is valid


@pytest.mark.parametrize(
    "server, url",
    [
        ("localhost:5000", "http://localhost:5000"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("registry.example.com", "https://registry.example.com"),
        ("registry.example.com:5443", "https://registry.example.com:5443"),
    ],
)
def test_registry_url_follows_dockers_loopback_rule(server, url):
    assert Registry(server=server, username="u", password="p").url == url


# -- the project's own files ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_file_parses(mocks, stack):
    """Pulumi.yaml defaults overlaid with Pulumi.<stack>.yaml, as the CLI hands them to the program
    (strings, JSON for objects, `cloudservice:` keys, registryPassword set as a secret)."""
    values = {**stack_values(stack), "registryPassword": "from-make-up"}
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{key}": as_pulumi_config(value) for key, value in values.items()}, [f"{PROJECT}:registryPassword"]
    )
    install_mocks(stack=stack)
    config = load_stack_config(base_dir=ROOT)
    assert config.stack == stack and config.project == PROJECT
    assert {s.name for s in config.app.services} == {"web", "redis"}
    assert config.images.registry is not None and is_secret(config.images.registry.password)
    assert config.ready_timeout == 60
    web = config.app.service("web")
    if stack == "dev":
        assert config.target == "docker" and config.images.push
        assert web.build.args["BASE_IMAGE"] == "cloudservice/base:bookworm"
    if stack == "staging":
        assert config.target == "kubernetes" and config.images.push and web.replicas == 2
    if stack == "prod":
        assert config.target == "kubernetes" and not config.images.push
        assert config.images.images_from == "organization/cloudservice/staging"
        assert web.replicas == 3 and config.app.service("redis").replicas == 1
    if config.target == "kubernetes":
        assert config.kubernetes.service_type == "NodePort"
        assert config.images.repository.startswith(config.images.registry.server + "/")


def test_load_stack_config_rejects_a_plaintext_registry_password(mocks):
    values = {**stack_values("dev"), "registryPassword": "typed-in-clear"}
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": as_pulumi_config(v) for k, v in values.items()}, [])
    with pytest.raises(ConfigError) as error:
        load_stack_config(base_dir=ROOT)
    assert any(p.startswith("registryPassword:") for p in error.value.problems)


def test_load_stack_config_reads_user_named_secrets(mocks):
    values = {**stack_values("dev"), "registryPassword": "pw", "dbPassword": "db-value"}
    values["services"] = {
        **values["services"],
        "web": {**values["services"]["web"], "secretEnv": {"DB_PASSWORD": "dbPassword"}},
    }
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": as_pulumi_config(v) for k, v in values.items()},
        [f"{PROJECT}:registryPassword", f"{PROJECT}:dbPassword"],
    )
    config = load_stack_config(base_dir=ROOT)
    assert is_secret(config.secrets["dbPassword"])


def test_load_stack_config_ignores_other_namespaces(mocks):
    values = {**stack_values("dev"), "registryPassword": "pw"}
    config = {f"{PROJECT}:{k}": as_pulumi_config(v) for k, v in values.items()}
    config["docker:host"] = "unix:///var/run/docker.sock"
    pulumi.runtime.set_all_config(config, [f"{PROJECT}:registryPassword"])
    assert load_stack_config(base_dir=ROOT).target == "docker"


def test_pulumi_yaml_schema_names_only_known_keys():
    assert set(project_defaults()) <= set(STACK_KEYS)


# -- arbitrary input --------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "app/web",
            "app/redis",
            "redis:7",
            "/healthz",
            "512Mi",
            "kubernetes",
            "docker",
            "true",
            "-1",
            "1e999",
            "image",
            "10001:10001",
            "0:0",
            "NET_BIND_SERVICE",
            CONFIG_FILE,
            "../etc/passwd",
            "a\0b",
            "dbPassword",
            "completed",
            "healthy",
            "started",
            "main",
            "web",
            "redis",
            "migrate",
        ]
    )
)
_keys = st.text(max_size=8) | st.sampled_from(
    ["/etc/app.conf", "/run/secrets/db", "/data", "main", "web", "redis", "migrate", "DB"]
)
_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4), max_leaves=8
)
_value = _json | _json.map(lambda v: json.dumps(v, default=str))
# Keys whose value is an object get one more often, so what is inside them is exercised too.
_OBJECT_KEYS = ("build", "env", "secretEnv", "secretFiles", "files", "dependsOn", "ports", "volume", "health")


_mounts = st.dictionaries(st.sampled_from(["/etc/app.conf", "/run/secrets/db", "/data"]) | _keys, _scalars, max_size=3)


def _workload(keys: tuple[str, ...]):
    def value(key: str):
        if key in ("files", "secretFiles"):
            return _mounts | _value
        return st.dictionaries(_keys, _json, max_size=3) | _value if key in _OBJECT_KEYS else _value

    return st.lists(st.sampled_from(keys).flatmap(lambda key: st.tuples(st.just(key), value(key))), max_size=8).map(
        dict
    )


_service = _workload(SERVICE_KEYS)
_job_spec = _workload(JOB_KEYS)
_stack = st.dictionaries(st.sampled_from(STACK_KEYS) | st.text(max_size=10), _value, max_size=8)
_with_services = st.tuples(
    _stack,
    st.dictionaries(
        st.sampled_from(["web", "redis", "Web"]) | st.text(max_size=6), _service | _service.map(json.dumps), max_size=3
    ),
    st.dictionaries(st.sampled_from(["migrate", "web"]) | st.text(max_size=6), _job_spec, max_size=2),
    st.dictionaries(st.sampled_from(KUBERNETES_KEYS), _value, max_size=4),
).map(lambda parts: {**parts[0], "services": parts[1], "jobs": parts[2], "kubernetes": parts[3]})


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(values=_stack | _with_services, secret=st.booleans(), target=st.sampled_from([None, "docker", "kubernetes"]))
def test_arbitrary_input_raises_only_config_error(values, secret, target):
    if target:
        values = {**values, "target": target}
    try:
        config = parse(values, secret=lambda key: secret)
    except ConfigError as error:
        assert error.problems and all(isinstance(p, str) and ":" in p for p in error.problems)
    else:
        assert isinstance(config, StackConfig)


@settings(max_examples=max(10, settings.default.max_examples // 3), suppress_health_check=[HealthCheck.too_slow])
@given(service=_service, job=_job_spec)
def test_arbitrary_workload_spec_raises_only_config_error(service, job):
    values = base_values()
    values["services"]["web"] = {**values["services"]["web"], **service}
    values["jobs"] = {"migrate": {"build": "app/web", **job}}
    values["dbPassword"] = "secret-value"
    try:
        parse(copy.deepcopy(values))
    except ConfigError as error:
        assert all(p.split(":")[0] for p in error.problems)


def test_sync_rules_read_into_the_spec():
    values = base_values()
    values["services"]["web"]["readOnly"] = False
    values["services"]["web"]["sync"] = [
        {"path": "app/web", "target": "/app", "action": "sync+restart", "ignore": ["*.pyc", "cache"]},
        {"path": "app/web/Dockerfile", "action": "rebuild"},
    ]
    restart, rebuild = parse(values).app.service("web").sync
    assert restart == SyncSpec(
        path=os.path.join(ROOT, "app/web"), target="/app", action="sync+restart", ignore=("*.pyc", "cache")
    )
    assert (rebuild.path, rebuild.target, rebuild.action) == (os.path.join(ROOT, "app/web/Dockerfile"), None, "rebuild")


@pytest.mark.parametrize(
    "relative,inside",
    [
        ("app/web/server.py", "server.py"),
        ("app/web/static/site.css", "static/site.css"),
        ("app/web", ""),
        ("app/webapp/server.py", None),  # a sibling whose name starts alike
        ("app/web/x.pyc", None),
        ("app/web/cache/entry", None),  # an ignored directory covers what is in it
        ("app/web/static/cache/entry", None),
    ],
)
def test_a_sync_rule_covers_its_path_but_not_what_it_ignores(relative, inside):
    rule = SyncSpec(path="app/web", target="/app", ignore=("*.pyc", "cache"))
    assert rule.covers(relative) == inside
    if inside is not None:
        assert rule.container_path(inside) == os.path.join("/app", inside).rstrip("/")


def test_routes_become_route_specs_to_the_main_port_by_default():
    values = base_values()
    values["services"]["web"]["ports"] = {"http": {"port": 8080}, "admin": {"port": 9000}}
    del values["services"]["web"]["port"], values["services"]["web"]["publish"]
    values["routes"] = [
        {"service": "web"},
        {"service": "web", "port": "admin", "path": "/admin", "host": "shop.localhost", "tlsSecret": "shop-tls"},
    ]
    routes = parse(values).app.routes
    assert routes == (
        RouteSpec(service="web", port="http", path="/"),
        RouteSpec(service="web", port="admin", path="/admin", host="shop.localhost", tls_secret="shop-tls"),
    )


def test_no_routes_no_route_specs():
    assert parse(base_values()).app.routes == ()


def test_routes_to_a_service_with_problems_of_its_own_report_only_those():
    values = {**base_values(), "routes": [{"service": "web"}]}
    values["services"]["web"]["port"] = 0
    assert [p for p in problems_of(values) if p.startswith("routes")] == []


def test_a_route_may_repeat_a_path_on_another_host():
    routes = [{"service": "web", "host": "a.localhost"}, {"service": "web", "host": "b.localhost"}, {"service": "web"}]
    assert len(parse({**base_values(), "routes": routes}).app.routes) == 3


def test_docker_runs_replicas_of_a_service_that_publishes_nothing():
    values = {**base_values(), "routes": [{"service": "web"}]}
    values["services"]["web"].pop("publish")
    values["services"]["web"]["replicas"] = 3
    config = parse(values)
    assert config.app.service("web").replicas == 3
    assert config.docker.router_port == 9443


def test_router_port_is_a_stack_key():
    values = {**base_values(), "routes": [{"service": "web"}], "routerPort": 9443}
    assert parse(values).docker.router_port == 9443
