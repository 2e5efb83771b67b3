"""Where the first release put what later releases moved, in one place: every resource that moved keeps
its URN through an alias, so upgrading a running stack updates it in place (a replaced volume, PVC or
Service would lose data or an address).

The first release declared one app per stack, named `<project>-<stack>`, with one component per target
holding every service (DockerDeployment "docker", KubernetesDeployment "kubernetes") and bare child
names. Only that app's resources claim the old URNs: a URN holds its parents' types, not their names,
so a second app in the stack must not.
"""

from __future__ import annotations

from typing import Optional

import pulumi

DOCKER_COMPONENT = ("docker", "cloudservice:index:DockerDeployment")
KUBERNETES_COMPONENT = ("kubernetes", "cloudservice:index:KubernetesDeployment")


def is_first_release_app(name: str) -> bool:
    return name == f"{pulumi.get_project()}-{pulumi.get_stack()}"


def app_child(first_release: bool, name: str) -> list[pulumi.Alias]:
    """A direct child of the app that the first release named `name`."""
    return [pulumi.Alias(name=name)] if first_release else []


def target_child(app: Optional[pulumi.Resource], component: tuple[str, str], name: str) -> list[pulumi.Alias]:
    """A child of the first release's target component (`component`: DOCKER_COMPONENT or
    KUBERNETES_COMPONENT), named `name` there; none for an app other than the first release's."""
    if app is None:
        return []
    return [pulumi.Alias(name=name, parent=pulumi.create_urn(*component, parent=app))]
