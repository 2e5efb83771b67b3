"""components/config/compose.py through Compose's own loader (the real `compose-loader`, compose-go): what
Compose users write maps onto the app spec, approximations come with notices, what cannot exist on a
cluster is refused naming the service, key and why; arbitrary input never crashes it."""

from __future__ import annotations

import json
import os
import runpy
from typing import Optional

import pulumi
import pytest
import yaml
from harness import PROJECT, REGISTRY, ROOT, as_pulumi_config, stack_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recorder import is_secret, resolve, run

from components.config import ConfigError, load_stack_config, parse_stack_config
from components.config.compose import ComposeApp, compose_to_spec, load_compose
from components.config.compose_rules import dns_name, mebibytes, seconds
from components.spec import ANY_HOST_PORT, JobSpec

SOURCE = "app/compose.yaml"
IMAGE_PORTS = {"redis:7": [(6379, "tcp")], "example/dns:1": [(53, "udp"), (53, "tcp")]}


def inspect(reference: str) -> list[tuple[int, str]]:
    """The engine's answer for the images the tests reference (none of them is pulled)."""
    return IMAGE_PORTS.get(reference, [])


@pytest.fixture
def project(tmp_path):
    """A project root with a Compose file's neighbours: an env file, a secret, config files, build contexts."""
    app = tmp_path / "app"
    for context in ("web", "api", "worker"):
        (app / context).mkdir(parents=True)
        (app / context / "Dockerfile").write_text("FROM scratch\n")
    (app / "api" / "Dockerfile").write_text("FROM redis:7 AS base\nEXPOSE 9000\nFROM base\nEXPOSE 8080/tcp 8081/udp\n")
    (app / "common.env").write_text("# shared\nLOG_LEVEL=debug\nexport GREETING='hello world'\n")
    (app / "password.txt").write_text("s3cret\n")
    (app / "site.conf").write_text("listen 8080;\n")
    (app / "conf.d").mkdir()
    (app / "conf.d" / "a.conf").write_text("a\n")
    (app / "conf.d" / "b.conf").write_text("b\n")
    (app / "big.log").write_text("x" * (600 * 1024))
    (app / "blobs").mkdir()
    (app / "blobs" / "index.bin").write_bytes(b"\x00\xff\x00")
    return tmp_path


def to_spec(
    document, project, given_secrets=(), environment: Optional[dict] = None, profiles=(), dotenv=None
) -> ComposeApp:
    """The document written as the project's Compose file and loaded as a stack loads it."""
    (project / SOURCE).write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    if dotenv is not None:
        (project / "app" / ".env").write_text(dotenv)
    return load_compose(SOURCE, str(project), given_secrets, environment or {}, profiles, inspect=inspect)


