"""The README stays in step with the code: every config key the parser accepts has its row, and the table
of workload keys is the one the key table generates (a key added without its line fails here)."""

from __future__ import annotations

import os
import re

import pytest
from harness import ROOT

from components.config import KUBERNETES_KEYS, STACK_KEYS
from components.config.workload_keys import key_table

with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
    README = handle.read()
CONFIG_TABLE = set(re.findall(r"^\| `([A-Za-z.]+)` \|", README, re.M))
WORKLOAD_KEYS_TABLE = re.search(r"<!-- workload keys: begin -->\n(.*)<!-- workload keys: end -->", README, re.S)[1]


@pytest.mark.parametrize(
    "key", [k for k in STACK_KEYS if k != "kubernetes"] + [f"kubernetes.{k}" for k in KUBERNETES_KEYS]
)
def test_every_config_key_has_a_row_in_the_configuration_reference(key):
    assert key in CONFIG_TABLE


def test_the_workload_keys_table_is_the_generated_one():
    """After changing components/config/workload_keys.py, paste `python -m components.config` between the markers."""
    assert WORKLOAD_KEYS_TABLE == key_table()
