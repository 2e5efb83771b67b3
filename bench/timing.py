"""Wall-time figures: every run kept, summarised by min and median."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Callable


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Figures:
    """Named series of wall times (seconds) and the ratios between them."""

    def __init__(self) -> None:
        self.figures: dict[str, dict] = {}
        self.ratios: dict[str, dict] = {}

    def time(self, key: str, action: Callable[[], object]):
        """Runs `action` once, appends its wall time to figure `key`, returns what it returned."""
        start = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - start
        runs = self.figures.setdefault(key, {"runs": []})["runs"]
        runs.append(round(seconds, 3))
        self.figures[key].update(min=min(runs), median=round(statistics.median(runs), 3))
        log(f"{key}: {seconds:.2f}s")
        return result

    def ratio(self, key: str, numerator: str, denominator: str) -> None:
        """Ratio of medians (and of mins): how many times longer `numerator` takes."""
        top, bottom = self.figures[numerator], self.figures[denominator]
        self.ratios[key] = {
            "of": [numerator, denominator],
            "median": round(top["median"] / bottom["median"], 2),
            "min": round(top["min"] / bottom["min"], 2),
        }
        log(f"ratio {key}: {self.ratios[key]['median']}x (median), {self.ratios[key]['min']}x (min)")
