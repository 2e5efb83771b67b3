"""Fixtures of the unit suite: fresh Pulumi mocks for every test, config reset after it."""

import os

import hypothesis
import pulumi
import pytest
from recorder import install_mocks

from components.image import Engine

# hypothesis is imported here, at collection, on purpose: its pytest plugin otherwise imports it
# (through pytest's assertion rewriter) in the terminal summary, and on CPython 3.11 that compile()
# can fail with "SystemError: AST constructor recursion depth mismatch" when a garbage collection
# finalizes what the Pulumi programs left behind in the middle of it.

# Property tests run few examples by default, so the suite stays fast; HYPOTHESIS_PROFILE=thorough
# runs many more (e.g. before changing components/config/).
hypothesis.settings.register_profile("unit", max_examples=50, deadline=None)
hypothesis.settings.register_profile("thorough", max_examples=2000, deadline=None)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit"))


REAL_IMAGE_ID = Engine.image_id
"""Taken before any test declared mocks: a module-scoped fixture's install_mocks runs before a test's
own fixtures, so what the test starts with is not always the real one."""


@pytest.fixture(autouse=True)
def real_engine_in_each_test(monkeypatch):
    """install_mocks answers engine look-ups from its mocks: each test starts and ends with the real Engine."""
    monkeypatch.setattr(Engine, "image_id", REAL_IMAGE_ID)


@pytest.fixture
def mocks(monkeypatch):
    """Records every resource the test declares; stack `dev` of project `cloudservice`."""
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_SECRET_KEYS", raising=False)
    pulumi.runtime.set_all_config({}, [])
    recorded = install_mocks()
    yield recorded
    pulumi.runtime.set_all_config({}, [])