def problems_of(document, project, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as error:
        to_spec(document, project, **kwargs)
    return error.value.problems


FULL = {
    "name": "everything",
    "x-shared": {"anything": ["goes", {"here": 1}]},
    "services": {
        "web": {
            "build": {
                "context": "./web",
                "dockerfile": "Dockerfile",
                "target": "runtime",
                "args": ["RELEASE=1", "FLAVOUR=slim"],
            },
            "image": "example/web:latest",
            "entrypoint": "/usr/bin/tini --",
            "command": ["serve", "--port", "8080"],
            "ports": ["127.0.0.1:8080:8080", {"target": 9090, "published": "9091", "name": "metrics"}],
            "expose": ["8080", 7000],
            "env_file": ["common.env", {"path": "optional.env", "required": False}],
            "environment": {"LOG_LEVEL": "info", "DEBUG": False, "WORKERS": 2, "PRICE": "$$5"},
            "depends_on": {
                "db": {"condition": "service_healthy"},
                "migrate": {"condition": "service_completed_successfully", "required": True},
                "cache": {"condition": "service_started"},
            },
            "links": ["cache"],
            "healthcheck": {
                "test": "curl -fs http://127.0.0.1:8080/healthz",
                "interval": "1m30s",
                "timeout": "500ms",
                "retries": 4,
                "start_period": "10s",
            },
            "secrets": ["db_password", {"source": "db_password", "target": "web_password"}],
            "configs": ["site", {"source": "site", "target": "/etc/app/site.conf"}],
            "user": "10005:10006",
            "read_only": False,
            "cap_add": ["CAP_NET_BIND_SERVICE"],
            "cap_drop": ["ALL"],
            "deploy": {
                "mode": "replicated",
                "replicas": 2,
                "resources": {"limits": {"cpus": "0.75", "memory": "1.5g"}, "reservations": {"cpus": 0.1}},
            },
            "restart": "unless-stopped",
            "x-notes": "ignored",
        },
        "db": {
            "image": "postgres:16",
            "user": "999",
            "volumes": [{"type": "volume", "source": "data", "target": "/var/lib/postgresql/data"}],
            "healthcheck": {"test": ["CMD", "pg_isready"], "interval": "2s"},
            "deploy": {"resources": {"limits": {"memory": "256m"}}},
            "restart": "always",
        },
        "cache": {
            "image": "redis:7",
            "expose": ["6379/tcp"],
            "volumes": ["cache:/data:rw"],
            "healthcheck": {"test": ["NONE"]},
        },
        "migrate": {
            "image": "example/migrate:1",
            "command": "migrate up",
            "restart": "no",
            "depends_on": ["db"],
            "env_file": "common.env",
        },
    },
    "volumes": {"data": None, "cache": {"x-backup": "nightly"}},
    "secrets": {"db_password": {"file": "./password.txt"}, "api_token": {"external": True}},
    "configs": {"site": {"file": "site.conf"}},
}


def test_every_key_of_an_ordinary_file_maps_onto_the_spec(project):
    app = to_spec(FULL, project, given_secrets={"api_token"})
    assert set(app.services) == {"web", "db", "cache"} and set(app.jobs) == {"migrate"}
    assert app.services["web"] == {
        "env": {"LOG_LEVEL": "info", "GREETING": "hello world", "DEBUG": "false", "WORKERS": "2", "PRICE": "$5"},
        "build": {
            "context": "app/web",
            "dockerfile": "Dockerfile",
            "target": "runtime",
            "args": {"RELEASE": "1", "FLAVOUR": "slim"},
        },
        "command": ["/usr/bin/tini", "--"],
        "args": ["serve", "--port", "8080"],
        "ports": {
            "p8080": {"port": 8080, "publish": 8080},
            "metrics": {"port": 9090, "publish": 9091},
            "p7000": {"port": 7000},
        },
        "dependsOn": {"db": "healthy", "migrate": "completed", "cache": "started"},
        "links": ["cache"],
        "health": {
            "command": ["sh", "-c", "curl -fs http://127.0.0.1:8080/healthz"],
            "interval": 90,
            "timeout": 1,
            "startPeriod": 10,
            "retries": 4,
        },
        "secretFiles": {"/run/secrets/db_password": "db_password", "/run/secrets/web_password": "db_password"},
        "files": {"/site": "app/site.conf", "/etc/app/site.conf": "app/site.conf"},
        "user": "10005:10006",
        "capabilities": ["NET_BIND_SERVICE"],
        "replicas": 2,
        "restart": "unless-stopped",
        "cpu": 0.75,
        "cpuRequest": 0.1,
        "memory": 1536,
    }
    assert app.services["db"] == {
        "image": "postgres:16",
        "user": 999,
        "volumes": {"data": {"path": "/var/lib/postgresql/data"}},
        "health": {"command": ["pg_isready"], "interval": 2},
        "memory": 256,
        "restart": "always",
    }, "postgres:16 is not in the engine: its ports are unknown"
    assert app.services["cache"] == {
        "image": "redis:7",
        "ports": {"p6379": {"port": 6379}},
        "volumes": {"data": {"path": "/data"}},
    }
    assert app.jobs["migrate"] == {
        "env": {"LOG_LEVEL": "debug", "GREETING": "hello world"},
        "image": "example/migrate:1",
        "args": ["migrate", "up"],
        "dependsOn": {"db": "started"},
    }
    # The file's secret comes back apart for the parser to mark secret; the external one is the stack's.
    assert app.secrets == {"db_password": "s3cret\n"}
    assert any("services.db" in notice and "no ports" in notice for notice in app.notices)


# -- Compose's loader: interpolation, YAML 1.2, profiles, include, extends, anchors ----------------

INTERPOLATED = """
services:
  web:
    image: "nginx:${TAG:-latest}"
    environment:
      FROM_DOTENV: "${FROM_DOTENV}"
      DEFAULTED: "${UNSET:-fallback}"
      EMPTY_COLON: "${EMPTY:-used-when-empty}"
      EMPTY_DASH: "${EMPTY-only-when-unset}"
      UNSET_DASH: "${UNSET-unset}"
      REQUIRED: "${REQUIRED:?set REQUIRED in composeEnv}"
      LITERAL: "$$HOME and $${NOT_A_VAR}"
      PASSED: null
      OVERRIDDEN: "${OVERRIDDEN}"
"""


def test_every_interpolation_form_takes_the_dotenv_and_the_stack_environment(project, monkeypatch):
    monkeypatch.setenv("UNSET", "from the shell")  # never read: a stack is reproducible
    app = to_spec(
        INTERPOLATED,
        project,
        environment={"REQUIRED": "yes", "OVERRIDDEN": "stack", "TAG": "1.27", "PASSED": "through"},
        dotenv="FROM_DOTENV=dotenv\nEMPTY=\nOVERRIDDEN=dotenv\n",
    )
    assert app.services["web"]["image"] == "nginx:1.27"
    assert app.services["web"]["env"] == {
        "FROM_DOTENV": "dotenv",
        "DEFAULTED": "fallback",
        "EMPTY_COLON": "used-when-empty",
        "EMPTY_DASH": "",
        "UNSET_DASH": "unset",
        "REQUIRED": "yes",
        "LITERAL": "$HOME and ${NOT_A_VAR}",
        "PASSED": "through",
        "OVERRIDDEN": "stack",
    }


def test_a_required_variable_left_unset_is_refused_with_its_message(project):
    (problem,) = problems_of(INTERPOLATED, project)
    assert problem.startswith(f"{SOURCE}: ") and "REQUIRED" in problem and "set REQUIRED in composeEnv" in problem


def test_a_variable_without_a_value_is_left_unset_with_a_notice(project):
    app = to_spec({"services": {"web": {"image": "nginx", "environment": ["HOME", "SET=1"]}}}, project)
    assert app.services["web"]["env"] == {"SET": "1"}
    assert any("environment.HOME" in notice and "composeEnv" in notice for notice in app.notices)


def test_yaml_1_2_scalars_stay_strings_as_compose_reads_them(project):
    app = to_spec(
        "services:\n  web:\n    image: nginx\n    environment:\n      BACKUP_AT: 12:30\n      FEATURE: on\n"
        "    ports:\n      - 22:22\n",
        project,
    )
    assert app.services["web"]["env"] == {"BACKUP_AT": "12:30", "FEATURE": "on"}
    assert app.services["web"]["ports"] == {"p22": {"port": 22, "publish": 22}}


def test_profiles_are_the_stacks_choice(project):
    document = {"services": {"web": {"image": "nginx"}, "debug": {"image": "busybox", "profiles": ["debug"]}}}
    assert set(to_spec(document, project).services) == {"web"}
    assert set(to_spec(document, project, profiles=["debug"]).services) == {"web", "debug"}


def test_include_extends_and_anchors_are_resolved(project):
    (project / "app" / "lib").mkdir()
    (project / "app" / "lib" / "compose.yaml").write_text(yaml.safe_dump({"services": {"cache": {"image": "redis:7"}}}))
    (project / "app" / "base.yaml").write_text(
        yaml.safe_dump({"services": {"base": {"image": "nginx", "environment": {"FROM": "base"}}}})
    )
    text = """
include: [lib/compose.yaml]
x-defaults: &defaults
  image: busybox
  environment: {MODE: shared}
services:
  one:
    <<: *defaults
  two:
    <<: *defaults
    environment: {MODE: own}
  web:
    extends: {file: base.yaml, service: base}
"""
    app = to_spec(text, project)
    assert app.services["one"]["env"] == {"MODE": "shared"} and app.services["two"]["env"] == {"MODE": "own"}
    assert app.services["web"] == {"image": "nginx", "env": {"FROM": "base"}}
    assert app.services["cache"]["image"] == "redis:7"


def test_load_errors_name_the_file(project, tmp_path):
    with pytest.raises(ConfigError) as missing:
        load_compose("nope/compose.yaml", str(tmp_path))
    assert "nope/compose.yaml" in missing.value.problems[0]
    assert "did not find expected" in problems_of("services: [unclosed\n", project)[0]
    assert "services.web.portz" in problems_of({"services": {"web": {"image": "x", "portz": [1]}}}, project)[0]
    assert (
        "neither an image nor a build context"
        in problems_of({"services": {"web": {"environment": {"A": "1"}}}}, project)[0]
    )
    assert (
        'undefined service "ghost"'
        in problems_of({"services": {"web": {"image": "x", "depends_on": ["ghost"]}}}, project)[0]
    )


# -- what has a faithful meaning on both targets ------------------------------------------------


def test_networks_are_the_files_own_and_default_only_is_none(project):
    document = {
        "services": {
            "proxy": {"image": "nginx", "networks": ["front"]},
            "api": {"image": "x", "networks": {"front": None, "back": {"aliases": ["backend"]}}},
            "db": {"image": "x", "networks": ["back"]},
            "tool": {"image": "x"},
        },
        "networks": {"front": {}, "back": {"internal": True}, "shared": {"external": True, "name": "proxy-net"}},
    }
    app = to_spec(document, project)
    assert app.networks == {"front": {}, "back": {}, "shared": {"external": "proxy-net"}}
    assert app.services["proxy"]["networks"] == ["front"] and app.services["db"]["networks"] == ["back"]
    assert sorted(app.services["api"]["networks"]) == ["back", "front"] and app.services["api"]["aliases"] == [
        "backend"
    ]
    assert "networks" not in app.services["tool"], "the default network is every workload's without networks"
    assert any("networks.back.internal" in notice for notice in app.notices)
    plain = to_spec({"services": {"web": {"image": "nginx"}}}, project)
    assert plain.networks == {} and "networks" not in plain.services["web"]


def test_container_name_and_hostname_are_more_names_of_the_service(project):
    app = to_spec(
        {
            "services": {
                "elasticsearch": {"image": "x", "container_name": "es", "hostname": "elasticsearch"},
                "kibana": {"image": "x", "container_name": "kibana"},
                "odd": {"image": "x", "container_name": "Odd_Name"},
            }
        },
        project,
    )
    assert app.services["elasticsearch"]["aliases"] == ["es"]
    assert "aliases" not in app.services["kibana"] and "aliases" not in app.services["odd"]
    assert any("Odd_Name" in notice and "DNS label" in notice for notice in app.notices)


def test_bind_mounts_become_files_volumes_or_are_left_to_the_image(project):
    document = {
        "services": {
            "web": {
                "build": "./web",
                "volumes": [
                    "./web:/srv/app",
                    "/srv/app/node_modules",
                    "./site.conf:/etc/nginx/nginx.conf:ro",
                    "./conf.d:/etc/nginx/conf.d",
                    "./data:/var/lib/web",
                    "./blobs:/var/blobs",
                    "/cache",
                ],
            }
        }
    }
    app = to_spec(document, project)
    web = app.services["web"]
    assert web["files"] == {
        "/etc/nginx/nginx.conf": "app/site.conf",
        "/etc/nginx/conf.d/a.conf": "app/conf.d/a.conf",
        "/etc/nginx/conf.d/b.conf": "app/conf.d/b.conf",
    }
    assert web["volumes"] == {"data": {"path": "/var/lib/web"}, "web-blobs": {"path": "/var/blobs"}}
    assert web["ephemeral"] == ["/cache"], "node_modules only masked the live-reload mount"
    notices = "\n".join(app.notices)
    assert "volumes[0]: ignored: app/web is the service's build context" in notices
    assert "volumes[1]: ignored" in notices and "volumes[3]: app/conf.d is mounted read-only" in notices
    assert "volumes[4]: app/data is a data directory" in notices


def test_several_named_and_read_only_volumes(project):
    app = to_spec(
        {
            "services": {"db": {"image": "x", "volumes": ["db_data:/data", "backups:/backups:ro"]}},
            "volumes": {"db_data": None, "backups": None},
        },
        project,
    )
    assert app.services["db"]["volumes"] == {
        "data": {"path": "/data"},
        "backups": {"path": "/backups", "readOnly": True},
    }


def test_udp_ranges_any_host_port_and_all_interfaces(project):
    app = to_spec(
        {
            "services": {
                "dns": {
                    "image": "x",
                    "ports": ["53:53/udp", "53:53/tcp", "8000-8001:9000-9001", "3000", "0.0.0.0:8080:80"],
                    "expose": ["7000-7001/udp"],
                }
            }
        },
        project,
    )
    assert app.services["dns"]["ports"] == {
        "u53": {"port": 53, "publish": 53, "protocol": "udp"},
        "p53": {"port": 53, "publish": 53},
        "p9000": {"port": 9000, "publish": 8000},
        "p9001": {"port": 9001, "publish": 8001},
        "p3000": {"port": 3000, "publish": ANY_HOST_PORT},
        "p80": {"port": 80, "publish": 8080},
        "u7000": {"port": 7000, "protocol": "udp"},
        "u7001": {"port": 7001, "protocol": "udp"},
    }
    assert any("0.0.0.0: published on 127.0.0.1 only" in notice for notice in app.notices)


def test_runtime_keys_map_onto_the_spec(project):
    app = to_spec(
        {
            "services": {
                "web": {
                    "image": "x",
                    "restart": "on-failure:3",
                    "stop_signal": "QUIT",
                    "stop_grace_period": "1m",
                    "init": True,
                    "tty": True,
                    "stdin_open": True,
                    "working_dir": "/srv",
                    "labels": {"com.example.team": "web"},
                    "extra_hosts": ["db.local:10.0.0.5", "db.local=10.0.0.6"],
                    "shm_size": "256m",
                    "ulimits": {"nofile": {"soft": 1024, "hard": 4096}, "nproc": 512},
                    "tmpfs": ["/run:size=64m"],
                    "sysctls": {"net.core.somaxconn": 1024},
                    "logging": {"driver": "json-file"},
                    "platform": "linux/amd64",
                    "pull_policy": "always",
                    "domainname": "example.com",
                }
            }
        },
        project,
    )
    assert app.services["web"] == {
        "image": "x",
        "restart": "on-failure",
        "stopSignal": "SIGQUIT",
        "stopGracePeriod": 60,
        "init": True,
        "tty": True,
        "stdinOpen": True,
        "workingDir": "/srv",
        "labels": {"com.example.team": "web"},
        "extraHosts": {"db.local": ["10.0.0.5", "10.0.0.6"]},
        "shmSize": 256,
        "ulimits": {"nofile": {"soft": 1024, "hard": 4096}, "nproc": 512},
        "tmpfs": ["/run"],
        "sysctls": {"net.core.somaxconn": "1024"},
    }
    ignored = {notice.split(": ")[1] for notice in app.notices}
    assert {
        "services.web.logging",
        "services.web.pull_policy",
        "services.web.domainname",
        "services.web.platform",
    } <= ignored


def test_ports_come_from_the_image_for_services_others_reach(project):
    document = {
        "services": {
            "api": {"build": "./api", "environment": {"CACHE_URL": "redis://cache:6379/0"}},
            "cache": {"image": "redis:7"},
            "worker": {"build": "./api"},  # the api's image, reached by nobody: a worker, no Service
            "dns": {"image": "example/dns:1"},
            "web": {"image": "x", "depends_on": ["api", "dns", "lonely"]},
            "lonely": {"image": "unknown:1"},
        }
    }
    app = to_spec(document, project)
    assert app.services["api"]["ports"] == {
        "p8080": {"port": 8080},
        "u8081": {"port": 8081, "protocol": "udp"},
        "p9000": {"port": 9000},
        "p6379": {"port": 6379},
    }
    assert app.services["cache"]["ports"] == {"p6379": {"port": 6379}}, "named as a host in api's environment"
    assert app.services["dns"]["ports"] == {"p53": {"port": 53}, "u53": {"port": 53, "protocol": "udp"}}
    assert "ports" not in app.services["worker"] and "ports" not in app.services["lonely"]
    assert any("services.lonely" in n and "reachable by nobody" in n and "web" in n for n in app.notices)


def test_the_extension_sets_what_compose_cannot_say(project):
    """`read_only: false` is Compose's default, which the loader drops: the extension says it."""
    app = to_spec(_service(read_only=False, **{"x-cloudservice": {"readOnly": False, "user": "image"}}), project)
    assert app.services["web"] == {"image": "nginx", "readOnly": False, "user": "image"}
    assert "services.web.x-cloudservice" in problems_of(_service(**{"x-cloudservice": ["readOnly"]}), project)[0]


def test_kompose_autoscaling_labels_and_deploy_replicas_say_autoscale(project):
    """Kompose's kompose.hpa.* labels, with Kompose's defaults; deploy.replicas is the floor unless
    kompose.hpa.replicas.min says it; the memory target (a quantity in Kompose) is reported."""
    labels = {"kompose.hpa.replicas.max": 6, "kompose.hpa.cpu": "80%", "com.example.team": "shop"}
    app = to_spec(_service(labels=labels, deploy={"replicas": 2}), project)
    assert app.services["web"]["autoscale"] == {"max": 6, "cpu": 80}
    assert app.services["web"]["replicas"] == 2
    assert app.services["web"]["labels"] == {"com.example.team": "shop"}, "Kompose's labels are not the app's"
    app = to_spec(
        _service(labels={"kompose.hpa.replicas.min": 3, "kompose.hpa.memory": "512Mi"}, deploy={"replicas": 1}), project
    )
    assert app.services["web"]["autoscale"] == {"max": 10, "cpu": 50}
    assert app.services["web"]["replicas"] == 3
    assert any("kompose.hpa.memory" in n and "ignored" in n for n in app.notices)
    assert "autoscale" not in to_spec(_service(labels={"com.example.team": "shop"}), project).services["web"]


def test_kompose_expose_labels_say_routes(project):
    """kompose.service.expose: `true` routes any host to the service's main port; `host[/path]`,
    comma-separated, one route each, with kompose.service.expose.tls-secret as each one's TLS Secret."""
    app = to_spec(_service(ports=["8080:80"], labels={"kompose.service.expose": "true", "team": "shop"}), project)
    assert app.routes == [{"service": "web"}]
    assert app.services["web"]["labels"] == {"team": "shop"}, "Kompose's labels are not the app's"
    labels = {
        "kompose.service.expose": "shop.localhost, api.localhost/v1",
        "kompose.service.expose.tls-secret": "shop-tls",
        "kompose.service.expose.ingress-class-name": "nginx",
    }
    app = to_spec({"services": {"Web_UI": {"image": "nginx", "expose": ["80"], "labels": labels}}}, project)
    assert app.routes == [
        {"service": "web-ui", "host": "shop.localhost", "tlsSecret": "shop-tls"},
        {"service": "web-ui", "host": "api.localhost", "path": "/v1", "tlsSecret": "shop-tls"},
    ]
    assert any("ingress-class-name" in n and "ignored" in n for n in app.notices), app.notices
    assert to_spec(_service(labels={"kompose.service.expose": "false"}), project).routes == []


def test_kompose_expose_on_an_image_without_declared_ports_takes_the_images(project):
    """A routed service needs a port: the image's EXPOSE gives it, as for a service others link to."""
    app = to_spec({"services": {"cache": {"image": "redis:7", "labels": {"kompose.service.expose": "true"}}}}, project)
    assert app.services["cache"]["ports"] == {"p6379": {"port": 6379}}
    assert app.routes == [{"service": "cache"}]


def test_kompose_expose_routes_are_validated_as_the_stacks(project):
    """The routes the labels give are read like written ones: the stack's `routes` replace them."""
    labels = {"kompose.service.expose": "shop.localhost/api"}
    (project / SOURCE).write_text(yaml.safe_dump(_service(expose=["80"], labels=labels)))
    values = {"target": "docker", "compose": SOURCE, **REGISTRY}
    config = parse_stack_config(values, project=PROJECT, stack="dev", base_dir=str(project))
    assert [(r.service, r.port, r.host, r.path) for r in config.app.routes] == [
        ("web", "p80", "shop.localhost", "/api")
    ]
    config = parse_stack_config(
        {**values, "routes": [{"service": "web", "path": "/"}]}, project=PROJECT, stack="dev", base_dir=str(project)
    )
    assert [(r.host, r.path) for r in config.app.routes] == [(None, "/")]
    (project / SOURCE).write_text(yaml.safe_dump(_service(labels={"kompose.service.expose": "Shop!"})))
    with pytest.raises(ConfigError) as error:
        parse_stack_config(values, project=PROJECT, stack="dev", base_dir=str(project))
    assert any(problem.startswith("routes[0].") for problem in error.value.problems), error.value.problems


WATCH = {
    "watch": [
        {"path": "./web/src", "target": "/app/src", "action": "sync", "ignore": ["node_modules/", "*.pyc"]},
        {"path": "./web/Dockerfile", "action": "rebuild"},
        {"path": "./web", "target": "/app", "action": "sync+restart"},
        {"path": "./web/hooks", "target": "/app/hooks", "action": "sync+exec", "exec": {"command": ["reload"]}},
    ]
}


def test_develop_watch_is_make_devs_live_update(project):
    writable = {"build": "./web", "develop": WATCH, "x-cloudservice": {"readOnly": False}}
    app = to_spec({"services": {"web": writable}}, project)
    assert app.services["web"]["sync"] == [
        {"path": "app/web/src", "target": "/app/src", "action": "sync", "ignore": ["node_modules/", "*.pyc"]},
        {"path": "app/web/Dockerfile", "action": "rebuild"},
        {"path": "app/web", "target": "/app", "action": "sync+restart"},
    ]
    assert any("develop.watch[3].action: sync+exec: not supported" in notice for notice in app.notices), app.notices
    # Validated as a written `sync` is (the file to_spec wrote): the rules of the spec.
    values = {"target": "docker", "compose": SOURCE, **REGISTRY}
    config = parse_stack_config(values, project=PROJECT, stack="dev", base_dir=str(project))
    assert [(rule.path, rule.action) for rule in config.app.service("web").sync] == [
        (str(project / "app/web/src"), "sync"),
        (str(project / "app/web/Dockerfile"), "rebuild"),
        (str(project / "app/web"), "sync+restart"),
    ]


def test_develop_watch_on_a_read_only_service_rebuilds_with_a_notice(project):
    """The stack's default root file system is read-only: a sync rule there would write nowhere, and a
    Compose file deployed as it was before (its develop section ignored) must keep working."""
    app = to_spec({"services": {"web": {"build": "./web", "develop": WATCH}}}, project)
    assert app.services["web"]["sync"] == [{"path": "app/web/Dockerfile", "action": "rebuild"}]
    notices = [n for n in app.notices if "develop.watch[0]" in n]
    assert notices and "not synced: /app/src is on the read-only root file system" in notices[0], app.notices


def test_an_expose_entry_that_is_no_port_is_refused_naming_it(project):
    problems = problems_of(_service(expose=["", "80"]), project)
    assert any("services.web.expose[0]: expected a port or range" in p for p in problems), problems


def test_link_aliases_are_names_of_the_target(project):
    app = to_spec({"services": {"web": {"image": "x", "links": ["db:database"]}, "db": {"image": "redis:7"}}}, project)
    assert app.services["web"]["links"] == ["db"] and app.services["db"]["aliases"] == ["database"]


def test_service_names_become_dns_labels(project):
    app = to_spec(
        {"services": {"web_app": {"image": "x", "depends_on": ["Cache_1"]}, "Cache_1": {"image": "redis:7"}}}, project
    )
    assert set(app.services) == {"web-app", "cache-1"} and app.services["web-app"]["dependsOn"] == {
        "cache-1": "started"
    }


# -- refused: what cannot exist on a cluster, or cannot be mapped faithfully ---------------------


def _service(**spec):
    return {"services": {"web": {"image": "nginx", **spec}}}


REFUSED = [
    ("privileged", _service(privileged=True), "services.web.privileged", "owns the host"),
    ("network-mode-host", _service(network_mode="host"), "services.web.network_mode", "does not exist for a pod"),
    ("pid-host", _service(pid="host"), "services.web.pid", "process namespace"),
    ("devices", _service(devices=["/dev/fuse:/dev/fuse"]), "services.web.devices", "host devices"),
    (
        "docker-socket",
        _service(volumes=["/var/run/docker.sock:/var/run/docker.sock"]),
        "services.web.volumes[0]",
        "the Docker socket",
    ),
    (
        "host-path",
        _service(volumes=[{"type": "bind", "source": "/srv", "target": "/srv"}]),
        "services.web.volumes[0]",
        "a host path",
    ),
    ("home-path", _service(volumes=["~/data:/data"]), "services.web.volumes[0]", "a host path"),
    (
        "static-ip",
        {**_service(networks={"front": {"ipv4_address": "10.5.0.5"}}), "networks": {"front": {}}},
        "services.web.networks.front.ipv4_address",
        "static IPs",
    ),
    ("runtime", _service(runtime="io.containerd.wasmedge.v1"), "services.web.runtime", "OCI runtime"),
    ("security-opt", _service(security_opt=["seccomp:unconfined"]), "services.web.security_opt", "security profiles"),
    (
        "extra-host-gateway",
        _service(extra_hosts=["host.docker.internal:host-gateway"]),
        "services.web.extra_hosts.host.docker.internal",
        "host-gateway",
    ),
    ("user-root", _service(user="0"), "services.web.user", "non-root"),
    ("user-by-name", _service(user="nginx"), "services.web.user", "docker run --rm --entrypoint id"),
    ("cap-add-all", _service(cap_add=["ALL"]), "services.web.cap_add", "root-equivalent"),
    (
        "external-volume",
        {**_service(volumes=["data:/data"]), "volumes": {"data": {"external": True}}},
        "services.web.volumes[0]",
        "outside the stack",
    ),
    (
        "secret-from-environment",
        {**_service(secrets=["token"]), "secrets": {"token": {"environment": "TOKEN"}}},
        "secrets.token",
        "stack secret",
    ),
    (
        "secret-outside-run-secrets",
        {**_service(secrets=[{"source": "token", "target": "/etc/token"}]), "secrets": {"token": {"external": True}}},
        "services.web.secrets[0].target",
        "/run/secrets",
    ),
    (
        "config-inline-content",
        {**_service(configs=["site"]), "configs": {"site": {"content": "x"}}},
        "configs.site",
        "file",
    ),
    ("build-git-url", _service(build="https://example.com/app.git"), "services.web.build.context", "repository"),
    (
        "dockerfile-inline",
        _service(build={"context": ".", "dockerfile_inline": "FROM scratch"}),
        "services.web.build.dockerfile_inline",
        "context directory",
    ),
    ("file-too-large", _service(volumes=["./big.log:/var/log/big.log"]), "services.web.volumes[0]", "at most 512 KiB"),
    (
        "job-with-a-volume",
        {
            "services": {
                "web": {"image": "x", "depends_on": {"init": {"condition": "service_completed_successfully"}}},
                "init": {"image": "x", "volumes": ["data:/d"]},
            },
            "volumes": {"data": None},
        },
        "services.init.volumes",
        "keeps no volume",
    ),
]


@pytest.mark.parametrize("document,key,why", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_what_cannot_exist_on_a_cluster_is_refused_naming_the_key_and_why(document, key, why, project):
    problems = problems_of(document, project)
    assert any(p.startswith(f"{SOURCE}: {key}:") and why in p for p in problems), problems


def test_every_problem_is_reported_at_once(project):
    document = {
        "services": {
            "web": {"image": "nginx", "network_mode": "host", "privileged": True, "user": "root"},
            "db": {"image": "postgres", "volumes": ["/var/lib/db:/var/lib/postgresql/data"]},
        }
    }
    keys = {problem.split(": ")[1] for problem in problems_of(document, project)}
    assert {
        "services.web.network_mode",
        "services.web.privileged",
        "services.web.user",
        "services.db.volumes[0]",
    } <= keys


def test_a_volume_belongs_to_one_service(project):
    document = {
        "services": {"a": {"image": "x", "volumes": ["shared:/a"]}, "b": {"image": "x", "volumes": ["shared:/b"]}},
        "volumes": {"shared": None},
    }
    assert any(p.startswith(f"{SOURCE}: volumes.shared:") and "a, b" in p for p in problems_of(document, project))


def test_a_stack_secret_wins_over_the_compose_file(project):
    document = {
        "services": {"web": {"image": "nginx", "secrets": ["token"]}},
        "secrets": {"token": {"file": "no-such-file.txt"}},
    }
    app = to_spec(document, project, given_secrets={"token"})
    assert app.services["web"]["secretFiles"] == {"/run/secrets/token": "token"} and app.secrets == {}
    assert any(
        "secrets.token.file" in p and "pulumi config set --secret token" in p for p in problems_of(document, project)
    )


@pytest.mark.parametrize(
    "duration,expected", [("1m30s", 90), ("500ms", 1), ("1h0m0s", 3600), ("2s", 2), ("soon", None)]
)
def test_durations_as_compose_go_writes_them(duration, expected):
    assert seconds(duration) == expected


def test_sizes_and_names():
    assert mebibytes("536870912") == 512 and mebibytes(1) == 1 and mebibytes("1g") is None
    assert dns_name("db_data") == "db-data" and dns_name("Front") == "front" and dns_name("1st") == "x-1st"


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.text(max_size=12),
    st.sampled_from(["80:80", "data:/data", "./x:/x", "${X:-1}", "1m", "CMD", "/tmp"]),
)
_keys = st.sampled_from(
    [
        "services",
        "volumes",
        "secrets",
        "configs",
        "networks",
        "build",
        "image",
        "ports",
        "expose",
        "depends_on",
        "healthcheck",
        "deploy",
        "environment",
        "command",
        "user",
        "x-ext",
        "source",
        "file",
        "external",
        "container_name",
        "tmpfs",
        "restart",
        "stop_signal",
        "labels",
        "web",
    ]
)
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)),
    max_leaves=25,
)


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_documents)
def test_arbitrary_documents_map_or_fail_with_a_config_error(document, project):
    try:
        app = to_spec(json.dumps(document), project)
    except ConfigError as error:
        assert error.problems and all(isinstance(p, str) and p.startswith(f"{SOURCE}: ") for p in error.problems)
    else:
        assert isinstance(app, ComposeApp) and app.services


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=_keys, value=_documents)
def test_any_value_of_a_service_key_maps_or_fails_with_a_config_error(key, value, project):
    document = {**FULL, "services": {**FULL["services"], "web": {"image": "nginx", key: value}}}
    try:
        to_spec(json.dumps(document), project, given_secrets={"api_token"})
    except ConfigError as error:
        assert error.problems and all(p.startswith(f"{SOURCE}: ") for p in error.problems)


