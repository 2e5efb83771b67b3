"""Long-running commands under test (`make dev`, `make logs`): started in their own process group,
their output collected line by line as it comes, stopped with Ctrl-C as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional, Sequence


class OutputWatcher:
    def __init__(self, command: Sequence[str], cwd: Path, env: Optional[dict] = None):
        self.command = list(command)
        self.process = subprocess.Popen(
            self.command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def mark(self) -> int:
        """Where the output is now: wait_for(..., since=mark) only looks at what comes after."""
        with self.changed:
            return len(self.lines)

    def wait_for(self, text: str, timeout: float, since: int = 0) -> str:
        """The first line after `since` that contains `text`; fails with the output's tail otherwise."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = next((line for line in self.lines[since:] if text in line), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(
                        f"{' '.join(self.command)}: no line with {text!r} after {timeout}s "
                        f"(exit code {self.process.poll()}); output:\n{tail}"
                    )
                self.changed.wait(min(remaining, 0.5))

    def stop(self) -> None:
        """Ctrl-C to the whole process group, then a kill if it has not exited within 60 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
