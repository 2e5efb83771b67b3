"""components/compose.py: every supported Compose key maps onto the app spec; everything else is
refused with a ConfigError naming the service and key; arbitrary input never crashes it."""

from __future__ import annotations

import copy
import json
import os
import runpy

import pulumi
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.compose import SERVICE_KEYS, ComposeApp, compose_to_spec, load_compose
from components.config import ConfigError, JobSpec, load_stack_config, parse_stack_config
from harness import PROJECT, REGISTRY, ROOT, as_pulumi_config, is_secret, resolve, run, stack_values

SOURCE = "app/compose.yaml"


@pytest.fixture
def project(tmp_path):
    """A project root with a Compose file's neighbours: an env file, a secret, a config file."""
    app = tmp_path / "app"
    (app / "web").mkdir(parents=True)
    (app / "web" / "Dockerfile").write_text("FROM scratch\n")
    (app / "common.env").write_text("# shared\nLOG_LEVEL=debug\nexport GREETING='hello world'\n")
    (app / "password.txt").write_text("s3cret\n")
    (app / "site.conf").write_text("listen 8080;\n")
    return tmp_path


def to_spec(document, project, given_secrets=()) -> ComposeApp:
    return compose_to_spec(copy.deepcopy(document), SOURCE, str(project), given_secrets)


FULL = {
    "version": "3.9",
    "name": "everything",
    "x-shared": {"anything": ["goes", {"here": 1}]},
    "services": {
        "web": {
            "build": {"context": "./web", "dockerfile": "Dockerfile", "target": "runtime",
                      "args": ["RELEASE=1", "FLAVOUR=slim"]},
            "image": "example/web:latest",
            "entrypoint": "/usr/bin/tini --",
            "command": ["serve", "--port", 8080],
            "ports": ["127.0.0.1:8080:8080", {"target": 9090, "published": "9091", "name": "metrics"}],
            "expose": ["8080", 7000],
            "env_file": ["common.env", {"path": "optional.env", "required": False}],
            "environment": {"LOG_LEVEL": "info", "DEBUG": False, "WORKERS": 2, "PRICE": "$$5"},
            "depends_on": {"db": {"condition": "service_healthy"},
                           "migrate": {"condition": "service_completed_successfully", "required": True},
                           "cache": {"condition": "service_started"}},
            "links": ["cache"],
            "healthcheck": {"test": "curl -fs http://127.0.0.1:8080/healthz", "interval": "1m30s",
                            "timeout": "500ms", "retries": 4, "start_period": "10s"},
            "secrets": ["db_password", {"source": "db_password", "target": "web_password"}],
            "configs": ["site", {"source": "site", "target": "/etc/app/site.conf"}],
            "user": "10005:10006",
            "read_only": False,
            "cap_add": ["CAP_NET_BIND_SERVICE"],
            "cap_drop": ["ALL"],
            "deploy": {"mode": "replicated", "replicas": 2,
                       "resources": {"limits": {"cpus": "0.75", "memory": "1.5g"},
                                     "reservations": {"cpus": 0.1}}},
            "restart": "unless-stopped",
            "x-notes": "ignored",
        },
        "db": {
            "image": "postgres:16",
            "user": 999,
            "volumes": [{"type": "volume", "source": "data", "target": "/var/lib/postgresql/data"}],
            "healthcheck": {"test": ["CMD", "pg_isready"], "interval": 2},
            "deploy": {"resources": {"limits": {"memory": 268435456}}},
            "restart": "always",
        },
        "cache": {"image": "redis:7", "expose": ["6379/tcp"], "volumes": ["cache:/data:rw"],
                  "healthcheck": {"test": ["NONE"]}},
        "migrate": {"image": "example/migrate:1", "command": "migrate up", "restart": "no",
                    "depends_on": ["db"], "env_file": "common.env"},
    },
    "volumes": {"data": None, "cache": {"x-backup": "nightly"}},
    "secrets": {"db_password": {"file": "./password.txt"}, "api_token": {"external": True}},
    "configs": {"site": {"file": "site.conf"}},
}


