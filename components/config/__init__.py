"""The stack's configuration: raw config values (or a Compose file) parsed and validated into the
typed model of components/spec.py, every problem reported at once, before any resource exists.

- errors.py: ConfigError, the problem-collecting Reader and the shared value rules (a leaf);
- workload_keys.py: the table of workload keys (reader, bounds, doc), from which key lists and README come,
  read by the functions of key_readers.py;
- workloads.py: `services`, `jobs` and `networks` into the app spec, key by key as that table says;
- compose.py: a Compose file, loaded by Compose's own loader, translated into that raw spec (per service in
  compose_service.py, by the rules of compose_rules.py);
- stack.py: the whole stack config (`parse_stack_config`), load.py: the current stack's (`load_stack_config`).
"""

from .errors import ConfigError, is_image_reference
from .load import load_stack_config
from .stack import KUBERNETES_KEYS, STACK_KEYS, StackConfig, keep_releases, parse_stack_config
from .workload_keys import JOB_KEYS, SERVICE_KEYS
from .workloads import WORKLOAD_KEYS

__all__ = [
    "ConfigError",
    "JOB_KEYS",
    "KUBERNETES_KEYS",
    "SERVICE_KEYS",
    "STACK_KEYS",
    "StackConfig",
    "WORKLOAD_KEYS",
    "is_image_reference",
    "keep_releases",
    "load_stack_config",
    "parse_stack_config",
]
