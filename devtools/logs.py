"""`make logs`: the logs of every service of a stack (or some), interleaved and prefixed, followed;
containers or pods that appear later (a rollout, a restart) are picked up as they start."""

from __future__ import annotations

import sys
import threading
import time
from typing import Iterable, Optional, TextIO

from .runtime import LogSource, runtime_for
from .stack import Stack, StackError

POLL_SECONDS = 1.0


class LogFollower:
    def __init__(self, out: TextIO, width: int):
        self.out, self.width = out, width
        self.lock = threading.Lock()
        self.seen: set[str] = set()

    def pump(self, source: LogSource, everything: bool) -> None:
        pending = b""
        for chunk in source.lines(everything):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            with self.lock:
                for line in lines:
                    self.out.write(f"{source.service.ljust(self.width)} | {line.decode(errors='replace')}\n")
                self.out.flush()

    def attach(self, sources: dict[str, LogSource], services: Optional[set[str]], everything: bool) -> None:
        for key, source in sources.items():
            if key in self.seen or (services and source.service not in services):
                continue
            self.seen.add(key)
            threading.Thread(target=self.pump, args=(source, everything), daemon=True).start()


def follow(stack: Stack, services: Iterable[str] = (), tail: int = 20, out: TextIO = sys.stdout) -> None:
    outputs = stack.outputs()
    wanted = set(services)
    known = set(outputs.get("images") or {})
    if wanted - known:
        raise StackError(
            f"stack {stack.name} has no service {', '.join(sorted(wanted - known))} "
            f"(its services: {', '.join(sorted(known))})"
        )
    runtime = runtime_for(stack, outputs, tail=tail)
    follower = LogFollower(out, max(map(len, wanted or known or {""})))
    follower.attach(runtime.log_sources(), wanted, everything=False)
    try:
        while True:  # until interrupted: newcomers get their whole log
            time.sleep(POLL_SECONDS)
            follower.attach(runtime.log_sources(), wanted, everything=True)
    finally:
        getattr(runtime, "close", lambda: None)()