def test_compose_to_spec_maps_a_loaded_project_without_the_loader(project):
    """The mapper alone takes the normalised model (the loader's output) as a dict."""
    project_model = {
        "services": {
            "web": {
                "image": "nginx",
                "command": None,
                "networks": {"default": None},
                "ports": [{"target": 80, "published": "8080", "protocol": "tcp"}],
            }
        }
    }
    app = compose_to_spec(project_model, SOURCE, str(project))
    assert app.services == {"web": {"image": "nginx", "ports": {"p80": {"port": 80, "publish": 8080}}}}


# -- the examples, and through the stack config: `cloudservice:compose` -----------------------------


def test_the_shop_example_is_three_tiers_a_job_and_a_worker():
    app = load_compose("examples/shop/compose.yaml", ROOT)
    assert set(app.services) == {"proxy", "api", "worker", "db"} and set(app.jobs) == {"migrate"}
    assert app.services["proxy"]["ports"] == {"p8080": {"port": 8080, "publish": 8082}}
    assert "ports" not in app.services["worker"]
    assert app.services["api"]["dependsOn"] == {"db": "healthy", "migrate": "completed"}
    assert app.services["db"]["volumes"] == {"data": {"path": "/var/lib/postgresql/data"}}, (
        "the one volume keeps the first release's name: the upgrade keeps its data"
    )
    assert app.services["db"]["secretFiles"] == {"/run/secrets/db_password": "db_password"}
    assert set(app.secrets) == {"db_password"} and app.notices == ()


