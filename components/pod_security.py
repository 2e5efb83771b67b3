"""The Pod Security Standards level a stack's namespace enforces: the API server itself refuses a pod
beyond it, whoever creates it. `restricted` unless an opt-out of the app spec needs less; each opt-out
lowers it only as far as the pods that use it need.

The lists below are Kubernetes 1.32's (k8s.io/pod-security-admission v0.32, policy/check_*.go), the
version the namespace pins: a cluster upgrade never changes what the stack was computed against.
"""

from __future__ import annotations

from typing import Iterable, Literal

from .spec import WorkloadSpec

PodSecurityLevel = Literal["restricted", "baseline", "privileged"]

LEVELS: tuple[PodSecurityLevel, ...] = ("restricted", "baseline", "privileged")
"""From the most to the least restrictive."""

# Pinned rather than `latest`: `latest` would apply a newer cluster's checks as soon as it is
# upgraded (a sysctl list or a new restricted rule the level below was not computed against), and a
# pod the namespace admitted yesterday could be refused on its next restart. Keep it the cluster's
# minor (versions.env KUBERNETES_VERSION, a unit test checks) and the lists below that version's.
POD_SECURITY_VERSION = "v1.32"

# The only capability `restricted` lets a container add back after dropping ALL.
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# Docker's default set, minus NET_RAW: what `baseline` lets a container add.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# The namespaced sysctls isolated from other pods that `baseline` (and so `restricted`) allows; the
# pods' own net.ipv4.ip_unprivileged_port_start (ports below 1024 for the non-root user) is one.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_wmem",
    }
)


def workload_level(workload: WorkloadSpec) -> PodSecurityLevel:
    """The most restrictive level that admits the workload's pods. Everything else they set (drop ALL,
    no privilege escalation, seccomp RuntimeDefault, emptyDir/configMap/secret/PVC volumes,
    hostAliases, no host ports or namespaces) is within `restricted`; a writable root file system is
    no Pod Security control."""
    capabilities = set(workload.capabilities)
    if not capabilities <= BASELINE_CAPABILITIES or not set(workload.sysctls) <= SAFE_SYSCTLS:
        return "privileged"
    # `user: image` sets no runAsNonRoot (the image's user may be root), which `restricted` requires.
    if workload.user is None or not capabilities <= RESTRICTED_CAPABILITIES:
        return "baseline"
    return "restricted"


def pod_security_level(workloads: Iterable[WorkloadSpec]) -> PodSecurityLevel:
    """The namespace's level: the least restrictive any of its workloads needs."""
    return max((workload_level(w) for w in workloads), key=LEVELS.index, default="restricted")


def namespace_labels(level: PodSecurityLevel) -> dict[str, str]:
    """Pod Security Admission's labels of a namespace at `level`. `enforce` refuses pods; `warn`
    (returned to the client, `pulumi up` shows it) and `audit` also check the pod templates of
    Deployments and Jobs, which `enforce` admits and whose pods it would refuse later, unseen."""
    return {
        f"pod-security.kubernetes.io/{mode}{suffix}": value
        for mode in ("enforce", "warn", "audit")
        for suffix, value in (("", level), ("-version", POD_SECURITY_VERSION))
    }
