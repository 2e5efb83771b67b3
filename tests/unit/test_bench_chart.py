"""The bench's chart (bench/chart.py) draws the ratios of results.json, medians beside their floors with
the goals, and the committed bench/results.png is the one the committed bench/results.json draws."""

from __future__ import annotations

import json
import struct

import numpy
import pytest
from matplotlib.image import imread

from bench.chart import CHART, DPI, SIZE_INCHES, Counterpart, panels, title, write_chart
from bench.raw import BENCH_DIR
from bench.report import GOALS, RATIOS

RESULTS = json.loads((BENCH_DIR / "results.json").read_text())


def figure(median: float) -> dict:
    return {"runs": [median], "min": median, "median": median}


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk of a PNG file, after checking its signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append((data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return chunks


def test_every_ratio_of_the_results_is_one_pair_of_medians():
    charted = panels(RESULTS)
    pairs = [(panel, pair) for panel in charted for pair in panel.counterparts]
    assert [pair.ratio for _, pair in pairs] == list(RESULTS["ratios"])
    for panel, pair in pairs:
        ratio = RESULTS["ratios"][pair.ratio]
        assert [panel.figure, pair.figure] == ratio["of"]
        assert panel.seconds == RESULTS["figures"][panel.figure]["median"]
        assert pair.seconds == RESULTS["figures"][pair.figure]["median"]
        assert pair.times == ratio["median"] == pytest.approx(panel.seconds / pair.seconds, abs=0.005)
        assert pair.goal == GOALS.get(pair.ratio)
    assert len({panel.figure for panel in charted}) == len(charted), "one panel per measured figure"


def test_the_committed_run_charts_every_pair_of_the_report():
    charted = {panel.figure: [pair.figure for pair in panel.counterparts] for panel in panels(RESULTS)}
    assert charted == {
        "entry.router": ["entry.direct"],
        "cold.pulumi": ["cold.raw", "cold.compose"],
        "edit.pulumi": ["edit.raw"],
        "noop.preview": ["empty.preview"],
        "noop.up": ["empty.preview"],
        "noop.up.automation": ["noop.up"],
        "k8s.pulumi": ["k8s.kubectl"],
        "scale10.up": ["scale10.raw"],
        "scale50.up": ["scale50.raw"],
        "dev.live": ["dev.raw", "dev.compose"],
    }
    # The entry section names its own ratio (bench/entry_point.py) beside the report's.
    assert {pair.ratio for panel in panels(RESULTS) for pair in panel.counterparts} == {
        *RATIOS,
        "entry point router/direct",
    }
    assert {pair.ratio for panel in panels(RESULTS) for pair in panel.counterparts if pair.goal} == set(GOALS)


def test_a_panel_title_has_the_ratios_and_each_goal_in_seconds_with_its_verdict():
    """A worked example (stop 25's pass), apart from whatever run is committed."""
    results = {
        "figures": {
            "cold.pulumi": figure(9.46),
            "cold.raw": figure(6.47),
            "cold.compose": figure(6.48),
            "k8s.pulumi": figure(8.83),
            "k8s.kubectl": figure(6.41),
        },
        "ratios": {
            "cold pulumi/raw": {"of": ["cold.pulumi", "cold.raw"], "median": 1.46},
            "cold pulumi/compose": {"of": ["cold.pulumi", "cold.compose"], "median": 1.46},
            "kubernetes pulumi/kubectl": {"of": ["k8s.pulumi", "k8s.kubectl"], "median": 1.38},
        },
    }
    cold, k8s = panels(results)
    assert title(cold) == (
        "cold pulumi/raw: 1.46×\ngoal ≤ 1.2× = 7.76 s: not met\ncold pulumi/compose: 1.46×"
    )  # 1.2 x cold.raw's 6.47 s
    assert cold.counterparts[1] == Counterpart("cold pulumi/compose", "cold.compose", 6.48, 1.46, None)
    assert title(k8s) == "kubernetes pulumi/kubectl: 1.38×\ngoal ≤ 1.3× = 8.33 s: not met"


def test_a_partial_run_charts_what_it_paired(tmp_path):
    results = {
        "runs": 1,
        "machine": {"date": "2026-01-01T00:00:00+00:00"},
        "figures": {"edit.pulumi": figure(5.0), "edit.raw": figure(4.0), "unit": figure(15.0)},
        "ratios": {"edit pulumi/raw": {"of": ["edit.pulumi", "edit.raw"], "median": 1.25, "min": 1.25}},
    }
    [edit] = panels(results)
    assert (edit.figure, edit.seconds) == ("edit.pulumi", 5.0)
    assert edit.counterparts == (Counterpart("edit pulumi/raw", "edit.raw", 4.0, 1.25, 1.3),)
    assert title(edit) == "edit pulumi/raw: 1.25×\ngoal ≤ 1.3× = 5.20 s: met"
    write_chart(results, tmp_path / "edit.png")
    write_chart({**results, "ratios": {}}, tmp_path / "none.png")  # `--sections unit`: nothing paired
    assert panels({**results, "ratios": {}}) == []


def test_the_chart_is_a_png_of_fixed_size_without_metadata_and_the_same_bytes_every_time(tmp_path):
    first, second = write_chart(RESULTS, tmp_path / "first.png"), write_chart(RESULTS, tmp_path / "second.png")
    data = first.read_bytes()
    assert data == second.read_bytes()
    chunks = png_chunks(data)
    assert chunks[0][0] == b"IHDR"
    assert struct.unpack(">II", chunks[0][1][:8]) == (SIZE_INCHES[0] * DPI, SIZE_INCHES[1] * DPI)
    assert {kind for kind, _ in chunks} <= {b"IHDR", b"pHYs", b"IDAT", b"IEND"}, "no text or time chunks"


def test_the_committed_chart_is_the_one_the_committed_results_draw(tmp_path):
    """After a change to the results or to bench/chart.py, draw it again: `python -m bench.chart`."""
    drawn = imread(write_chart(RESULTS, tmp_path / "results.png"))
    committed = imread(CHART)
    assert committed.shape == drawn.shape
    assert numpy.array_equal(committed, drawn), "bench/results.png is out of date: run `python -m bench.chart`"
