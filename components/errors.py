"""The configuration error every parser raises (the stack's and the Compose mapper), as a leaf module."""

from __future__ import annotations

import pulumi


class ConfigError(pulumi.RunError, ValueError):
    """Raised for invalid configuration; lists each problem as `key: what is expected`.

    A RunError, so Pulumi reports the message alone, without a traceback."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))
