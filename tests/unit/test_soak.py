"""The soak's schedule and counts (support/soak.py), with a versioned HTTP server on loopback and
recorded updates and kills: what the integration soak and bench rely on to call a soak clean."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import QuietHandler, serving

from support.soak import Soak, pulumi_processes


class Versioned(QuietHandler):
    def do_GET(self):
        body = b'{"version": "1"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving(Versioned) as address:
        yield f"http://{address}"


def on_time(at: list[float], scheduled: list[float]) -> None:
    """Never early; late by less than a busy machine's scheduling delay."""
    assert len(at) == len(scheduled) and all(s - 0.01 <= a < s + 0.15 for a, s in zip(at, scheduled)), (at, scheduled)


def test_updates_and_kills_keep_their_periods_and_each_update_is_sampled(url):
    updates, kills, containers = [], [], iter(range(3, 100))
    started = time.monotonic()
    report = Soak(
        url,
        seconds=1.0,
        update=lambda n: updates.append((n, time.monotonic() - started)),
        kill=lambda: kills.append(time.monotonic() - started),
        containers=lambda: next(containers),
        update_every=0.4,
        kill_every=0.6,
    ).run()
    assert [n for n, _ in updates] == [1, 2, 3] and report.updates == 3
    on_time(at=[at for _, at in updates], scheduled=[0.0, 0.4, 0.8])
    on_time(at=kills, scheduled=[0.3, 0.9])
    assert report.kills == 2
    assert [sample.containers for sample in report.samples] == [3, 4, 5]
    assert report.growth["containers"] == 2, "a container more after each update is growth"
    assert report.prober.requests > 10 and report.prober.failed == 0, report.summary()


def test_a_failing_kill_fails_the_soak(url):
    def kill():
        raise RuntimeError("no replica to kill")

    with pytest.raises(RuntimeError, match="no replica to kill"):
        Soak(url, seconds=0.5, update=lambda n: None, kill=kill, containers=lambda: 1, kill_every=0.2).run()


def test_pulumi_processes_are_found_by_name_with_their_open_files(tmp_path: Path):
    for pid, name, files in ((10, "pulumi", 4), (11, "pulumi-resource-docker", 2), (12, "python3", 9)):
        (tmp_path / str(pid) / "fd").mkdir(parents=True)
        (tmp_path / str(pid) / "comm").write_text(name + "\n")
        for fd in range(files):
            (tmp_path / str(pid) / "fd" / str(fd)).touch()
    (tmp_path / "self").mkdir()
    assert pulumi_processes(tmp_path) == {10: 4, 11: 2}
