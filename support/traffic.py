"""Paced HTTP traffic for tests and the bench: GETs of one URL at a steady, bounded rate from background
threads, each one counted as answered (HTTP 200) or failed, whatever went wrong; the Prober also reads
which version of the app answered. Only loopback URLs are meant: it is load on our own services."""

from __future__ import annotations

import json
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
            status, body, _ = http("GET", self.url, timeout=self._timeout)
            failure = self._check(status, body)
        except Exception as error:  # noqa: BLE001 - every way a request fails is a failed request
            failure = f"{type(error).__name__}: {error}"[:120]
        with self._lock:
            if failure is None:
                self.answered += 1
            else:
                self.failures[failure] += 1
            self._counted(failure)

    def _check(self, status: int, body: bytes) -> Optional[str]:
        """Why an answer counts as failed, or None."""
        return None if status == 200 else f"HTTP {status}"

    def _counted(self, failure: Optional[str]) -> None:
        """Called with the lock held after each request."""

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


class Prober(PacedRequests):
    """Requests the app's `/` (which answers `{"version": ...}`) until stopped, 100 a second by
    default. An answer without a version counts as failed too. Keeps which versions answered, when
    failures began and ended (an outage's length) and how many requests in a row have succeeded since."""

    def __init__(self, url: str, timeout: float = 5, per_second: float = 100, max_seconds: float = 3600):
        super().__init__(url.rstrip("/") + "/", per_second, max_seconds=max_seconds, timeout=timeout)
        self.versions: Counter = Counter()
        self.last_version: Optional[str] = None
        self.first_failure: Optional[float] = None
        self.last_failure: Optional[float] = None
        self.succeeded_in_a_row = 0

    def _check(self, status: int, body: bytes) -> Optional[str]:
        failure = super()._check(status, body)
        if failure is None:
            version = json.loads(body)["version"]
            self.versions[version] += 1  # one thread: no lock needed before the count
            self.last_version = version
        return failure

    def _counted(self, failure: Optional[str]) -> None:
        if failure is None:
            self.succeeded_in_a_row += 1
            return
        self.last_failure = time.monotonic()
        self.first_failure = self.first_failure or self.last_failure
        self.succeeded_in_a_row = 0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def outage(self) -> float:
        """Seconds from the first failed request to the last one (0 without failures)."""
        return (self.last_failure - self.first_failure) if self.first_failure and self.last_failure else 0.0

    def report(self) -> str:
        return f"{super().report()} over {self.outage:.1f}s, versions {dict(self.versions)}"
