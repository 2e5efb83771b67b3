"""The production rules as pure functions: `check(resource_type, props) -> [violation messages]`.

`props` are a resource's inputs as the engine hands them to a policy pack: camelCase property
names (`readOnly`, `securityOpts`, `spec.template.spec.containers`), plain dicts and lists in
tests, read-only Mapping/Sequence proxies under the engine. The checks only read through `[]`,
`.get` and iteration, so a value still unknown during a preview raises the pack's
UnknownValueError and the engine reports that the policy could not run yet.

No Pulumi import here: `__main__.py` turns each check into a ResourceValidationPolicy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Iterator, NamedTuple, Optional

DOCKER_CONTAINER = "docker:index/container:Container"

# Where each Kubernetes workload type keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
# Long-running workloads: the ones that serve traffic and need probes.
SERVING_WORKLOADS = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet",
)

_DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_ROOT_USERS = ("", "0", "root")


# -- reading props -------------------------------------------------------------------------------


def _get(value: Any, *path: str) -> Any:
    """value[path...] or None when any step is missing or not an object."""
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _items(value: Any) -> list:
    """The elements of a list, or [] for anything else (None, a string, an object)."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return []


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def _positive(value: Any) -> bool:
    """A number above zero (docker memory/cpus), given as a number or a numeric string."""
    if isinstance(value, bool) or value is None:
        return False
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _set(value: Any) -> bool:
    """A Kubernetes quantity that is present and not zero."""
    if value is None or isinstance(value, bool):
        return False
    text = str(value).strip()
    return bool(text) and not re.fullmatch(r"0+(\.0*)?[a-zA-Z]*", text)


class Container(NamedTuple):
    label: str
    """How messages name it, e.g. `container "web"` or `init container "migrate"`."""
    spec: Mapping
    init: bool


def pod_spec(resource_type: str, props: Mapping) -> Optional[Mapping]:
    path = POD_SPEC_PATHS.get(resource_type)
    if path is None:
        return None
    spec = _get(props, *path)
    return spec if isinstance(spec, Mapping) else None


def containers(pod: Optional[Mapping]) -> Iterator[Container]:
    """The containers of a pod spec (none when the resource has no pod spec)."""
    if pod is None:
        return
    for key, init in (("initContainers", True), ("containers", False)):
        for index, spec in enumerate(_items(_get(pod, key))):
            if not isinstance(spec, Mapping):
                continue
            name = spec.get("name") or f"#{index}"
            yield Container(f'{"init container" if init else "container"} "{name}"', spec, init)


# -- the rules -----------------------------------------------------------------------------------


def image_problem(image: Any, allow_local_id: bool = True) -> Optional[str]:
    """Why `image` is not an immutable reference, or None when it is."""
    if not isinstance(image, str) or not image:
        return "has no image"
    if _DIGEST_REF.match(image) or (allow_local_id and _IMAGE_ID.match(image)):
        return None
    if "@" in image:
        return f"image {image!r} has a malformed digest: expected <repository>@sha256:<64 hex digits>"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return (
            f"image {image!r} has no tag, which means the mutable :latest: pin it by digest (<repository>@sha256:...)"
        )
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the mutable tag :latest: pin it by digest (<repository>@sha256:...)"
    return f"image {image!r} uses a tag, which can be moved: pin it by digest (<repository>@sha256:...)"


def check_image_pinned(resource_type: str, props: Mapping) -> list[str]:
    """Images are pinned by digest (repo@sha256:...) or, on Docker, by local image ID (sha256:...)."""
    if resource_type == DOCKER_CONTAINER:
        problem = image_problem(props.get("image"))
        return [f"container {problem}"] if problem else []
    return [
        f"{c.label} {problem}"
        for c in containers(pod_spec(resource_type, props))
        if (problem := image_problem(c.spec.get("image")))
    ]


