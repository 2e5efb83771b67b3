"""components/config.py: every malformed stack config fails with a ConfigError naming the key; the
project's own Pulumi.yaml and Pulumi.<stack>.yaml files parse; arbitrary input never crashes it."""

from __future__ import annotations

import copy
import json
import os

import pulumi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import (
    KUBERNETES_KEYS, SERVICE_KEYS, STACK_KEYS, BuildSpec, ConfigError, StackConfig, VolumeSpec,
    is_image_reference, load_stack_config, parse_stack_config,
)
from harness import (
    PROJECT, REGISTRY, ROOT, as_pulumi_config, default_services, fake_digest, install_mocks, is_secret, make_config,
    project_defaults, stack_values,
)

DIGEST = fake_digest("pinned")


def base_values() -> dict:
    """A valid docker-target config: the project's app spec pushed to the local registry."""
    return {"target": "docker", "services": default_services(), **REGISTRY}


def parse(values: dict, *, stack: str = "dev", secret=lambda key: True) -> StackConfig:
    return parse_stack_config(values, project=PROJECT, stack=stack, is_secret=secret, base_dir=ROOT)


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


# (id, change to the valid base, key the error must name, is_secret for the secret keys)
MALFORMED = [
    ("target-unknown", _set("target", "nomad"), "target"),
    ("target-wrong-type", _set("target", 3), "target"),
    ("port-not-a-number", _set("services.web.port", "http"), "services.web.port"),
    ("port-zero", _set("services.web.port", 0), "services.web.port"),
    ("port-above-65535", _set("services.redis.port", 70000), "services.redis.port"),
    ("port-missing", _set("services.web.port", None), "services.web.port"),
    ("publish-out-of-range", _set("services.web.publish", 65536), "services.web.publish"),
    ("port-bool", _set("services.web.port", True), "services.web.port"),
    ("replicas-negative", _set("replicas", -1), "replicas"),
    ("replicas-too-many", _all(_kubernetes, _set("services.web.replicas", 101)), "services.web.replicas"),
    ("replicas-on-docker", _set("services.web.replicas", 2), "services.web.replicas"),
    ("replicas-with-volume", _all(_kubernetes, _set("services.redis.replicas", 2)), "services.redis.replicas"),
    ("service-name-uppercase", lambda v: v["services"].update(Web_1=v["services"].pop("web")), "services.Web_1 (name)"),
    ("service-name-too-long", lambda v: v["services"].update({"x" * 40: {"image": "redis:7", "port": 1}}), f"services.{'x' * 40} (name)"),
    ("image-uppercase", _all(_set("services.redis.build", None), _set("services.redis.image", "Redis:7")), "services.redis.image"),
    ("image-bad-digest", _all(_set("services.redis.build", None), _set("services.redis.image", "redis@sha256:1234")), "services.redis.image"),
    ("image-and-build", _set("services.redis.image", "redis:7"), "services.redis"),
    ("neither-image-nor-build", _set("services.redis.build", None), "services.redis"),
    ("build-context-missing", _set("services.web.build", "app/nope"), "services.web.build.context"),
    ("build-dockerfile-missing", _set("services.web.build", {"context": "app/web", "dockerfile": "Nope"}), "services.web.build.dockerfile"),
    ("build-unknown-key", _set("services.web.build", {"context": "app/web", "platform": "arm"}), "services.web.build.platform"),
    ("pinned-mutable-tag", _set("images", {"web": "localhost:5000/cloudservice/web:v1"}), "images.web"),
    ("pinned-unknown-service", _set("images", {"api": f"localhost:5000/cloudservice/api@{DIGEST}"}), "images.api"),
    ("registry-password-missing", _set("registryPassword", None), "registryPassword"),
    ("registry-password-empty", _set("registryPassword", ""), "registryPassword"),
    ("registry-username-missing", _set("registryUsername", None), "registryUsername"),
    ("registry-server-invalid", _set("registryServer", "https://localhost:5000"), "registryServer"),
    ("push-without-registry", _all(_set("registryServer", None), _set("registryUsername", None), _set("registryPassword", None)), "registryServer"),
    ("push-outside-registry", _set("imageRepository", "docker.io/someone"), "imageRepository"),
    ("push-not-boolean", _set("push", "yes"), "push"),
    ("image-repository-invalid", _set("imageRepository", "Local Host/x"), "imageRepository"),
    ("secret-env-missing-secret", _set("services.web.secretEnv", {"APP_SECRET": "appSecret"}), "appSecret"),
    ("secret-env-not-a-secret-key", _set("services.web.secretEnv", {"APP_SECRET": "registryUsername"}), "services.web.secretEnv.APP_SECRET"),
    ("env-nested-value", _set("services.web.env", {"MODE": {"a": 1}}), "services.web.env.MODE"),
    ("env-bad-name", _set("services.web.env", {"1MODE": "x"}), "services.web.env"),
    ("env-not-object", _set("services.web.env", ["MODE=x"]), "services.web.env"),
    ("build-args-invalid", _set("buildArgs", {"BASE": ["x"]}), "buildArgs.BASE"),
    ("unknown-top-level-key", _set("replica", 2), "replica"),
    ("unknown-service-key", _set("services.web.ports", [8080]), "services.web.ports"),
    ("unknown-kubernetes-key", _set("kubernetes", {"namespaces": "x"}), "kubernetes.namespaces"),
    ("unknown-volume-key", _set("services.redis.volume", {"path": "/data", "mode": "rw"}), "services.redis.volume.mode"),
    ("volume-relative-path", _set("services.redis.volume", {"path": "data"}), "services.redis.volume.path"),
    ("volume-bad-size", _set("services.redis.volume", {"path": "/data", "size": "1G"}), "services.redis.volume.size"),
    ("health-invalid", _set("services.web.health", "healthz"), "services.web.health"),
    ("health-empty-command", _set("services.redis.health", []), "services.redis.health"),
    ("user-root", _set("services.web.user", 0), "services.web.user"),
    ("read-only-not-boolean", _set("services.web.readOnly", "sometimes"), "services.web.readOnly"),
    ("cpu-not-a-number", _set("services.web.cpu", "lots"), "services.web.cpu"),
    ("cpu-too-small", _set("services.web.cpu", 0), "services.web.cpu"),
    ("cpu-huge-integer", _set("services.web.cpu", 10 ** 400), "services.web.cpu"),
    ("memory-too-small", _set("services.web.memory", 2), "services.web.memory"),
    ("memory-float", _set("services.web.memory", 96.5), "services.web.memory"),
    ("conflicting-host-ports", _set("services.redis.publish", 8080), "services.web.publish"),
    ("port-offset-overflow", _set("portOffset", 60000), "portOffset"),
    ("port-offset-negative", _set("portOffset", -1), "portOffset"),
    ("links-unknown", _set("services.web.links", ["cache"]), "services.web.links"),
    ("links-self", _set("services.web.links", ["web"]), "services.web.links"),
    ("links-cycle", _set("services.redis.links", ["web"]), "services.redis.links"),
    ("links-not-a-list", _set("services.web.links", "redis"), "services.web.links"),
    ("services-not-an-object", _set("services", ["web", "redis"]), "services"),
    ("services-empty", _set("services", {}), "services"),
    ("services-invalid-json", _set("services", "{not json"), "services"),
    ("service-not-an-object", _set("services.web", "app/web"), "services.web"),
    ("kubernetes-target-without-push", _all(_kubernetes, _set("push", False)), "push"),
    ("kubeconfig-unreadable", _all(_kubernetes, _set("kubernetes", {"kubeconfig": "/nonexistent/kubeconfig"})), "kubernetes.kubeconfig"),
    ("kubeconfig-is-directory", _all(_kubernetes, _set("kubernetes", {"kubeconfig": ROOT})), "kubernetes.kubeconfig"),
    ("service-type-unknown", _set("kubernetes", {"serviceType": "Ingress"}), "kubernetes.serviceType"),
    ("namespace-invalid", _set("kubernetes", {"namespace": "Bad_Namespace"}), "kubernetes.namespace"),
    ("storage-class-invalid", _set("kubernetes", {"storageClass": "Fast SSD"}), "kubernetes.storageClass"),
    ("kubernetes-not-an-object", _set("kubernetes", "staging"), "kubernetes"),
    ("images-from-invalid", _set("imagesFrom", "org/project/stack/extra"), "imagesFrom"),
    ("docker-host-invalid", _set("dockerHost", "localhost:2375"), "dockerHost"),
]


