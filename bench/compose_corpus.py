"""Which public Compose files the stack accepts, refuses (and why) or crashes on.

Usage (from the repository root): python -m bench.compose_corpus DIR [--json OUT] [--variants]

For every Compose file under DIR (compose.yaml, compose.yml, docker-compose.yaml,
docker-compose.yml; with --variants also `compose.*.yaml`, `docker-compose.*.yml` and the like), and
for each target (docker, kubernetes), the stack parser is asked, in-process and through its public
API only (`parse_stack_config`, `ConfigError`), whether it takes the file as the app spec. Outcomes:
accepted; refused (a ConfigError, whose problems are kept and shortened to the offending Compose
key); crashed (any other exception, whose last traceback line is kept). Nothing is built or run.

The corpus is not in this repository (e.g. docker/awesome-compose, dockersamples/example-voting-app,
docker/getting-started, exported outside it): this script only measures it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from components.config import ConfigError, parse_stack_config

TARGETS = ("docker", "kubernetes")
NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
VARIANT = re.compile(r"^(docker-)?compose\.[^/]+\.ya?ml$")
# A few problem messages worth a qualifier after the key (a group: the qualifier is what it matched).
QUALIFIERS = (
    (re.compile(r"bind mount", re.I), "bind mount"),
    (re.compile(r"anonymous volume", re.I), "anonymous volume"),
    (re.compile(r"not interpolated", re.I), "interpolation"),
    (re.compile(r"declared in the top-level", re.I), "undeclared volume"),
    (re.compile(r"random host port", re.I), "no host port"),
    (re.compile(r"tcp port \(got '([a-z]+)'", re.I), None),
    (re.compile(r"listed twice", re.I), "duplicate port"),
    (re.compile(r"belongs to one service", re.I), "shared volume"),
    (re.compile(r"numeric non-root uid", re.I), "not a numeric uid"),
    (re.compile(r"restarted \(got '?([^')]*)", re.I), None),
)


@dataclass
class Outcome:
    outcome: str  # accepted | refused | crashed
    problems: list[str] = field(default_factory=list)  # refused: the ConfigError's problems
    error: Optional[str] = None  # crashed: the traceback's last line


@dataclass
class FileResult:
    path: str
    targets: dict[str, Outcome]
    reasons: list[str]  # the offending Compose keys, over both targets


def check(compose: Path, project: Path, target: str) -> Outcome:
    """The one call into the stack: parse_stack_config with the Compose file as the app of `project`,
    the sample's repository (a Compose file may build from its parent directories)."""
    values = {
        "compose": str(compose.relative_to(project)),
        "target": target,
        "push": "true",
        "registryServer": "localhost:5000",
        "registryUsername": "u",
        "registryPassword": "p",
        "imageRepository": "localhost:5000/corpus",
    }
    try:
        parse_stack_config(values, project="corpus", stack="corpus", base_dir=str(project), is_secret=lambda key: True)
    except ConfigError as error:
        return Outcome("refused", problems=[str(p) for p in error.problems])
    except Exception as error:  # noqa: BLE001 - any other exception is what this bench counts as a crash
        return Outcome("crashed", error=traceback.format_exception_only(type(error), error)[-1].strip())
    return Outcome("accepted")


def reason(problem: str, file_name: str) -> str:
    """`compose.yaml: services.web.volumes[0]: expected ... bind mount ...` -> `volumes (bind mount)`."""
    text = problem.removeprefix(f"{file_name}: ")
    key, _, message = text.partition(": ")
    parts = re.sub(r"\[[0-9]+\]", "", key).split(".")
    if parts[0] == "services" and len(parts) > 2:
        parts = parts[2:]  # services.<name>.<key>...: the service's key
    elif parts[0] == "(top level)":
        parts = parts[1:]
    elif parts[0] in ("services", "volumes", "secrets", "configs", "networks"):
        parts = [f"top-level {parts[0]}", *parts[2:]]  # <section>.<name>[.<key>]
    short = ".".join(parts[:2]) or "(file)"
    qualifier = next((tag or match.group(1) for pattern, tag in QUALIFIERS if (match := pattern.search(message))), None)
    return f"{short} ({qualifier})" if qualifier else short


def compose_files(root: Path, variants: bool) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and (p.name in NAMES or (variants and VARIANT.match(p.name)))
    )


def measure(root: Path, variants: bool) -> list[FileResult]:
    results = []
    for path in compose_files(root, variants):
        project = root / path.relative_to(root).parts[0]
        outcomes = {target: check(path, project, target) for target in TARGETS}
        source = str(path.relative_to(project))
        reasons = sorted({reason(p, source) for o in outcomes.values() for p in o.problems})
        results.append(FileResult(str(path.relative_to(root)), outcomes, reasons))
    return results


def summary(results: list[FileResult]) -> dict[str, Any]:
    outcomes = [set(o.outcome for o in r.targets.values()) for r in results]
    return {
        "files": len(results),
        "accepted on both": sum(o == {"accepted"} for o in outcomes),
        "refused": sum("refused" in o and "crashed" not in o for o in outcomes),
        "crashed": sum("crashed" in o for o in outcomes),
        "by target": {t: dict(Counter(r.targets[t].outcome for r in results)) for t in TARGETS},
        "refusals by key": dict(Counter(k for r in results for k in r.reasons).most_common()),
    }


def print_table(results: list[FileResult], totals: dict[str, Any]) -> None:
    width = max([len(r.path) for r in results] + [4])
    print(f"{'file':<{width}}  {'docker':<8}  {'kubernetes':<10}  refusal reasons")
    for r in results:
        docker, kubernetes = (r.targets[t] for t in TARGETS)
        detail = ", ".join(r.reasons) or "; ".join(o.error for o in r.targets.values() if o.error)
        print(f"{r.path:<{width}}  {docker.outcome:<8}  {kubernetes.outcome:<10}  {detail}")
    print(
        f"\n{totals['files']} files: {totals['accepted on both']} accepted on both targets, "
        f"{totals['refused']} refused, {totals['crashed']} crashed"
    )
    for target, counts in totals["by target"].items():
        print(f"  {target}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
    print("\nfiles refused, by key:")
    for key, count in totals["refusals by key"].items():
        print(f"  {count:>3}  {key}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the corpus: a directory searched for Compose files")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--variants", action="store_true", help="also compose.*.yaml / docker-compose.*.yml files")
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    results = measure(root, args.variants)
    if not results:
        print(f"no Compose files under {root}", file=sys.stderr)
        return 1
    totals = summary(results)
    print_table(results, totals)
    if args.json:
        args.json.write_text(
            json.dumps({"root": str(root), "totals": totals, "files": [asdict(r) for r in results]}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