EXAMPLE_STACKS = ["walkthrough-docker", "walkthrough-k8s", "shop-docker", "shop-k8s"]


def set_stack_config(values: dict, secrets: tuple[str, ...] = ("registryPassword",)) -> None:
    """The config as the CLI hands it to the program: strings, JSON for objects, secret keys marked."""
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": as_pulumi_config(v) for k, v in values.items()}, [f"{PROJECT}:{key}" for key in secrets]
    )


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
    config = parse_stack_config(shop_values(db_password="from-the-stack"), project=PROJECT, stack="shop", base_dir=ROOT)
    assert resolve(config.secrets["db_password"]) == "from-the-stack" and is_secret(config.secrets["db_password"])


def test_stack_config_overrides_the_compose_file():
    digest = "sha256:" + "a" * 64
    config = parse_stack_config(
        shop_values(target="kubernetes", replicas=3, images={"api": f"localhost:5000/shop/api@{digest}"}),
        project=PROJECT,
        stack="shop",
        base_dir=ROOT,
    )
    by_name = {w.name: w for w in config.app.workloads}
    assert by_name["api"].replicas == 3 and by_name["db"].replicas == 1, "replicas: every stateless service"
    assert config.images.pinned["api"].endswith(digest)


def test_compose_env_and_profiles_come_from_the_stack(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        yaml.safe_dump(
            {
                "services": {
                    "web": {
                        "image": "nginx:${TAG:?the stack sets TAG}",
                        "networks": ["front"],
                        "container_name": "www",
                        "volumes": ["./data:/data"],
                    },
                    "debug": {"image": "busybox", "profiles": ["debug"], "networks": ["front"]},
                },
                "networks": {"front": {}},
            }
        )
    )
    values = {
        "target": "docker",
        "compose": "compose.yaml",
        "composeEnv": {"TAG": "1.27"},
        "composeProfiles": ["debug"],
    }
    config = parse_stack_config(values, project=PROJECT, stack="s", base_dir=str(tmp_path))
    web = config.app.service("web")
    assert web.image == "nginx:1.27" and web.networks == ("front",) and web.aliases == ("www",)
    assert [v.path for v in web.volumes] == ["/data"] and {w.name for w in config.app.workloads} == {"web", "debug"}
    assert [n.name for n in config.app.networks] == ["front"]
    assert any("data directory" in notice for notice in config.notices)
    with pytest.raises(ConfigError) as error:
        parse_stack_config({**values, "composeEnv": {}}, project=PROJECT, stack="s", base_dir=str(tmp_path))
    assert any("the stack sets TAG" in p for p in error.value.problems)