def check_resource_limits(resource_type: str, props: Mapping) -> list[str]:
    """Every container has a CPU and a memory limit."""
    if resource_type == DOCKER_CONTAINER:
        problems = []
        if not _positive(props.get("memory")):
            problems.append("container has no memory limit (set `memory`, in MB)")
        if not _positive(props.get("cpus")):
            problems.append("container has no CPU limit (set `cpus`)")
        return problems
    problems = []
    for c in containers(pod_spec(resource_type, props)):
        limits = _get(c.spec, "resources", "limits")
        missing = [kind for kind in ("cpu", "memory") if not _set(_get(limits, kind))]
        if missing:
            problems.append(f"{c.label} has no {' and no '.join(missing)} limit (resources.limits.{missing[0]})")
    return problems


def check_health_probes(resource_type: str, props: Mapping) -> list[str]:
    """Serving containers (with ports) have readiness and liveness probes; published Docker containers a
    health check."""
    if resource_type == DOCKER_CONTAINER:
        if not _items(props.get("ports")):
            return []
        tests = _items(_get(props, "healthcheck", "tests"))
        if not tests or str(tests[0]).upper() == "NONE":
            return ["container publishes ports but has no healthcheck (healthcheck.tests)"]
        return []
    if resource_type not in SERVING_WORKLOADS:
        return []
    problems = []
    for c in containers(pod_spec(resource_type, props)):
        if c.init or not _items(c.spec.get("ports")):  # a worker without ports serves nothing to probe
            continue
        missing = [
            probe
            for probe in ("readinessProbe", "livenessProbe")
            if not (isinstance(c.spec.get(probe), Mapping) and len(c.spec.get(probe)) > 0)
        ]
        if missing:
            problems.append(f"{c.label} has no {' and no '.join(missing)}")
    return problems


def docker_user_problem(user: Any) -> Optional[str]:
    if not isinstance(user, str) or not user.strip():
        return "container runs as the image's default user: set `user` to a non-root uid[:gid]"
    name = user.strip().split(":", 1)[0]
    if name in _ROOT_USERS:
        return f"container runs as root (user {user!r}): set `user` to a non-root uid[:gid]"
    return None


def prepares_a_volume(resource_type: str, props: Mapping) -> bool:
    """The step that makes a new Docker volume writable by its workload's user (the engine creates it
    owned by root; Kubernetes has fsGroup instead) runs as root, but it is one `chown <uid>:<gid> <path>`
    with CHOWN as its only capability, no network and no restart. Only the rules on root and capabilities
    spare it."""
    entrypoint = [str(arg) for arg in _items(props.get("entrypoints"))]
    return (
        resource_type == DOCKER_CONTAINER
        and len(entrypoint) == 3
        and entrypoint[0] == "chown"
        and not _items(props.get("command"))
        and [str(cap).upper() for cap in _items(_get(props.get("capabilities"), "adds"))] == ["CHOWN"]
        and props.get("networkMode") == "none"
        and _is_false(props.get("mustRun"))
        and not _items(props.get("ports"))
    )


def check_non_root(resource_type: str, props: Mapping) -> list[str]:
    """Containers run as a non-root user: runAsNonRoot true and runAsUser not 0 (pod or container
    securityContext, the container's winning); on Docker, `user` set and not root/0."""
    if prepares_a_volume(resource_type, props):
        return []
    if resource_type == DOCKER_CONTAINER:
        problem = docker_user_problem(props.get("user"))
        return [problem] if problem else []
    pod = pod_spec(resource_type, props)
    if pod is None:
        return []
    pod_context = pod.get("securityContext")
    problems = []
    for c in containers(pod):
        context = c.spec.get("securityContext")

        def effective(key: str) -> Any:
            own = _get(context, key)
            return own if own is not None else _get(pod_context, key)

        if not _is_true(effective("runAsNonRoot")):
            problems.append(f"{c.label} does not set runAsNonRoot: true (pod or container securityContext)")
        user = effective("runAsUser")
        if user is not None and not isinstance(user, bool) and str(user).strip() in ("0", "0.0"):
            problems.append(f"{c.label} runs as root (runAsUser: 0)")
    return problems