def test_every_supported_key_maps_onto_the_spec(project):
    app = to_spec(FULL, project, given_secrets={"api_token"})
    assert set(app.services) == {"web", "db", "cache"} and set(app.jobs) == {"migrate"}
    assert app.services["web"] == {
        "env": {"LOG_LEVEL": "info", "GREETING": "hello world", "DEBUG": "false", "WORKERS": "2", "PRICE": "$5"},
        "build": {"context": "app/web", "dockerfile": "Dockerfile", "target": "runtime",
                  "args": {"RELEASE": "1", "FLAVOUR": "slim"}},
        "command": ["/usr/bin/tini", "--"],
        "args": ["serve", "--port", "8080"],
        "ports": {"p8080": {"port": 8080, "publish": 8080}, "metrics": {"port": 9090, "publish": 9091},
                  "p7000": {"port": 7000}},
        "dependsOn": {"db": "healthy", "migrate": "completed", "cache": "started"},
        "links": ["cache"],
        "health": {"command": ["sh", "-c", "curl -fs http://127.0.0.1:8080/healthz"], "interval": 90,
                   "timeout": 1, "startPeriod": 10, "retries": 4},
        "secretFiles": {"/run/secrets/db_password": "db_password", "/run/secrets/web_password": "db_password"},
        "files": {"/site": "app/site.conf", "/etc/app/site.conf": "app/site.conf"},
        "user": "10005:10006",
        "readOnly": False,
        "capabilities": ["NET_BIND_SERVICE"],
        "replicas": 2,
        "cpu": 0.75,
        "cpuRequest": 0.1,
        "memory": 1536,
    }
    assert app.services["db"] == {
        "image": "postgres:16", "user": 999, "volume": {"path": "/var/lib/postgresql/data"},
        "health": {"command": ["pg_isready"], "interval": 2}, "memory": 256,
    }
    assert app.services["cache"] == {"image": "redis:7", "ports": {"p6379": {"port": 6379}}, "volume": {"path": "/data"}}
    assert app.jobs["migrate"] == {
        "env": {"LOG_LEVEL": "debug", "GREETING": "hello world"}, "image": "example/migrate:1",
        "args": ["migrate", "up"], "dependsOn": {"db": "started"},
    }
    # The file's secret comes back apart for the parser to mark secret; the external one is the stack's.
    assert app.secrets == {"db_password": "s3cret\n"}


def test_a_stack_secret_wins_over_the_compose_file(project):
    document = {"services": {"web": {"image": "nginx", "secrets": ["token"]}},
                "secrets": {"token": {"file": "no-such-file.txt"}}}
    app = to_spec(document, project, given_secrets={"token"})
    assert app.services["web"]["secretFiles"] == {"/run/secrets/token": "token"} and app.secrets == {}
    with pytest.raises(ConfigError) as error:
        to_spec(document, project)
    assert any("secrets.token.file" in p and "pulumi config set --secret token" in p for p in error.value.problems)


def test_a_service_with_no_ports_is_a_worker(project):
    app = to_spec({"services": {"worker": {"image": "busybox", "command": ["sleep", "1000"]}}}, project)
    assert app.services == {"worker": {"image": "busybox", "args": ["sleep", "1000"]}}


def test_yaml_anchors_and_merge_keys_are_resolved(project):
    text = """
x-defaults: &defaults
  image: busybox
  environment: {MODE: shared}
services:
  one:
    <<: *defaults
  two:
    <<: *defaults
    environment: {MODE: own}
"""
    app = to_spec(yaml.safe_load(text), project)
    assert app.services["one"]["env"] == {"MODE": "shared"} and app.services["two"]["env"] == {"MODE": "own"}


@pytest.mark.parametrize("path", ["examples/shop/compose.yaml", "examples/walkthrough/compose.yaml"])
def test_the_examples_map(path):
    app = load_compose(path, ROOT)
    assert app.services and all(spec["build"]["context"].startswith("examples/") for spec in app.services.values())