@pytest.mark.parametrize("change,key", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_config_names_the_key(change, key):
    values = base_values()
    parse(values)  # the base is valid, so the change alone is what fails
    change(values)
    with pytest.raises(ConfigError) as error:
        parse(values)
    problems = error.value.problems
    assert any(problem.startswith(key) for problem in problems), f"no problem names {key!r}: {problems}"
    assert key in str(error.value)


def test_the_table_covers_at_least_fifteen_distinct_keys():
    assert len({case[2] for case in MALFORMED}) >= 15
    assert len({case[0] for case in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize("key", ["registryPassword", "appSecret"])
def test_plaintext_secret_is_rejected(key):
    values = {**base_values(), key: "plaintext"}
    with pytest.raises(ConfigError) as error:
        parse(values, secret=lambda name: name != key)
    assert any(p.startswith(f"{key}:") and "--secret" in p for p in error.value.problems)


def test_every_problem_is_reported_at_once():
    values = base_values()
    values.update(target="nomad", portOffset="x", bogus=1)
    values["services"]["web"]["port"] = 0
    with pytest.raises(ConfigError) as error:
        parse(values)
    keys = {problem.split(":")[0] for problem in error.value.problems}
    assert {"target", "portOffset", "bogus", "services.web.port"} <= keys


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(ConfigError) as error:
        parse({**base_values(), "replica": 2})
    assert "replicas" in error.value.problems[0]


# -- what valid config becomes --------------------------------------------------------------------


def test_project_default_spec_parses_into_the_model():
    config = parse(base_values())
    assert config.name_prefix == "cloudservice-dev"
    assert config.target == "docker" and config.push
    assert [s.name for s in config.services] == ["redis", "web"], "linked services come first"
    web, redis = config.service("web"), config.service("redis")
    assert (web.port, web.publish, web.links, web.health_path, web.user) == (8080, 8080, ("redis",), "/healthz", 10001)
    assert (web.cpu, web.memory_mb, web.read_only, web.replicas) == (0.5, 96, True, 1)
    assert web.build == BuildSpec(context=os.path.join(ROOT, "app", "web"))
    assert redis.volume == VolumeSpec(path="/data", size="1Gi") and redis.stateful
    assert redis.health_command == ("redis-cli", "ping") and redis.publish is None
    assert config.registry.server == "localhost:5000" and config.registry.username == "cloudservice"
    assert config.labels == {
        "app.kubernetes.io/part-of": "cloudservice", "app.kubernetes.io/managed-by": "pulumi",
        "cloudservice.dev/stack": "dev",
    }
    assert config.kubernetes.namespace == "cloudservice-dev"


def test_structured_values_arrive_as_json_text():
    """The CLI passes objects as JSON strings and scalars as strings."""
    values = {key: as_pulumi_config(value) for key, value in base_values().items()}
    values["portOffset"] = "100"
    values["push"] = "true"
    config = parse(values)
    assert config.port_offset == 100 and config.push is True
    assert config.service("web").publish == 8080


def test_stack_replicas_scale_stateless_services_only():
    config = make_config(target="kubernetes", replicas=3, **REGISTRY)
    assert config.service("web").replicas == 3
    assert config.service("redis").replicas == 1, "a service with a volume keeps its single replica"


def test_build_args_of_the_stack_win_over_the_spec():
    services = default_services()
    services["web"]["build"] = {"context": "app/web", "args": {"BASE_IMAGE": "python:3.12-slim", "EXTRA": 1}}
    config = parse({**base_values(), "services": services, "buildArgs": {"BASE_IMAGE": "cloudservice/base:bookworm"}})
    assert dict(config.service("web").build.args) == {"BASE_IMAGE": "cloudservice/base:bookworm", "EXTRA": "1"}
    assert dict(config.service("redis").build.args) == {"BASE_IMAGE": "cloudservice/base:bookworm"}


def test_secrets_stay_secret_outputs(mocks):
    config = parse({**base_values(), "appSecret": "app-value"})
    assert isinstance(config.registry.password, pulumi.Output)
    assert is_secret(config.registry.password)
    assert is_secret(config.secrets["appSecret"])
    assert "s3cr3t" not in repr(config)


def test_kubernetes_target_without_push_is_fine_with_pinned_or_promoted_images():
    pinned = {name: f"localhost:5000/cloudservice/{name}@{DIGEST}" for name in ("web", "redis")}
    assert parse({**base_values(), "target": "kubernetes", "push": False, "images": pinned}).pinned_images == pinned
    promoted = parse({**base_values(), "target": "kubernetes", "push": False, "imagesFrom": "organization/cloudservice/staging"})
    assert promoted.images_from == "organization/cloudservice/staging"


def test_readable_kubeconfig_is_accepted(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    config = parse({**base_values(), "target": "kubernetes", "kubernetes": {"kubeconfig": str(kubeconfig), "context": "ci"}})
    assert config.kubernetes.kubeconfig == str(kubeconfig) and config.kubernetes.context == "ci"


@pytest.mark.parametrize("reference,valid", [
    ("redis:7", True), ("redis", True), ("localhost:5000/cloudservice/web:c-1234", True),
    (f"localhost:5000/cloudservice/web@{DIGEST}", True), ("docker.io/library/redis:7-bookworm", True),
    ("localhost:5000/web", True), ("Redis:7", False), ("redis:", False), ("redis@sha256:abc", False),
    ("redis@md5:" + "a" * 64, False), ("redis:7 ", False), ("", False), ("/redis", False),
])
def test_image_reference_grammar(reference, valid):
    assert is_image_reference(reference) is valid


# -- the project's own files ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_file_parses(mocks, stack):
    """Pulumi.yaml defaults overlaid with Pulumi.<stack>.yaml, as the CLI hands them to the program
    (strings, JSON for objects, `cloudservice:` keys, registryPassword set as a secret)."""
    values = {**stack_values(stack), "registryPassword": "from-make-up"}
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{key}": as_pulumi_config(value) for key, value in values.items()},
        [f"{PROJECT}:registryPassword"],
    )
    install_mocks(stack=stack)
    config = load_stack_config(base_dir=ROOT)
    assert config.stack == stack and config.project == PROJECT
    assert {s.name for s in config.services} == {"web", "redis"}
    assert config.registry is not None and is_secret(config.registry.password)
    if stack == "dev":
        assert config.target == "docker" and config.push
        assert config.service("web").build.args["BASE_IMAGE"] == "cloudservice/base:bookworm"
    if stack == "staging":
        assert config.target == "kubernetes" and config.push and config.service("web").replicas == 2
    if stack == "prod":
        assert config.target == "kubernetes" and not config.push
        assert config.images_from == "organization/cloudservice/staging"
        assert config.service("web").replicas == 3 and config.service("redis").replicas == 1
    if config.target == "kubernetes":
        assert config.kubernetes.service_type == "NodePort"
        assert config.image_repository.startswith(config.registry.server + "/")


def test_load_stack_config_rejects_a_plaintext_registry_password(mocks):
    values = {**stack_values("dev"), "registryPassword": "typed-in-clear"}
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": as_pulumi_config(v) for k, v in values.items()}, [])
    with pytest.raises(ConfigError) as error:
        load_stack_config(base_dir=ROOT)
    assert any(p.startswith("registryPassword:") for p in error.value.problems)


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
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10 ** 400), max_value=10 ** 400)
    | st.floats() | st.text(max_size=12)
    | st.sampled_from(["app/web", "app/redis", "redis:7", "/healthz", "512Mi", "kubernetes", "docker", "true", "-1", "1e999"])
)
_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
_value = _json | _json.map(lambda v: json.dumps(v, default=str))
_service = st.dictionaries(st.sampled_from(SERVICE_KEYS + ("ports",)), _value, max_size=8)
_stack = st.dictionaries(st.sampled_from(STACK_KEYS) | st.text(max_size=10), _value, max_size=8)
_with_services = st.tuples(
    _stack,
    st.dictionaries(st.sampled_from(["web", "redis", "Web"]) | st.text(max_size=6), _service | _service.map(json.dumps), max_size=3),
    st.dictionaries(st.sampled_from(KUBERNETES_KEYS), _value, max_size=4),
).map(lambda parts: {**parts[0], "services": parts[1], "kubernetes": parts[2]})


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
@given(service=_service)
def test_arbitrary_service_spec_raises_only_config_error(service):
    values = base_values()
    values["services"]["web"] = {**values["services"]["web"], **service}
    try:
        parse(copy.deepcopy(values))
    except ConfigError as error:
        assert all(p.split(":")[0] for p in error.problems)


@pytest.mark.parametrize("server, url", [
    ("localhost:5000", "http://localhost:5000"),
    ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("registry.example.com", "https://registry.example.com"),
    ("registry.example.com:5443", "https://registry.example.com:5443"),
])
def test_registry_url_follows_dockers_loopback_rule(server, url):
    from components.config import Registry
    assert Registry(server=server, username="u", password="p").url == url
