"""A soak: a steady prober through the app's entry point while the stack is updated on a period (a
source edit, then `up`) and one replica is killed on another. Counts what a user would see (failed
requests) and what would pile up over a day of it (the stack's containers or pods, and the Pulumi
processes and their open files left between updates). The test suite runs a short one, bench/ a long
one; both on loopback only."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from support.traffic import Prober


@dataclass(frozen=True)
class Sample:
    """What is left between updates: the stack's running containers (or pods), and Pulumi's processes
    (the CLI and its plugins) with their open files."""

    seconds: float
    containers: int
    pulumi_processes: int
    open_files: int


def pulumi_processes(proc: Path = Path("/proc")) -> dict[int, int]:
    """The running Pulumi CLI and plugin processes (pulumi, pulumi-language-*, pulumi-resource-*): pid
    to its number of open files."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip().startswith("pulumi"):
                found[int(entry.name)] = len(os.listdir(entry / "fd"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@dataclass
class SoakReport:
    seconds: float
    updates: int
    kills: int
    prober: Prober
    samples: list[Sample] = field(default_factory=list)

    @property
    def growth(self) -> dict[str, int]:
        """How much more of each is left after the last update than after the first."""
        first, last = self.samples[0], self.samples[-1]
        return {
            "containers": last.containers - first.containers,
            "pulumi processes": last.pulumi_processes - first.pulumi_processes,
            "open files": last.open_files - first.open_files,
        }

    def summary(self) -> str:
        return (
            f"{self.seconds:.0f}s: {self.updates} updates, {self.kills} replicas killed; probes "
            f"{self.prober.report()}; left between updates (first -> last): "
            f"{self.samples[0]} -> {self.samples[-1]}"
        )


class Soak:
    """`update()` at 0, `update_every`, ... seconds (each starts once the previous one ended), `kill()`
    at half of `kill_every` and every `kill_every` after, for `seconds`; `containers()` counts the
    stack's containers after each update."""

    def __init__(
        self,
        url: str,
        *,
        seconds: float,
        update: Callable[[int], None],
        kill: Callable[[], None],
        containers: Callable[[], int],
        update_every: float = 30,
        kill_every: float = 60,
        probes_per_second: float = 20,
    ):
        self.url, self.seconds = url, seconds
        self._update, self._kill, self._containers = update, kill, containers
        self._update_every, self._kill_every = update_every, kill_every
        self._probes_per_second = probes_per_second

    def run(self) -> SoakReport:
        with Prober(self.url, per_second=self._probes_per_second) as prober:
            report = SoakReport(seconds=self.seconds, updates=0, kills=0, prober=prober)
            started = time.monotonic()
            stop, errors = threading.Event(), []
            killer = threading.Thread(target=self._kill_on_schedule, args=(started, stop, report, errors), daemon=True)
            killer.start()
            try:
                while time.monotonic() - started < self.seconds:
                    report.updates += 1
                    self._update(report.updates)
                    report.samples.append(self._sample(time.monotonic() - started))
                    next_update = started + report.updates * self._update_every
                    time.sleep(max(0.0, min(next_update, started + self.seconds) - time.monotonic()))
            finally:
                stop.set()
                killer.join()
            if errors:
                raise errors[0]
        return report

    def _kill_on_schedule(self, started: float, stop: threading.Event, report: SoakReport, errors: list) -> None:
        next_kill = started + self._kill_every / 2
        try:
            while not stop.wait(max(0.0, next_kill - time.monotonic())):
                self._kill()
                report.kills += 1
                next_kill += self._kill_every
        except BaseException as error:  # noqa: BLE001 - raised again in the test's thread by run()
            errors.append(error)

    def _sample(self, seconds: float) -> Sample:
        processes = pulumi_processes()
        return Sample(seconds, self._containers(), len(processes), sum(processes.values()))
