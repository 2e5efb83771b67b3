"""The leaf every config parser imports (the stack's, the workloads', Compose's): the error they raise,
the reader that collects every problem instead of stopping at the first, and the shared value rules."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional

import pulumi

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
FILE_LIMIT = 512 * 1024
"""The largest project file mounted as a file (a ConfigMap holds at most 1 MiB; config files are far smaller)."""

# Kubernetes' rule (Docker takes any name without `=`): `discovery.type` is a common one.
ENV_NAME = re.compile(r"^[-._A-Za-z][-._A-Za-z0-9]*$")

CONFIG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")

ABSOLUTE_PATH = re.compile(r"^/[^\0]*$")

QUANTITY = re.compile(r"^[1-9][0-9]{0,5}(Mi|Gi|Ti)$")

# registry[:port]/path, as in `docker tag`: lowercase path components, optional :tag or @digest.
REPOSITORY = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]{1,5})?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)

TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class ConfigError(pulumi.RunError, ValueError):
    """Raised for invalid configuration; lists each problem as `key: what is expected`.

    A RunError, so Pulumi reports the message alone, without a traceback."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))


class Reader:
    """Collects every problem instead of stopping at the first, so one run shows them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, expected: str, value: Any = None) -> None:
        got = "" if value is None else f" (got {value!r})"
        self.problems.append(f"{key}: expected {expected}{got}")

    def unknown(self, key: str, known: tuple[str, ...]) -> None:
        self.problems.append(f"{key}: unknown key; known keys are " + ", ".join(known))

    def integer(self, key: str, value: Any, low: int, high: int) -> Optional[int]:
        number = as_int(value)
        if number is None or not low <= number <= high:
            self.fail(key, f"an integer from {low} to {high}", value)
            return None
        return number

    def number(self, key: str, value: Any, low: float, high: float) -> Optional[float]:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.fail(key, f"a number from {low} to {high}", value)
            return None
        try:
            number = float(value)
        except (ValueError, OverflowError):  # float(10**400) overflows
            number = None
        if number is None or not low <= number <= high:
            self.fail(key, f"a number from {low} to {high}", value)
            return None
        return number

    def boolean(self, key: str, value: Any) -> Optional[bool]:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(key, "true or false", value)
        return None

    def choice(self, key: str, value: Any, choices: tuple[str, ...]) -> Optional[str]:
        if value not in choices:
            self.fail(key, "one of " + ", ".join(choices), value)
            return None
        return value

    def text(self, key: str, value: Any, pattern: Optional[re.Pattern] = None, expected: str = "") -> Optional[str]:
        if not isinstance(value, str) or not value or (pattern and not pattern.match(value)):
            self.fail(key, expected or "a non-empty string", value)
            return None
        return value

    def mapping(self, key: str, value: Any) -> Mapping[str, Any]:
        value = decode_json(value)
        if not isinstance(value, Mapping):
            self.fail(key, "an object (key: value pairs)", value)
            return {}
        return value

    def unknown_keys(self, prefix: str, given: Mapping[str, Any], known: tuple[str, ...]) -> None:
        for key in given:
            if key not in known:
                self.unknown(f"{prefix}{key}", known)


def as_int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,9}", value.strip()):
        return int(value)
    return None


def decode_json(value: Any) -> Any:
    """Structured config reaches the program as JSON text; plain YAML values come decoded."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def is_image_reference(value: str) -> bool:
    """True for `repository[:tag]` or `repository@sha256:<64 hex>`, as `docker pull` accepts."""
    name, _, digest = value.partition("@")
    if digest:
        return bool(DIGEST.match(digest)) and bool(REPOSITORY.match(name))
    last_slash = name.rfind("/")
    repo, colon, tag = name.rpartition(":") if name.rfind(":") > last_slash else (name, "", "")
    return bool(REPOSITORY.match(repo)) and (not colon or bool(TAG.match(tag)))


def read_argv(r: Reader, key: str, raw: Any) -> Optional[tuple[str, ...]]:
    """A command line as a list of strings (a string is split on spaces, as Compose does)."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip():
        return tuple(raw.split())
    if isinstance(raw, list) and raw and all(isinstance(arg, str) for arg in raw):
        return tuple(raw)
    r.fail(key, "a command as a list of strings such as [python3, -m, worker]", raw)
    return None


def read_names(r: Reader, key: str, raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        r.fail(key, "a list of names", raw)
        return []
    return list(raw)


def read_env(r: Reader, key: str, raw: Any, names: re.Pattern = ENV_NAME) -> dict[str, str]:
    """Names to string values (numbers are taken as their text)."""
    env = r.mapping(key, raw)
    for name, value in env.items():
        if not isinstance(name, str) or not names.match(name):
            expected = "environment variable names (letters, digits, _ . -)" if names is ENV_NAME else "valid names"
            r.fail(f"{key}", expected, name)
        elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
            r.fail(f"{key}.{name}", "a string value", value)
    return {k: str(v) for k, v in env.items()}
