"""Fixtures of the unit suite: fresh Pulumi mocks for every test, config reset after it."""

import os
import sys

import hypothesis  # noqa: F401 - see below
import pulumi
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from harness import install_mocks  # noqa: E402

# hypothesis is imported here, at collection, on purpose: its pytest plugin otherwise imports it
# (through pytest's assertion rewriter) in the terminal summary, and on CPython 3.11 that compile()
# can fail with "SystemError: AST constructor recursion depth mismatch" when a garbage collection
# finalizes what the Pulumi programs left behind in the middle of it.


@pytest.fixture
def mocks(monkeypatch):
    """Records every resource the test declares; stack `dev` of project `cloudservice`."""
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_SECRET_KEYS", raising=False)
    pulumi.runtime.set_all_config({}, [])
    recorded = install_mocks()
    yield recorded
    pulumi.runtime.set_all_config({}, [])
