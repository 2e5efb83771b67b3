"""The README stays in step with the code: every config key and every app spec key the parser accepts
is documented (a key added without its line fails here)."""

from __future__ import annotations

import os
import re

import pytest
from harness import ROOT

from components.config import JOB_KEYS, KUBERNETES_KEYS, SERVICE_KEYS, STACK_KEYS

with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
    README = handle.read()
CONFIG_TABLE = set(re.findall(r"^\| `([A-Za-z.]+)` \|", README, re.M))
APP_SPEC = README[README.index("### App spec") : README.index("## Any cluster")]


@pytest.mark.parametrize(
    "key", [k for k in STACK_KEYS if k != "kubernetes"] + [f"kubernetes.{k}" for k in KUBERNETES_KEYS]
)
def test_every_config_key_has_a_row_in_the_configuration_reference(key):
    assert key in CONFIG_TABLE


@pytest.mark.parametrize("key", sorted(set(SERVICE_KEYS) | set(JOB_KEYS)))
def test_every_app_spec_key_is_in_the_app_spec_section(key):
    assert re.search(rf"(?<![\w-]){key}(?![\w-])", APP_SPEC), f"services/jobs key {key} is not documented"
