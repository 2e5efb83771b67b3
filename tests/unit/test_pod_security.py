"""components/pod_security.py: the Pod Security Standards level each opt-out of the app spec needs, and
the namespace labels that enforce it."""

from __future__ import annotations

import pytest
from harness import spec_of

from components.pod_security import namespace_labels, pod_security_level, workload_level


def k8s_spec(name: str = "web", **changes):
    return spec_of(name, target="kubernetes", **changes)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"readOnly": False},  # no Pod Security control
        {"capabilities": ["NET_BIND_SERVICE"]},
        {"port": 80},  # the pod's own net.ipv4.ip_unprivileged_port_start is a safe sysctl
        {"sysctls": {"net.ipv4.tcp_keepalive_time": "600", "net.ipv4.ip_local_port_range": "1024 65000"}},
        {"sysctls": {"net.ipv4.tcp_rmem": "4096 87380 6291456"}},  # safe since 1.32
        {"extraHosts": {"legacy.local": "10.0.0.5"}, "shmSize": 64, "tmpfs": ["/run"], "ephemeral": ["/cache"]},
    ],
    ids=["default", "writable-root", "net-bind-service", "low-port", "safe-sysctls", "safe-since-1.32", "scratch"],
)
def test_what_restricted_admits_keeps_it(changes):
    assert workload_level(k8s_spec(**changes)) == "restricted"


@pytest.mark.parametrize(
    "changes",
    [
        {"user": "image"},  # may be root: restricted requires runAsNonRoot
        {"capabilities": ["CHOWN", "SETUID", "SETGID"]},
        {"capabilities": ["NET_BIND_SERVICE", "KILL"]},
        {"capabilities": ["AUDIT_WRITE", "DAC_OVERRIDE", "FOWNER", "FSETID", "MKNOD", "SETFCAP", "SETPCAP"]},
        {"capabilities": ["SYS_CHROOT"], "user": "image"},
    ],
    ids=["user-image", "chown-setuid-setgid", "plus-kill", "the-rest-of-baseline", "both"],
)
def test_root_or_baseline_capabilities_need_baseline(changes):
    assert workload_level(k8s_spec(**changes)) == "baseline"


@pytest.mark.parametrize(
    "changes",
    [
        {"capabilities": ["NET_RAW"]},  # in Docker's default set, not in baseline's
        {"capabilities": ["CHOWN", "NET_ADMIN"]},
        {"capabilities": ["SYS_ADMIN"]},
        {"sysctls": {"net.core.somaxconn": "1024"}},
        {"sysctls": {"net.ipv4.tcp_syncookies": "1", "kernel.msgmax": "65536"}, "user": "image"},
    ],
    ids=["net-raw", "net-admin", "sys-admin", "unsafe-sysctl", "one-unsafe-sysctl"],
)
def test_other_capabilities_or_unsafe_sysctls_need_privileged(changes):
    assert workload_level(k8s_spec(**changes)) == "privileged"


def test_the_namespace_takes_the_least_restrictive_level_of_its_workloads():
    restricted, baseline, privileged = k8s_spec(), k8s_spec(user="image"), k8s_spec("redis", capabilities=["NET_ADMIN"])
    assert pod_security_level([]) == "restricted"
    assert pod_security_level([restricted, k8s_spec("redis")]) == "restricted"
    assert pod_security_level([restricted, baseline]) == "baseline"
    assert pod_security_level([baseline, privileged, restricted]) == "privileged"


def test_labels_enforce_warn_and_audit_the_level_at_the_pinned_version():
    assert namespace_labels("baseline") == {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "v1.32",
        "pod-security.kubernetes.io/warn": "baseline",
        "pod-security.kubernetes.io/warn-version": "v1.32",
        "pod-security.kubernetes.io/audit": "baseline",
        "pod-security.kubernetes.io/audit-version": "v1.32",
    }