def test_the_shop_example_is_three_tiers_a_job_and_a_worker():
    app = load_compose("examples/shop/compose.yaml", ROOT)
    assert set(app.services) == {"proxy", "api", "worker", "db"} and set(app.jobs) == {"migrate"}
    assert app.services["proxy"]["ports"] == {"p8080": {"port": 8080, "publish": 8082}}
    assert "ports" not in app.services["worker"]
    assert app.services["api"]["dependsOn"] == {"db": "healthy", "migrate": "completed"}
    assert app.services["db"]["volume"] == {"path": "/var/lib/postgresql/data"}
    assert app.services["db"]["secretFiles"] == {"/run/secrets/db_password": "db_password"}
    assert set(app.secrets) == {"db_password"}


# (id, the one service or document part that is wrong, key the error must name)
def _service(**spec):
    return {"services": {"web": {"image": "nginx", **spec}}}


REFUSED = [
    ("unknown-key", _service(container_name="web-1"), "services.web.container_name"),
    ("network-mode-host", _service(network_mode="host"), "services.web.network_mode"),
    ("privileged", _service(privileged=True), "services.web.privileged"),
    ("bind-mount", _service(volumes=["./data:/data"]), "services.web.volumes[0]"),
    ("bind-mount-absolute", _service(volumes=[{"type": "bind", "source": "/srv", "target": "/srv"}]), "services.web.volumes[0]"),
    ("anonymous-volume", _service(volumes=["/data"]), "services.web.volumes[0]"),
    ("undeclared-volume", _service(volumes=["data:/data"]), "services.web.volumes[0]"),
    ("read-only-volume", {**_service(volumes=["data:/data:ro"]), "volumes": {"data": {}}}, "services.web.volumes[0]"),
    ("volume-driver", {**_service(volumes=["data:/data"]), "volumes": {"data": {"driver": "nfs"}}}, "volumes.data.driver"),
    ("two-volumes", {**_service(volumes=["a:/a", "b:/b"]), "volumes": {"a": None, "b": None}}, "services.web.volumes[1]"),
    ("port-range", _service(ports=["8000-8010:8000-8010"]), "services.web.ports[0]"),
    ("port-random-host", _service(ports=["80"]), "services.web.ports[0]"),
    ("port-udp", _service(ports=["53:53/udp"]), "services.web.ports[0]"),
    ("port-all-interfaces", _service(ports=["0.0.0.0:80:80"]), "services.web.ports[0]"),
    ("port-out-of-range", _service(ports=["80:70000"]), "services.web.ports[0]"),
    ("expose-range", _service(expose=["7000-7005"]), "services.web.expose[0]"),
    ("missing-env-file", _service(env_file="nope.env"), "services.web.env_file"),
    ("env-from-host", _service(environment=["HOME"]), "services.web.environment.HOME"),
    ("interpolation", _service(image="nginx:${TAG:-latest}"), "services.web.image"),
    ("interpolation-in-env", _service(environment={"URL": "http://$HOST/"}), "services.web.environment.URL"),
    ("depends-on-cycle", {"services": {"a": {"image": "x", "depends_on": ["b"]}, "b": {"image": "x", "depends_on": ["a"]}}}, "services.b.depends_on"),
    ("depends-on-unknown", _service(depends_on=["db"]), "services.web.depends_on.db"),
    ("depends-on-bad-condition", {"services": {"web": {"image": "x", "depends_on": {"db": {"condition": "service_ready"}}}, "db": {"image": "x"}}}, "services.web.depends_on.db.condition"),
    ("healthy-without-healthcheck", {"services": {"web": {"image": "x", "depends_on": {"db": {"condition": "service_healthy"}}}, "db": {"image": "x"}}}, "services.web.depends_on.db"),
    ("job-with-ports", {"services": {"web": {"image": "x", "depends_on": {"init": {"condition": "service_completed_successfully"}}},
                                     "init": {"image": "x", "ports": ["80:80"]}}}, "services.init.ports"),
    ("job-also-started", {"services": {"web": {"image": "x", "depends_on": {"init": {"condition": "service_completed_successfully"}}},
                                       "api": {"image": "x", "depends_on": ["init"]}, "init": {"image": "x"}}}, "services.api.depends_on.init"),
    ("job-restart-always", {"services": {"web": {"image": "x", "depends_on": {"init": {"condition": "service_completed_successfully"}}},
                                         "init": {"image": "x", "restart": "always"}}}, "services.init.restart"),
    ("service-restart-no", _service(restart="no"), "services.web.restart"),
    ("user-root", _service(user="root"), "services.web.user"),
    ("user-by-name", _service(user="nginx"), "services.web.user"),
    ("secret-undeclared", _service(secrets=["token"]), "services.web.secrets[0]"),
    ("secret-mode", {**_service(secrets=[{"source": "token", "mode": 0o400}]), "secrets": {"token": {"external": True}}}, "services.web.secrets[0].mode"),
    ("secret-outside-run-secrets", {**_service(secrets=[{"source": "token", "target": "/etc/token"}]), "secrets": {"token": {"external": True}}}, "services.web.secrets[0].target"),
    ("secret-from-environment", {**_service(secrets=["token"]), "secrets": {"token": {"environment": "TOKEN"}}}, "secrets.token.environment"),
    ("config-inline-content", {**_service(configs=["site"]), "configs": {"site": {"content": "x"}}}, "configs.site.content"),
    ("build-git-url", _service(build="https://example.com/app.git"), "services.web.build.context"),
    ("build-unknown-key", _service(build={"context": ".", "ssh": ["default"]}), "services.web.build.ssh"),
    ("healthcheck-bad-duration", _service(healthcheck={"test": ["CMD", "true"], "interval": "soon"}), "services.web.healthcheck.interval"),
    ("healthcheck-bad-test", _service(healthcheck={"test": ["RUN", "true"]}), "services.web.healthcheck.test"),
    ("deploy-global", _service(deploy={"mode": "global"}), "services.web.deploy.mode"),
    ("deploy-placement", _service(deploy={"placement": {"constraints": ["node.role==manager"]}}), "services.web.deploy.placement"),
    ("limits-pids", _service(deploy={"resources": {"limits": {"pids": 10}}}), "services.web.deploy.resources.limits.pids"),
    ("memory-bad-unit", _service(deploy={"resources": {"limits": {"memory": "1 lot"}}}), "services.web.deploy.resources.limits.memory"),
    ("link-alias", {"services": {"web": {"image": "x", "links": ["db:database"]}, "db": {"image": "x"}}}, "services.web.links"),
    ("no-image-or-build", {"services": {"web": {"environment": {"A": "1"}}}}, "services.web"),
    ("top-level-networks", {**_service(), "networks": {"front": {}}}, "(top level).networks"),
    ("no-services", {"volumes": {"data": None}}, "services"),
]


