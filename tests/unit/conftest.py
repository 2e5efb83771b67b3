"""Fixtures of the unit suite: fresh Pulumi mocks for every test, config reset after it."""

import os
import sys

import pulumi
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from harness import install_mocks  # noqa: E402


@pytest.fixture
def mocks(monkeypatch):
    """Records every resource the test declares; stack `dev` of project `cloudservice`."""
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_SECRET_KEYS", raising=False)
    pulumi.runtime.set_all_config({}, [])
    recorded = install_mocks()
    yield recorded
    pulumi.runtime.set_all_config({}, [])
