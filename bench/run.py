"""`make bench`: the stack against the raw docker / docker-compose / kubectl way, side by side.

Usage: python -m bench.run [--runs N] [--quick] [--sections cold,steady,...]

Every figure is wall time in seconds over N runs (min and median); setup and cleanup happen
outside the timed sections. Everything the bench creates carries a unique `bench-<id>` name
(stacks, containers, compose project, namespaces, host ports picked free) and is removed at the
end, pushed registry tags excepted (the stack keeps those too: they are the release history).
Results: bench/results.json, the tables in bench/README.md and their chart, bench/results.png.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from .entry_point import bench_entry_point
from .harness import Bench
from .phases import bench_phases
from .report import RATIOS, machine_info, render_table, write_results
from .sections import bench_cold, bench_dev, bench_kubernetes, bench_scale, bench_steady, bench_unit
from .timing import log

SECTION_FUNCTIONS = {
    "unit": bench_unit,
    "cold": bench_cold,
    "steady": bench_steady,
    "kubernetes": bench_kubernetes,
    "scale": bench_scale,
    "dev": bench_dev,
    "entry": bench_entry_point,
    "phases": bench_phases,
}
SECTIONS = tuple(SECTION_FUNCTIONS)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of every figure (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run of each: a smoke check")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ", ".join(SECTIONS)
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the results, leave results.json, README and chart alone"
    )
    args = parser.parse_args(argv)
    sections = [section.strip() for section in args.sections.split(",") if section.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    runs = 1 if args.quick else args.runs

    workdir = Path(tempfile.mkdtemp(prefix="cloudservice-bench-"))
    bench = Bench(runs, workdir)
    log(f"bench {bench.id}: {runs} run(s) of {', '.join(sections)} in {workdir}")
    try:
        for section, measure in SECTION_FUNCTIONS.items():  # in order: later ones reuse what `cold` pushed
            if section in sections:
                measure(bench)
    finally:
        log("cleaning up")
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)

    figures = bench.figures
    for key, (numerator, denominator) in RATIOS.items():
        if numerator in figures.figures and denominator in figures.figures:
            figures.ratio(key, numerator, denominator)
    results = {
        "runs": runs,
        "machine": machine_info(),
        "figures": figures.figures,
        "ratios": figures.ratios,
        "phases": bench.phases,
    }
    print(render_table(results))
    if not args.no_write:
        write_results(results)


if __name__ == "__main__":
    main()