@pytest.mark.parametrize("document,key", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_unsupported_compose_is_refused_naming_the_service_and_key(document, key, project):
    with pytest.raises(ConfigError) as error:
        to_spec(document, project)
    problems = error.value.problems
    assert any(problem.startswith(f"{SOURCE}: {key}:") for problem in problems), f"no problem names {key!r}: {problems}"


def test_the_refusals_cover_the_issue_and_at_least_ten_keys():
    ids = {case[0] for case in REFUSED}
    assert {"unknown-key", "bind-mount", "network-mode-host", "depends-on-cycle", "missing-env-file", "port-range"} <= ids
    assert len({case[2] for case in REFUSED}) >= 10 and len(ids) == len(REFUSED)


def test_every_problem_is_reported_at_once(project):
    document = {"services": {
        "web": {"image": "nginx", "network_mode": "host", "ports": ["8000-8001:80"], "user": "root"},
        "db": {"image": "postgres", "volumes": ["./data:/var/lib/postgresql/data"], "env_file": "missing.env"},
    }}
    with pytest.raises(ConfigError) as error:
        to_spec(document, project)
    keys = {problem.split(": ")[1] for problem in error.value.problems}
    assert {"services.web.network_mode", "services.web.ports[0]", "services.web.user",
            "services.db.volumes[0]", "services.db.env_file"} <= keys
    assert "invalid stack configuration" in str(error.value)


def test_a_volume_belongs_to_one_service(project):
    document = {"services": {"a": {"image": "x", "volumes": ["shared:/a"]}, "b": {"image": "x", "volumes": ["shared:/b"]}},
                "volumes": {"shared": None}}
    with pytest.raises(ConfigError) as error:
        to_spec(document, project)
    assert any(p.startswith(f"{SOURCE}: volumes.shared:") and "a, b" in p for p in error.value.problems)


def test_unknown_keys_list_the_supported_ones(project):
    with pytest.raises(ConfigError) as error:
        to_spec(_service(tty=True), project)
    (problem,) = error.value.problems
    assert "services.web.tty" in problem and "healthcheck" in problem and "env_file" in problem


def test_load_compose_names_a_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError) as missing:
        load_compose("nope/compose.yaml", str(tmp_path))
    assert missing.value.problems[0].startswith("compose: ") and "nope/compose.yaml" in missing.value.problems[0]
    (tmp_path / "compose.yaml").write_text("services: [unclosed\n")
    with pytest.raises(ConfigError) as malformed:
        load_compose("compose.yaml", str(tmp_path))
    assert "not valid YAML" in malformed.value.problems[0]
    (tmp_path / "compose.yaml").write_text("just a string\n")
    with pytest.raises(ConfigError) as not_a_mapping:
        load_compose("compose.yaml", str(tmp_path))
    assert "(file)" in not_a_mapping.value.problems[0]


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False),
                     st.text(max_size=12), st.sampled_from(["80:80", "data:/data", "./x:/x", "${X}", "1m", "CMD"]))
