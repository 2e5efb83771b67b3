"""support/testing.py's free ports: real loopback sockets, a share of the range per test worker."""

import socket

import pytest

from support.testing import PICKED_PORTS, free_ports, worker_ports


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_each_worker_picks_from_a_share_of_its_own(monkeypatch, workers):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    shares = []
    for worker in range(workers):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        shares.append(set(worker_ports()))
    assert sum(len(share) for share in shares) == len(set().union(*shares)), "two workers share a port"
    assert all(len(share) >= len(PICKED_PORTS) // workers for share in shares)
    assert set().union(*shares) <= set(PICKED_PORTS)


def test_the_picked_ports_are_free_and_in_the_workers_share(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    picked = free_ports(3)
    assert len(set(picked)) == 3
    assert all(port in worker_ports() for port in picked)
    for port in picked:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_a_process_outside_xdist_picks_from_the_whole_range(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert worker_ports() == PICKED_PORTS
