"""What the language host asks of a program's Python environment, answered from inside it: in the
host's own process when it runs there, else as `python python_environment.py QUERY [ARG]` (JSON on
stdout). Standard library only: it runs in any virtualenv."""

import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import sys


def _installed() -> list:
    """(name, version, distribution) of every distribution. Each `dist.name` or `dist.version` parses
    its METADATA file again: read once, that is a third of the time, on the path of every command."""
    found = []
    for dist in importlib.metadata.distributions():
        metadata = dist.metadata
        found.append((metadata["Name"], metadata["Version"], dist))
    return found


def packages() -> list:
    """Every distribution, with the pulumi-plugin.json of its top-level package when it has one
    (the file Pulumi packages ship to name their plugin)."""
    found = []
    for name, version, _ in _installed():
        try:
            spec = importlib.util.find_spec(name.replace("-", "_").lower())
        except (ImportError, ValueError):
            spec = None
        plugin = None
        for location in (spec and spec.submodule_search_locations) or []:
            path = os.path.join(location, "pulumi-plugin.json")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    plugin = json.load(handle)
        found.append({"name": name, "version": version, "plugin": plugin})
    return found


def dependencies(transitive: bool) -> list:
    """The installed distributions, as `pip list` shows them (without --not-required: only those that
    no other one requires)."""
    installed = _installed()
    required = set()
    if not transitive:
        for _, _, dist in installed:
            for requirement in dist.requires or []:
                if "extra ==" not in requirement:
                    required.add(
                        re.split(r"[^A-Za-z0-9._-]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")
                    )
    return sorted(
        (
            {"name": name, "version": version}
            for name, version, _ in installed
            if name.lower().replace("_", "-") not in required
        ),
        key=lambda d: d["name"].lower(),
    )


def about() -> dict:
    try:
        pip = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        pip = ""
    return {"executable": sys.executable, "version": platform.python_version(), "pip": pip}


QUERIES = {
    "packages": packages,
    "dependencies": lambda transitive="true": dependencies(transitive == "true"),
    "about": about,
}

if __name__ == "__main__":
    print(json.dumps(QUERIES[sys.argv[1]](*sys.argv[2:])))