_keys = st.sampled_from([*"abc", "services", "volumes", "secrets", "configs", "build", "image", "ports", "volumes",
                         "depends_on", "healthcheck", "deploy", "resources", "limits", "test", "condition",
                         "environment", "env_file", "command", "user", "x-ext", "source", "file", "external",
                         "interval", "memory", "cpus", "replicas", "required", "published", "type"])
_documents = st.recursive(_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)), max_leaves=30)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_documents)
def test_arbitrary_documents_map_or_fail_with_a_config_error(document, project):
    try:
        app = to_spec(document, project)
    except ConfigError as error:
        assert error.problems and all(isinstance(p, str) and p.startswith(f"{SOURCE}: ") for p in error.problems)
    else:
        assert isinstance(app, ComposeApp) and app.services



@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(SERVICE_KEYS), value=_documents)
def test_any_value_of_a_supported_key_maps_or_fails_with_a_config_error(key, value, project):
    document = {**FULL, "services": {**FULL["services"], "web": {"image": "nginx", key: value}}}
    try:
        to_spec(document, project, given_secrets={"api_token"})
    except ConfigError as error:
        assert error.problems and all(p.startswith(f"{SOURCE}: ") for p in error.problems)

# -- through the stack config: `cloudservice:compose` ---------------------------------------------

EXAMPLE_STACKS = ["walkthrough-docker", "walkthrough-k8s", "shop-docker", "shop-k8s"]


