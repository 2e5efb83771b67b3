"""AppNetwork: `docker network create`, declared: the user-defined bridge the services share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_docker as docker


def docker_labels(labels: Mapping[str, str], label_type):
    """Docker resources take labels as a list of {label, value} objects."""
    return [label_type(label=key, value=value) for key, value in sorted(labels.items())]


@dataclass
class AppNetworkArgs:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


class AppNetwork(pulumi.ComponentResource):
    """A user-defined bridge network: services on it find each other by name (Docker's DNS)."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: AppNetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("cloudservice:index:AppNetwork", name, None, opts)
        network = docker.Network(
            name,
            name=args.name,
            driver="bridge",
            labels=docker_labels(args.labels, docker.NetworkLabelArgs),
            # The engine refuses to remove a network while it still tears down the endpoints of the
            # containers just deleted; with dozens of them on a loaded machine (its iptables calls wait
            # for the lock the cluster's firewall holds while it syncs) that outlasts the provider's 30 s.
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=pulumi.CustomTimeouts(delete="3m")),
        )
        self.name = network.name
        self.register_outputs({"name": self.name})