def check_not_privileged(resource_type: str, props: Mapping) -> list[str]:
    """No privileged containers and no privilege escalation (allowPrivilegeEscalation: false; on
    Docker, privileged not true and the no-new-privileges security option)."""
    if resource_type == DOCKER_CONTAINER:
        problems = []
        if _is_true(props.get("privileged")):
            problems.append("container is privileged")
        options = [str(option).replace("=", ":") for option in _items(props.get("securityOpts"))]
        if not any(option in ("no-new-privileges", "no-new-privileges:true") for option in options):
            problems.append("container may gain privileges: add security option no-new-privileges:true")
        return problems
    problems = []
    for c in containers(pod_spec(resource_type, props)):
        context = c.spec.get("securityContext")
        if _is_true(_get(context, "privileged")):
            problems.append(f"{c.label} is privileged (securityContext.privileged: true)")
        if not _is_false(_get(context, "allowPrivilegeEscalation")):
            problems.append(f"{c.label} does not set securityContext.allowPrivilegeEscalation: false")
    return problems


def check_read_only_root(resource_type: str, props: Mapping) -> list[str]:
    """The root file system is read-only (Docker `readOnly`; Kubernetes readOnlyRootFilesystem)."""
    if resource_type == DOCKER_CONTAINER:
        return [] if _is_true(props.get("readOnly")) else ["container has a writable root file system (readOnly: true)"]
    return [
        f"{c.label} has a writable root file system (securityContext.readOnlyRootFilesystem: true)"
        for c in containers(pod_spec(resource_type, props))
        if not _is_true(_get(c.spec, "securityContext", "readOnlyRootFilesystem"))
    ]


def _capability_problems(label: str, dropped: Any, added: Any) -> list[str]:
    problems = []
    if "ALL" not in [str(cap).upper() for cap in _items(dropped)]:
        problems.append(f"{label} keeps the default capabilities: drop ALL")
    if _items(added):
        problems.append(f"{label} adds capabilities {', '.join(map(str, _items(added)))}")
    return problems


def check_capabilities(resource_type: str, props: Mapping) -> list[str]:
    """Every Linux capability is dropped and none is added back."""
    if prepares_a_volume(resource_type, props):
        return _capability_problems("container", _get(props.get("capabilities"), "drops"), None)
    if resource_type == DOCKER_CONTAINER:
        capabilities = props.get("capabilities")
        return _capability_problems("container", _get(capabilities, "drops"), _get(capabilities, "adds"))
    problems = []
    for c in containers(pod_spec(resource_type, props)):
        capabilities = _get(c.spec, "securityContext", "capabilities")
        problems += _capability_problems(c.label, _get(capabilities, "drop"), _get(capabilities, "add"))
    return problems


class Rule(NamedTuple):
    name: str
    description: str
    check: Callable[[str, Mapping], list[str]]


RULES: tuple[Rule, ...] = (
    Rule(
        "no-mutable-image-tags",
        "Container images must be pinned by digest (repository@sha256:...) or a local image ID, never a tag or :latest.",
        check_image_pinned,
    ),
    Rule("resource-limits-required", "Every container must have CPU and memory limits.", check_resource_limits),
    Rule(
        "health-probes-required",
        "Serving containers must have readiness and liveness probes (a healthcheck on Docker containers that publish ports).",
        check_health_probes,
    ),
    Rule(
        "non-root-containers",
        "Containers must run as a non-root user (runAsNonRoot: true and runAsUser not 0; Docker: user set, not root).",
        check_non_root,
    ),
    Rule(
        "no-privileged-containers",
        "Containers must not be privileged nor able to escalate privileges.",
        check_not_privileged,
    ),
    Rule(
        "read-only-root-filesystem",
        "Containers must have a read-only root file system (writable paths are volumes or tmpfs).",
        check_read_only_root,
    ),
    Rule("no-added-capabilities", "Containers must drop every Linux capability and add none back.", check_capabilities),
)

CHECKED_TYPES = (DOCKER_CONTAINER, *POD_SPEC_PATHS)


def runs_nothing(resource_type: str, props: Mapping) -> bool:
    """A Docker container created but never started (such as a secret-files carrier) runs nothing:
    no rule applies to it."""
    return resource_type == DOCKER_CONTAINER and _is_false(props.get("start"))


def violations(resource_type: str, props: Mapping) -> dict[str, list[str]]:
    """Every rule's messages for one resource (rules without a violation are left out)."""
    if runs_nothing(resource_type, props):
        return {}
    found = {rule.name: rule.check(resource_type, props) for rule in RULES}
    return {name: messages for name, messages in found.items() if messages}
