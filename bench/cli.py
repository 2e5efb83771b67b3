"""The `pulumi` CLI as a user types it, on one stack of the bench's project copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .raw import run


class PulumiCli:
    def __init__(self, project_dir: Path, env: dict, stack: str):
        self.project_dir, self.stack = project_dir, stack
        self.env = {**os.environ, **env}

    def __call__(self, *args: str, env: dict | None = None) -> str:
        return run(
            ["pulumi", *args, "--stack", self.stack, "--non-interactive"],
            env={**self.env, **(env or {})},
            cwd=self.project_dir,
        )

    def up(self) -> str:
        """`pulumi up --yes --skip-preview`: what `make dev` runs, and a scripted `pulumi up`."""
        return self("up", "--yes", "--skip-preview")

    def preview(self, *args: str) -> str:
        return self("preview", *args)

    def destroy(self) -> str:
        return self("destroy", "--yes", "--skip-preview")

    def outputs(self) -> dict:
        return json.loads(self("stack", "output", "--json"))

    def last_changes(self) -> dict:
        """The resource changes of the last update (op -> count), from the stack's history."""
        return json.loads(self("stack", "history", "--json", "--page-size", "1"))[0]["resourceChanges"]
