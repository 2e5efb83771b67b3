"""The results as a chart, bench/results.png: each figure beside its counterpart, the floor.

The pairs are the ratios of results.json (report.py's RATIOS): one panel per measured figure
(`cold.pulumi`, `edit.pulumi`, ...) with the figures it is divided by beside it (`cold.raw`,
`cold.compose`), every bar a median in seconds, the first counterpart's level dotted across the
panel, and the goal of report.py's GOALS as a dashed line at goal × the counterpart's median.

`make bench` draws it with the tables (report.write_results); `python -m bench.chart` draws it
again from the committed bench/results.json. The same results give the same bytes: fixed size and
resolution, matplotlib's default style whatever the local matplotlibrc says, no metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib import style  # noqa: E402 (after the backend is chosen)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .raw import BENCH_DIR  # noqa: E402
from .report import GOALS  # noqa: E402

CHART = BENCH_DIR / "results.png"
SIZE_INCHES = (13, 11)
DPI = 100  # so the PNG is 1300 x 1100 pixels
COLUMNS = 3
MEASURED, FLOOR, GOAL = "#1f77b4", "#a0a0a0", "#d62728"


@dataclass(frozen=True)
class Counterpart:
    """A figure the panel's figure is divided by, the ratio's name and median, and its goal if any."""

    ratio: str
    figure: str
    seconds: float
    times: float
    goal: float | None


@dataclass(frozen=True)
class Panel:
    """One measured figure (its median in seconds) and its counterparts, in the ratios' order."""

    figure: str
    seconds: float
    counterparts: tuple[Counterpart, ...]


def panels(results: dict) -> list[Panel]:
    """The chart's data: one panel per numerator of results["ratios"], in their order, medians only."""
    figures, grouped = results["figures"], {}
    for ratio, value in results["ratios"].items():
        numerator, denominator = value["of"]
        grouped.setdefault(numerator, []).append(
            Counterpart(ratio, denominator, figures[denominator]["median"], value["median"], GOALS.get(ratio))
        )
    return [Panel(figure, figures[figure]["median"], tuple(pairs)) for figure, pairs in grouped.items()]


def title(panel: Panel) -> str:
    """The ratio lines of a panel, named as in the ratio table (`cold pulumi/raw: 1.38×`), each with its goal."""
    lines = []
    for pair in panel.counterparts:
        lines.append(f"{pair.ratio}: {pair.times:.2f}×")
        if pair.goal is not None:
            verdict = "met" if pair.times <= pair.goal else "not met"
            lines.append(f"goal ≤ {pair.goal:.1f}× = {pair.goal * pair.seconds:.2f} s: {verdict}")
    return "\n".join(lines)


def draw(results: dict) -> Figure:
    charted = panels(results)
    rows = max(1, math.ceil(len(charted) / COLUMNS))
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, COLUMNS, squeeze=False).flatten()
    if not charted:  # a run of sections without a pair (`--sections unit`): say so, leave no stale chart
        axes[COLUMNS // 2].text(0.5, 0.5, "no pairs in this run", ha="center", va="center", fontsize=12)
    for ax, panel in zip(axes, charted):
        names = [panel.figure] + [pair.figure for pair in panel.counterparts]
        seconds = [panel.seconds] + [pair.seconds for pair in panel.counterparts]
        bars = ax.bar(range(len(names)), seconds, width=0.6, color=[MEASURED] + [FLOOR] * len(panel.counterparts))
        ax.bar_label(bars, labels=[f"{value:.2f} s" for value in seconds], padding=2, fontsize=9)
        ax.axhline(panel.counterparts[0].seconds, color="dimgray", linestyle=":", linewidth=1)
        goals = [pair.goal * pair.seconds for pair in panel.counterparts if pair.goal is not None]
        for level in goals:
            ax.hlines(level, -0.45, 0.45, color=GOAL, linestyle="--", linewidth=2)
        ax.set_ylim(0, max(seconds + goals) * 1.2)
        ax.set_xticks(range(len(names)), names, fontsize=9)
        ax.set_ylabel("seconds (median)", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(title(panel), fontsize=10)
    for ax in axes[len(charted) :]:
        ax.set_axis_off()
    figure.suptitle(
        f"make bench, run of {results['machine']['date']}: each figure beside its counterpart, "
        f"median of {results['runs']} runs in seconds (lower is better)",
        fontsize=12,
    )
    figure.legend(
        handles=[
            Patch(color=MEASURED, label="the stack: the pulumi CLI (noop.up.automation: the Automation API)"),
            Patch(
                color=FLOOR,
                label="its counterpart, the floor: docker CLI, docker-compose, kubectl, empty program (noop.up: the CLI)",
            ),
            Line2D([], [], color="dimgray", linestyle=":", label="the floor's level (the first counterpart)"),
            Line2D([], [], color=GOAL, linestyle="--", linewidth=2, label="goal (issue #19): at most N × the floor"),
        ],
        loc="outside lower center",
        ncols=2,
        fontsize=10,
        frameon=False,
    )
    return figure


def write_chart(results: dict, path: Path = CHART) -> Path:
    """Draws `results` to `path` (a PNG of SIZE_INCHES at DPI), the same bytes for the same results."""
    with style.context("default"):
        draw(results).savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def main() -> None:
    """Draws bench/results.png again from bench/results.json."""
    results = json.loads((BENCH_DIR / "results.json").read_text())
    print(f"wrote {write_chart(results).relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
