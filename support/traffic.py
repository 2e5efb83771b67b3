"""Paced HTTP traffic for tests and the bench: GETs of one URL at a steady, bounded rate from background
threads, each one counted as answered (HTTP 200) or failed, whatever went wrong. Only loopback URLs
are meant: it is load on our own services."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Optional

from support.testing import http


class PacedRequests:
    """`per_second` requests in all, spread over `threads` (each waits for its answer before the
    next, so a slow server gets fewer, never a burst), for at most `max_seconds`. A context manager:
    running inside the `with`; an error of its own is raised again when it stops."""

    def __init__(self, url: str, per_second: float, threads: int = 1, max_seconds: float = 300, timeout: float = 5):
        self.url = url
        self.answered = 0
        self.failures: Counter = Counter()
        self._interval = threads / per_second
        self._max_seconds = max_seconds
        self._timeout = timeout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    @property
    def requests(self) -> int:
        return self.answered + sum(self.failures.values())

    def _request(self) -> None:
        try:
            status, _, _ = http("GET", self.url, timeout=self._timeout)
            failure: Optional[str] = None if status == 200 else f"HTTP {status}"
        except Exception as error:  # noqa: BLE001 - every way a request fails is a failed request
            failure = f"{type(error).__name__}: {error}"[:120]
        with self._lock:
            if failure is None:
                self.answered += 1
            else:
                self.failures[failure] += 1

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self._max_seconds
            next_start = time.monotonic()
            while not self._stop.is_set() and next_start < deadline:
                self._request()
                next_start = max(next_start + self._interval, time.monotonic())
                self._stop.wait(next_start - time.monotonic())
        except BaseException as error:  # noqa: BLE001 - handed to the test thread in __exit__
            self._errors.append(error)

    def __enter__(self) -> "PacedRequests":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout + 5)
        assert not any(thread.is_alive() for thread in self._threads), f"requests to {self.url} did not stop"
        if self._errors:
            raise self._errors[0]

    def report(self) -> str:
        return f"{self.requests} requests, {sum(self.failures.values())} failed {dict(self.failures)}"
