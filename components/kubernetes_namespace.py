"""AppNamespace: the stack's namespace (with the Pod Security level its app needs), its registry pull
Secret and app Secret, a NetworkPolicy that closes it to other namespaces and one per app network."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, LabelSelectorRequirementArgs
from pulumi_kubernetes.networking.v1 import NetworkPolicyIngressRuleArgs, NetworkPolicyPeerArgs, NetworkPolicySpecArgs

from .conventions import STACK_LABEL
from .kubernetes_objects import dns_label, first_release_aliases, network_label, object_metadata
from .pod_security import PodSecurityLevel, namespace_labels

APP_SECRETS = "app-secrets"
PULL_SECRET = "registry-credentials"
# The NetworkPolicy that closes the namespace to the other namespaces' pods.
SAME_NAMESPACE_ONLY = "same-namespace-only"


def _dockerconfigjson(server: str, username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": token}}})


@dataclass(kw_only=True)
class PullCredentials:
    server: str
    username: str
    password: pulumi.Input[str]


@dataclass(kw_only=True)
class AppNamespaceArgs:
    namespace: str
    labels: Mapping[str, str]
    registry: Optional[PullCredentials] = None
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Secret config key -> value, for every key a workload uses."""
    networks: Sequence[str] = ()
    """The app's (Compose) networks, each isolated by a NetworkPolicy; none: the namespace is one network."""
    pod_security: PodSecurityLevel = "restricted"
    """The Pod Security Standards level the namespace enforces (components/pod_security.py)."""
    first_release_app: Optional[pulumi.Resource] = None
    """The app whose resources the first release declared in one KubernetesDeployment: they keep their URNs."""


class AppNamespace(pulumi.ComponentResource):
    """Outputs: `name`, `pull_secrets` (names for imagePullSecrets), `secrets_name` (or None);
    `secrets_revision()` tells the workloads when a Secret they read was changed."""

    name: pulumi.Output[str]
    pull_secrets: list
    secrets_name: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: AppNamespaceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:AppNamespace", name, None, opts)
        app = args.first_release_app
        # A changed level only relabels the namespace (an update): its name, and so everything in it, stays.
        namespace = k8s.core.v1.Namespace(
            name,
            metadata=object_metadata(args.namespace, None, {**args.labels, **namespace_labels(args.pod_security)}),
            opts=pulumi.ResourceOptions(parent=self, aliases=first_release_aliases(app, "namespace")),
        )
        self.name = namespace.metadata.name

        def in_namespace(first_release_name: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, depends_on=[namespace], aliases=first_release_aliases(app, first_release_name)
            )

        self.pull_secrets = []
        # The provider replaces a Secret whose data changes (a new UID), but running pods keep what
        # they read at start: the UIDs go into the pod templates, which then roll.
        self._pull_secret_uids: list[pulumi.Output[str]] = []
        self._secrets_uid: Optional[pulumi.Output[str]] = None
        if args.registry is not None:
            registry = args.registry
            pull_secret = k8s.core.v1.Secret(
                f"{name}-{PULL_SECRET}",
                metadata=object_metadata(PULL_SECRET, self.name, args.labels),
                type="kubernetes.io/dockerconfigjson",
                string_data={
                    ".dockerconfigjson": pulumi.Output.secret(registry.password).apply(
                        lambda password: _dockerconfigjson(registry.server, registry.username, password)
                    )
                },
                opts=in_namespace(PULL_SECRET),
            )
            self.pull_secrets = [pull_secret.metadata.name]
            self._pull_secret_uids = [pull_secret.metadata.uid]

        self.secrets_name = None
        if args.secrets:
            app_secrets = k8s.core.v1.Secret(
                f"{name}-{APP_SECRETS}",
                metadata=object_metadata(APP_SECRETS, self.name, args.labels),
                string_data=dict(args.secrets),
                opts=in_namespace(APP_SECRETS),
            )
            self.secrets_name = app_secrets.metadata.name
            self._secrets_uid = app_secrets.metadata.uid
        self._close_to_other_namespaces(name, args.networks, args.labels)
        for network in args.networks:
            self._isolate(name, network, args.labels)
        self.register_outputs({"name": self.name, "pull_secrets": self.pull_secrets, "secrets_name": self.secrets_name})

    def _close_to_other_namespaces(self, name: str, networks: Sequence[str], labels: Mapping[str, str]) -> None:
        """The namespace takes connections from its own pods only, as a Docker stack's network does
        (published ports excepted: KubernetesService). NetworkPolicies add up, so this one selects
        the pods of no isolated network only: a network's own policy keeps its pods from the rest of
        the namespace."""
        outside_networks = LabelSelectorArgs(
            match_expressions=[
                LabelSelectorRequirementArgs(key=network_label(network), operator="DoesNotExist")
                for network in networks
            ]
            or None
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-{SAME_NAMESPACE_ONLY}",
            metadata=object_metadata(SAME_NAMESPACE_ONLY, self.name, labels),
            spec=NetworkPolicySpecArgs(
                pod_selector=outside_networks,
                policy_types=["Ingress"],
                ingress=[NetworkPolicyIngressRuleArgs(from_=[NetworkPolicyPeerArgs(pod_selector=LabelSelectorArgs())])],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _isolate(self, name: str, network: str, labels: Mapping[str, str]) -> None:
        """Compose's isolation of a network: its pods take connections from its own pods only (and on
        their published ports from anywhere: KubernetesService). The kubelet's probes come from the
        node, which NetworkPolicies always let through. The cluster enforces this (its network plugin,
        or on the local cluster kube-router's firewall); one that does not leaves the pods reachable
        from the whole cluster, as without NetworkPolicies."""
        members = LabelSelectorArgs(match_labels={network_label(network): "true", STACK_LABEL: labels[STACK_LABEL]})
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-{network}",
            metadata=object_metadata(f"network-{dns_label(network)}", self.name, labels),
            spec=NetworkPolicySpecArgs(
                pod_selector=members,
                policy_types=["Ingress"],
                ingress=[NetworkPolicyIngressRuleArgs(from_=[NetworkPolicyPeerArgs(pod_selector=members)])],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def secrets_revision(self, reads_app_secrets: bool) -> Optional[pulumi.Output[str]]:
        """Changes whenever a Secret that a workload's pods read (to pull, and `secrets_name` when it
        reads it) is replaced; None when they read none."""
        uids = [*self._pull_secret_uids, *([self._secrets_uid] if reads_app_secrets and self._secrets_uid else [])]
        # A preview of a new Secret has no UID yet (None): the pods are new too.
        return pulumi.Output.all(*uids).apply(lambda known: ",".join(uid or "" for uid in known)) if uids else None
