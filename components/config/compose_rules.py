"""What each Compose key becomes (the tables the mapper follows: refused as host-bound, ignored with a
notice, or mapped) and the conversions of Compose's values (durations, sizes, names) into the spec's."""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Optional

EXTENSION = "x-cloudservice"
"""A service's spec keys that Compose cannot say (e.g. `readOnly: false`: Compose's own default, so
the loader does not tell it from an absent `read_only`), applied over the mapped ones."""
CONDITIONS = {"service_started": "started", "service_healthy": "healthy", "service_completed_successfully": "completed"}
RESTARTS = {"no": "no", "always": "always", "unless-stopped": "unless-stopped", "on-failure": "on-failure"}
# Keys whose value cannot exist on a cluster (or would hand the container the host): refused, with why.
HOST_BOUND: dict[str, tuple[Callable[[Any], bool], str]] = {
    "privileged": (bool, "a privileged container owns the host; no cluster admits it"),
    "devices": (bool, "host devices do not exist on a cluster's nodes"),
    "device_cgroup_rules": (bool, "host devices do not exist on a cluster's nodes"),
    "gpus": (bool, "GPUs are a node's, requested through the cluster's device plugins"),
    "pid": (lambda v: v not in (None, ""), "the host's (or another container's) process namespace"),
    "ipc": (lambda v: v not in (None, "", "private", "shareable"), "the host's (or another container's) IPC namespace"),
    "uts": (lambda v: v not in (None, ""), "the host's UTS namespace"),
    "userns_mode": (lambda v: v not in (None, ""), "the host's user namespace"),
    "cgroup_parent": (bool, "a cgroup of the host"),
    "cgroup": (lambda v: v not in (None, "", "private"), "the host's cgroup namespace"),
    "volumes_from": (bool, "another container's mounts (declare the volumes by name instead)"),
    "external_links": (bool, "containers outside this app"),
    "isolation": (lambda v: v not in (None, "", "default"), "a Windows isolation technology"),
    "runtime": (lambda v: v not in (None, "", "runc"), "an OCI runtime installed on the host"),
    "credential_spec": (bool, "a Windows credential spec of the host"),
    "storage_opt": (bool, "storage driver options of the host"),
    "mac_address": (bool, "a fixed MAC address: pods get theirs from the cluster"),
    "security_opt": (
        lambda v: any(not str(o).startswith("no-new-privileges") for o in v or ()),
        "security profiles (seccomp, AppArmor, SELinux labels) are the host's; every container "
        "already runs with no-new-privileges and the runtime's default seccomp profile",
    ),
}
# Keys with no meaning for a stack (the stack decides it, or no target has it): ignored, with a notice.
IGNORED = {
    "pull_policy": "images are built here or run by immutable reference",
    "logging": "logs go to the target's default (docker logs, kubectl logs)",
    "domainname": "the target's DNS domain is used",
    "dns": "the target's DNS servers are used (service names must resolve)",
    "dns_search": "the target's DNS search domains are used",
    "dns_opt": "the target's resolver options are used",
    "mem_reservation": "the memory request equals the limit",
    "mem_swappiness": "containers get no swap beyond their memory limit",
    "memswap_limit": "containers get no swap beyond their memory limit",
    "oom_kill_disable": "the kernel's OOM killer stays on",
    "oom_score_adj": "the target sets OOM scores by priority",
    "cpu_shares": "CPU is set by cpus / deploy.resources",
    "cpu_quota": "CPU is set by cpus / deploy.resources",
    "cpu_period": "CPU is set by cpus / deploy.resources",
    "cpuset": "CPU is set by cpus / deploy.resources",
    "cpu_count": "CPU is set by cpus / deploy.resources",
    "cpu_percent": "CPU is set by cpus / deploy.resources",
    "cpu_rt_runtime": "CPU is set by cpus / deploy.resources",
    "cpu_rt_period": "CPU is set by cpus / deploy.resources",
    "blkio_config": "block I/O weights are the host's",
    "pids_limit": "the target's process limits apply",
    "group_add": "the workload's group is its user's gid",
    "attach": "logs are followed by `make logs`",
    "post_start": "lifecycle hooks are not mapped",
    "pre_stop": "lifecycle hooks are not mapped",
}
# develop.watch actions `make dev` has: the others (restart, sync+exec) rebuild instead.
WATCH_ACTIONS = ("sync", "sync+restart", "rebuild")
# Set by the loader, or mapped elsewhere (profiles are applied and env files merged into `environment` by the loader).
HANDLED_ELSEWHERE = ("name", "profiles", "env_file", "environment", "scale", "mem_limit", "cpus", "annotations")
DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns)")
SECONDS_PER_UNIT = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
DIRECTORY_FILES = 64
LOOPBACK = (None, "", "127.0.0.1", "localhost", "::1")
ANY_ADDRESS = ("0.0.0.0", "::")


def seconds(duration: Any) -> Optional[int]:
    """A Go duration as compose-go writes it (`1m30s`, `500ms`) in whole seconds, at least 1."""
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return max(1, math.ceil(duration / 1e9))  # nanoseconds
    parts = DURATION_PART.findall(duration) if isinstance(duration, str) else []
    if not parts or "".join(n + u for n, u in parts) != duration:
        return None
    return max(1, math.ceil(sum(float(number) * SECONDS_PER_UNIT[unit] for number, unit in parts)))


def mebibytes(size: Any) -> Optional[int]:
    """A byte count as compose-go writes it (a decimal string or a number) in MiB, rounded up."""
    text = str(size)
    return math.ceil(int(text) / 2**20) if text.isdigit() else None


def dns_name(name: str) -> str:
    """A Compose name (`db_data`, `Front`) as a DNS label the targets accept (`db-data`, `front`)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (label if label[:1].isalpha() else f"x-{label}")[:32].rstrip("-")
