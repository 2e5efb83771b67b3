"""Each person's stack files, and the team's stack settings they are made from.

Pulumi reads a stack's configuration from `.stacks/Pulumi.<stack>.yaml` (Pulumi.yaml's
`stackConfigDir`): a file that is never committed, because it holds what belongs to one person or
machine: the salt of their secrets passphrase, their secrets (the local registry's password), and
their own overrides (a pinned image, a port offset). The team's settings of a stack are the
committed `Pulumi.<stack>.yaml`. `make up` brings them into the personal file: the team's keys win,
everything else in the personal file stays.

Usage: python -m devtools stack-file STACK [TEMPLATE]   (TEMPLATE: the committed stack to take the
settings from, default STACK; e.g. a personal `dev-alice` made from `dev`)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stack_file(project_dir: Path, stack: str) -> Path:
    """Where Pulumi reads stack `stack` of the project in `project_dir` from (its stackConfigDir)."""
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    return project_dir / project.get("stackConfigDir", ".") / f"Pulumi.{stack}.yaml"


def team_settings(text: Optional[str]) -> dict[str, Any]:
    """The committed settings of a stack (the text of its Pulumi.<stack>.yaml, None when there is
    none): its config without secure values, which are encrypted for someone else's passphrase."""
    config = (yaml.safe_load(text or "") or {}).get("config") or {}
    return {key: value for key, value in config.items() if not (isinstance(value, dict) and "secure" in value)}


def _comparable(value: Any) -> Any:
    """A config value as Pulumi keeps it once it rewrites a stack file: scalars as their text."""
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if value is None else str(value)


def write_stack_file(path: Path, config: dict[str, Any], base: Optional[dict[str, Any]] = None) -> None:
    """Writes a stack file with `config`, keeping the other top-level keys of `base`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**(base or {}), "config": config}, sort_keys=False))


def sync(project_dir: Path, stack: str, template: Optional[str] = None) -> list[str]:
    """Brings the committed settings of `template` (default: `stack`) into the personal stack file of
    `stack`; returns the keys it changed (the file is not rewritten when there are none)."""
    template = template or stack
    committed = project_dir / f"Pulumi.{template}.yaml"
    path = stack_file(project_dir, stack)
    if path == committed:  # no stackConfigDir: Pulumi reads the committed file itself
        return []
    text = committed.read_text() if committed.is_file() else None
    if not path.is_file() and template == stack and text is not None:
        # The stack's first personal file is its committed one as it is here, with what an earlier
        # release's `make up` wrote into it (the secrets salt, secrets), which are this person's.
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return sorted((yaml.safe_load(text) or {}).get("config") or {})
    personal = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    config = dict(personal.get("config") or {})
    team = team_settings(text)
    changed = sorted(key for key, value in team.items() if _comparable(config.get(key)) != _comparable(value))
    if changed or not path.is_file():
        config.update(team)
        write_stack_file(path, config, personal)
    return changed


def update(stack: str, template: Optional[str] = None) -> None:
    """`python -m devtools stack-file`, as `make up` runs it: syncs the stack file of `stack` in this
    checkout and says which committed settings it brought in."""
    template = template or stack
    changed = sync(ROOT, stack, template)
    if changed:
        source = f"Pulumi.{template}.yaml"
        print(
            f"stack {stack}: {', '.join(changed)} from the committed {source} "
            f"(your settings: {stack_file(ROOT, stack).relative_to(ROOT)})",
            file=sys.stderr,
        )
