"""What every Kubernetes object of a stack shares: its metadata (server-side apply included), DNS-safe
names, the network labels pods join NetworkPolicies by, and the first release's aliases."""

from __future__ import annotations

import hashlib
import re
from typing import Mapping, Optional, Sequence

import pulumi
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from .conventions import NETWORK_LABEL_PREFIX, SERVICE_LABEL, STACK_LABEL
from .upgrades import KUBERNETES_COMPONENT, target_child

# The provider's own wait would report a crash loop only after its timeout, without logs, and keep
# `up` running meanwhile: the workloads' readiness checks (components/readiness.py) wait instead.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


# Every object takes over, on apply, the fields it declares that another Server-Side Apply field
# manager owns: the stack is their source of truth. The provider names a manager per create, so an
# object adopted after an interrupted run (pulumi import) would otherwise refuse the next change of
# every field its first manager still owns. (The manager keeps the provider's name: a new one on the
# objects of an earlier release fails their update with "spec.selector: Required value".)
SERVER_SIDE_APPLY = {"pulumi.com/patchForce": "true"}


def object_metadata(
    name: Optional[str],
    namespace: Optional[pulumi.Input[str]],
    labels: Mapping[str, str],
    annotations: Optional[Mapping[str, str]] = None,
) -> ObjectMetaArgs:
    annotations = {**(annotations or {}), **SERVER_SIDE_APPLY}
    return ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels), annotations=annotations)


def pod_selector(stack_labels: Mapping[str, str], service: str) -> dict[str, str]:
    """The labels that select `service`'s pods (its Deployment's selector, its Service's)."""
    return {SERVICE_LABEL: service, STACK_LABEL: stack_labels[STACK_LABEL]}


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def dns_label(name: str, taken: Sequence[str] = ()) -> str:
    """`name` itself when it is a DNS label (as Kubernetes names are) not `taken`; else a DNS-safe form of it
    with a hash of it, so that two names never meet (Compose names may hold `_` and `.`)."""
    if _DNS_LABEL.match(name) and name not in taken:
        return name
    safe = re.sub(r"[^a-z0-9]+", "-", name.lower())[:55].strip("-")
    return "-".join(filter(None, (safe, hashlib.sha256(name.encode()).hexdigest()[:6])))


def network_label(network: str) -> str:
    """The label of the pods that join `network`: its NetworkPolicy selects them by it."""
    return NETWORK_LABEL_PREFIX + dns_label(network)


def first_release_aliases(first_release_app: Optional[pulumi.Resource], first_release_name: str) -> list[pulumi.Alias]:
    return target_child(first_release_app, KUBERNETES_COMPONENT, first_release_name)
