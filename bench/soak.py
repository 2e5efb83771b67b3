"""`make soak`: the long soak on each target (5 minutes by default; the suite runs a one-minute one,
tests/integration/test_soak.py): a prober through the entry point while the stack is updated every
30 s and one of web's replicas killed every minute. Prints each target's figures; fails when a
request failed, something piled up, or the state was left with pending operations.

Usage: python -m bench.soak [--seconds 300] [--targets docker,kubernetes]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional

from support.soak import SoakedStack
from support.testing import ProjectCopy, RegistryCredentials

from .timing import log

PROBES_PER_MINUTE = 600  # a tenth of what 20 a second would give, for a very slow machine


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--targets", default="docker,kubernetes")
    args = parser.parse_args(argv)
    password = RegistryCredentials.load().password
    failed = False
    for target in args.targets.split(","):
        with tempfile.TemporaryDirectory(prefix="cloudservice-soak-") as directory:
            soaked = SoakedStack(ProjectCopy(Path(directory)), target, password)
            try:
                log(f"soak on {target}: {args.seconds:.0f}s")
                report = soaked.soak(args.seconds)
                problems = soaked.problems(report, int(PROBES_PER_MINUTE * args.seconds / 60))
            finally:
                soaked.destroy()
        log(f"{target}: {report.summary()}")
        for problem in problems:
            log(f"{target}: NOT CLEAN: {problem}")
        failed = failed or bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
