"""The current stack's config as the Pulumi runtime hands it to the program, with Pulumi.yaml's values."""

from __future__ import annotations

import os
from typing import Any

import pulumi
import yaml

from .errors import decode_json
from .stack import StackConfig, parse_stack_config


def load_stack_config(base_dir: str = ".") -> StackConfig:
    """Reads and validates the current stack's config (raises ConfigError before any resource)."""
    project, stack = pulumi.get_project(), pulumi.get_stack()
    prefix = f"{project}:"
    # Config reaches the program either in-process (language host, Automation API) or by environment.
    everything = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    values = {key[len(prefix) :]: value for key, value in everything.items() if key.startswith(prefix)}
    if "compose" in values:
        # Pulumi hands the program Pulumi.yaml's default app like a stack's own: `compose` replaces it.
        defaults = _project_values(base_dir)
        values = {
            key: value
            for key, value in values.items()
            if not (key in ("services", "jobs") and key in defaults and decode_json(value) == defaults[key])
        }
    return parse_stack_config(
        values,
        project=project,
        stack=stack,
        base_dir=base_dir,
        is_secret=lambda key: pulumi.runtime.is_config_secret(prefix + key),
    )


def _project_values(base_dir: str) -> dict[str, Any]:
    """The config values Pulumi.yaml itself sets (`value:`), which every stack inherits."""
    with open(os.path.join(base_dir, "Pulumi.yaml"), encoding="utf-8") as handle:
        config = (yaml.safe_load(handle) or {}).get("config") or {}
    return {key: spec["value"] for key, spec in config.items() if isinstance(spec, dict) and "value" in spec}
