"""`python -m components.config` prints the README's table of workload keys (from workload_keys.KEYS)."""

from .workload_keys import key_table

print(key_table(), end="")
