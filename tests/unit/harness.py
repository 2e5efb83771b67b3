"""Stack configs for the unit tests: the project's own values, the committed stack files, and builders
for a config, a workload's spec or a deployed app (under the mocks of recorder.py)."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import yaml
from recorder import PROJECT, run

from components.cloudservice import CloudService, CloudServiceArgs
from components.config import StackConfig, parse_stack_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- stack configuration ------------------------------------------------------------------------


def load_yaml(name: str) -> dict:
    with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def project_defaults() -> dict[str, Any]:
    """Pulumi.yaml's config block as values: each key's `value` or `default`."""
    defaults = {}
    for key, spec in (load_yaml("Pulumi.yaml").get("config") or {}).items():
        if isinstance(spec, dict) and ("value" in spec or "default" in spec):
            defaults[key] = spec.get("value", spec.get("default"))
        elif not isinstance(spec, dict):
            defaults[key] = spec
    return defaults


def default_services() -> dict:
    return json.loads(json.dumps(project_defaults()["services"]))


def stack_values(stack: str) -> dict[str, Any]:
    """Project defaults overlaid with Pulumi.<stack>.yaml (keys without the `cloudservice:` prefix)."""
    values = project_defaults()
    for key, value in (load_yaml(f"Pulumi.{stack}.yaml").get("config") or {}).items():
        project, _, name = key.partition(":")
        assert project == PROJECT, f"Pulumi.{stack}.yaml: config key {key} is not in the {PROJECT} namespace"
        values[name] = value
    return values


def as_pulumi_config(value: Any) -> str:
    """How the CLI hands a config value to the program: strings as is, the rest as JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


def make_config(stack: str = "dev", *, is_secret=lambda key: True, base_dir: str = ROOT, **values: Any) -> StackConfig:
    """A StackConfig from Pulumi.yaml's app spec plus `values` (None removes a key)."""
    merged = {"services": default_services(), **values}
    merged = {k: v for k, v in merged.items() if v is not None}
    return parse_stack_config(merged, project=PROJECT, stack=stack, is_secret=is_secret, base_dir=base_dir)


REGISTRY = {
    "push": True,
    "registryServer": "localhost:5000",
    "registryUsername": "cloudservice",
    "registryPassword": "s3cr3t-registry-pw",
    "imageRepository": "localhost:5000/cloudservice",
}


DB_PASSWORD = "s3cr3t-db-pw"
"""The value of the `dbPassword` secret the specs of the component tests reference."""
STACK_LABELS = {
    "app.kubernetes.io/part-of": PROJECT,
    "app.kubernetes.io/managed-by": "pulumi",
    "cloudservice.dev/stack": "dev",
}


def spec_of(name: str = "web", *, target: str = "docker", jobs: Optional[dict] = None, **changes: Any):
    """The parsed spec of workload `name`: a service of the project's app with `changes` (None
    removes a key), or a job of `jobs`. `dbPassword` is set, for secretEnv/secretFiles."""
    services = default_services()
    if name in services:
        services[name] = {k: v for k, v in {**services[name], **changes}.items() if v is not None}
    config = make_config(target=target, **REGISTRY, services=services, jobs=jobs, dbPassword=DB_PASSWORD)
    return next(w for w in config.app.workloads if w.name == name)


def file_versions(project_dir, target: str, contents: list[str]):
    """The spec of a service `app` that mounts the project file app.yaml, once for each of `contents`
    written to that file in turn (the project lives in `project_dir`)."""
    (project_dir / "app").mkdir(exist_ok=True)
    (project_dir / "app" / "Dockerfile").write_text("FROM scratch\n")
    for content in contents:
        (project_dir / "app.yaml").write_text(content)
        services = {"app": {"build": "app", "files": {"/etc/app.yaml": "app.yaml"}}}
        yield make_config(target=target, **REGISTRY, services=services, base_dir=str(project_dir)).app.service("app")


def docker_config(**values: Any) -> StackConfig:
    return make_config(**{"target": "docker", **REGISTRY, **values})


def kubernetes_config(**values: Any) -> StackConfig:
    return make_config(**{"target": "kubernetes", **REGISTRY, **values})


def app_args(config: StackConfig) -> CloudServiceArgs:
    """What the program (__main__.py) hands CloudService from the stack's config."""
    return CloudServiceArgs.of(config)


def deploy(config: StackConfig, name: Optional[str] = None) -> CloudService:
    """Runs the program for `config`: one CloudService named like the stack's objects."""
    return run(lambda: CloudService(name or config.name_prefix, app_args(config)))