def test_compose_and_services_together_are_refused():
    with pytest.raises(ConfigError) as error:
        parse_stack_config(
            shop_values(services={"web": {"image": "nginx"}}), project=PROJECT, stack="shop", base_dir=ROOT
        )
    assert any(p.startswith("services:") and "compose" in p for p in error.value.problems)


def test_compose_problems_come_with_the_other_problems(tmp_path):
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(_service(network_mode="host")))
    with pytest.raises(ConfigError) as error:
        parse_stack_config(
            {**shop_values(compose="compose.yaml"), "target": "nomad"},
            project=PROJECT,
            stack="shop",
            base_dir=str(tmp_path),
        )
    keys = [problem.split(": ")[0] for problem in error.value.problems]
    assert "target" in keys and "compose.yaml" in keys
    assert "services" not in keys, "no `at least one service` noise on top"


@pytest.mark.parametrize("document,key", [case[1:3] for case in REFUSED[:6]], ids=[case[0] for case in REFUSED[:6]])
def test_the_program_refuses_a_bad_compose_file_before_any_resource(document, key, tmp_path, mocks):
    """The real program (__main__.py) under mocks: the ConfigError comes before any registration."""
    compose = os.path.relpath(tmp_path / "compose.yaml", ROOT)
    (tmp_path / "compose.yaml").write_text(json.dumps(document))
    set_stack_config({"target": "docker", "compose": compose, **REGISTRY})
    with pytest.raises(ConfigError) as error:
        run(lambda: runpy.run_path(os.path.join(ROOT, "__main__.py")))
    assert f"{key}:" in str(error.value)
    assert mocks.resources == []


def test_the_program_deploys_a_good_compose_file(mocks):
    """The counterpart of the test above: the same program declares the example's resources."""
    set_stack_config({"target": "docker", "compose": "examples/walkthrough/compose.yaml", **REGISTRY})
    run(lambda: runpy.run_path(os.path.join(ROOT, "__main__.py")))
    assert [r.name for r in mocks.resources if r.type == "docker:index/container:Container"] == [
        "cloudservice-dev-docs"
    ]


def test_the_program_warns_of_what_it_approximated(tmp_path, mocks, monkeypatch):
    warnings = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(_service(logging={"driver": "syslog"})))
    set_stack_config({"target": "docker", "compose": os.path.relpath(tmp_path / "compose.yaml", ROOT), **REGISTRY})
    run(lambda: runpy.run_path(os.path.join(ROOT, "__main__.py")))
    assert len(warnings) == 1 and "services.web.logging: ignored" in warnings[0]
