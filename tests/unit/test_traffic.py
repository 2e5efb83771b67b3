"""The paced traffic of the integration tests (support/traffic.py), against an HTTP server on loopback:
it keeps to its rate, stops by itself after max_seconds, and counts what is not a 200 as failed; the
Prober also counts the versions that answered and an answer without one as failed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from loopback import QuietHandler, serving

from support.traffic import PacedRequests, Prober


class Handler(QuietHandler):
    def do_GET(self):
        body = b'{"version": "7"}' if self.path == "/versioned/" else b""
        self.send_response(500 if self.path == "/fail" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(Handler) as address:
        yield f"http://{address}"


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


def test_the_prober_counts_versions_and_an_answer_without_one_as_failed(server):
    with Prober(server + "/versioned", per_second=50) as versioned:
        time.sleep(0.3)
    with Prober(server, per_second=50) as unversioned:
        time.sleep(0.3)
    assert versioned.versions == {"7": versioned.requests} and versioned.last_version == "7", versioned.report()
    assert versioned.failed == 0 and versioned.succeeded_in_a_row == versioned.requests > 5
    assert unversioned.failed == unversioned.requests > 5 and unversioned.succeeded_in_a_row == 0
    assert unversioned.outage > 0.1, unversioned.report()
