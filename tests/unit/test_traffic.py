"""The paced traffic of the integration tests (support/traffic.py), against an HTTP server on loopback:
it keeps to its rate, stops by itself after max_seconds, and counts what is not a 200 as failed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.traffic import PacedRequests


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500 if self.path == "/fail" else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_it_keeps_to_its_rate_across_threads(server):
    with PacedRequests(server + "/", per_second=40, threads=4) as traffic:
        time.sleep(1)
    assert 30 <= traffic.requests <= 50, traffic.report()
    assert traffic.answered == traffic.requests and not traffic.failures


def test_it_stops_by_itself_after_max_seconds(server):
    with PacedRequests(server + "/", per_second=20, max_seconds=0.5) as traffic:
        time.sleep(1)
    assert 5 <= traffic.requests <= 12, traffic.report()


def test_what_is_not_a_200_is_counted_as_failed(server):
    with PacedRequests(server + "/fail", per_second=20) as failing:
        time.sleep(0.3)
    with PacedRequests("http://127.0.0.1:9/", per_second=20, timeout=1) as refused:  # the discard port: closed
        time.sleep(0.3)
    assert failing.answered == 0 and failing.failures == {"HTTP 500": failing.requests} and failing.requests > 0
    assert refused.answered == 0 and refused.requests > 0
    assert all(reason.startswith("URLError") for reason in refused.failures), refused.report()