def set_stack_config(values: dict, secrets: tuple[str, ...] = ("registryPassword",)) -> None:
    """The config as the CLI hands it to the program: strings, JSON for objects, secret keys marked."""
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": as_pulumi_config(v) for k, v in values.items()},
                                  [f"{PROJECT}:{key}" for key in secrets])


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_each_example_stack_file_parses(mocks, stack):
    """Pulumi.yaml's values (its default app among them) overlaid with Pulumi.<stack>.yaml: the
    Compose file replaces the default app."""
    set_stack_config({**stack_values(stack), "registryPassword": "from-make-up"})
    config = load_stack_config(base_dir=ROOT)
    names = {w.name for w in config.app.workloads}
    if stack.startswith("shop"):
        assert names == {"proxy", "api", "worker", "migrate", "db"}
        assert [w.name for w in config.app.workloads if isinstance(w, JobSpec)] == ["migrate"]
        assert set(config.secrets) == {"db_password"} and is_secret(config.secrets["db_password"])
        assert resolve(config.secrets["db_password"]) == "shop-dev-password\n"
    else:
        assert names == {"docs"}
    assert config.target == ("docker" if stack.endswith("docker") else "kubernetes")
    for workload in config.app.workloads:
        assert workload.build.args["BASE_IMAGE"] == "cloudservice/base:bookworm"
        assert workload.build.context.startswith(os.path.join(ROOT, "examples"))


def shop_values(**extra) -> dict:
    return {"target": "docker", "compose": "examples/shop/compose.yaml", **REGISTRY, **extra}


def test_a_stack_secret_replaces_the_compose_file_secret():
    config = parse_stack_config(shop_values(db_password="from-the-stack"), project=PROJECT, stack="shop",
                                base_dir=ROOT)
    assert resolve(config.secrets["db_password"]) == "from-the-stack" and is_secret(config.secrets["db_password"])


def test_stack_config_overrides_the_compose_file():
    digest = "sha256:" + "a" * 64
    config = parse_stack_config(
        shop_values(target="kubernetes", replicas=3, images={"api": f"localhost:5000/shop/api@{digest}"}),
        project=PROJECT, stack="shop", base_dir=ROOT,
    )
    by_name = {w.name: w for w in config.app.workloads}
    assert by_name["api"].replicas == 3 and by_name["db"].replicas == 1, "replicas: every stateless service"
    assert config.images.pinned["api"].endswith(digest)


def test_compose_and_services_together_are_refused():
    with pytest.raises(ConfigError) as error:
        parse_stack_config(shop_values(services={"web": {"image": "nginx"}}), project=PROJECT, stack="shop", base_dir=ROOT)
    assert any(p.startswith("services:") and "compose" in p for p in error.value.problems)


def test_compose_problems_come_with_the_other_problems(tmp_path):
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(_service(network_mode="host")))
    with pytest.raises(ConfigError) as error:
        parse_stack_config({**shop_values(compose=str(tmp_path / "compose.yaml")), "target": "nomad"},
                           project=PROJECT, stack="shop", base_dir=ROOT)
    keys = [problem.split(": ")[0] for problem in error.value.problems]
    assert "target" in keys and f"{tmp_path}/compose.yaml" in keys
    assert "services" not in keys, "no `at least one service` noise on top"


@pytest.mark.parametrize("document,key", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_the_program_refuses_a_bad_compose_file_before_any_resource(document, key, tmp_path, mocks):
    """The real program (__main__.py) under mocks: the ConfigError comes before any registration."""
    (tmp_path / "compose.yaml").write_text(json.dumps(document))
    set_stack_config({"target": "docker", "compose": str(tmp_path / "compose.yaml"), **REGISTRY})
    with pytest.raises(ConfigError) as error:
        run(lambda: runpy.run_path(os.path.join(ROOT, "__main__.py")))
    assert f"{key}:" in str(error.value)
    assert mocks.resources == []


def test_the_program_deploys_a_good_compose_file(mocks):
    """The counterpart of the test above: the same program declares the example's resources."""
    set_stack_config({"target": "docker", "compose": "examples/walkthrough/compose.yaml", **REGISTRY})
    run(lambda: runpy.run_path(os.path.join(ROOT, "__main__.py")))
    assert [r.name for r in mocks.resources if r.type == "docker:index/container:Container"] == ["cloudservice-dev-docs"]
