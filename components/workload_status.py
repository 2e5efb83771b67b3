"""What a container, a Deployment or a Job is doing, read from the objects Docker and Kubernetes report.

Pure functions over `docker inspect` output and Kubernetes API objects (as JSON dicts), so the
rules that decide "ready", "still starting" and "failed" are unit-testable on captured objects;
components/readiness.py polls the live objects and turns a failure or a timeout into the error
`pulumi up` reports.

The rules match on both targets: a service is ready when its health check (readiness probe)
passes, or, without one, when its process has kept running; it has failed when it crashed twice
(a crash loop: the first crash may be a dependency still starting), when its image cannot be
pulled (still, after the kubelet's retry) or its container cannot be created. A job has finished
when it exited 0 and failed when it exited otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

READY, PENDING, FAILED = "ready", "pending", "failed"

CRASHES_TO_FAIL = 2
"""Crashes after which a service counts as crash-looping rather than waiting for a dependency."""

# Container waiting reasons that only a change of the spec (or of the registry) fixes.
FATAL_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
# Of those, a failed pull counts only if the kubelet's own retry (10 s later) fails too: a node that
# has not yet read a new pod's pull Secret pulls once without it.
PULL_FAILURE_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff"})
PULL_RETRY_SECONDS = 30
"""How long a pull failure must last to count: the kubelet's first retry, and a pull, fit in it."""


@dataclass(frozen=True)
class Observation:
    state: str
    """READY, PENDING or FAILED."""
    detail: str
    """What the workload is doing, e.g. "crash-looping: exited with code 1 (2 crashes)"."""
    probed: bool = True
    """Whether readiness was confirmed by a health check: without one, READY must hold a while."""
    subject: Optional[str] = None
    """The container (Docker) or pod (Kubernetes) the detail is about, whose logs explain it."""
    container: Optional[str] = None
    """The container in the pod `subject`."""
    previous: bool = False
    """The explaining logs are those of the container's previous run (it crashed and waits to restart)."""
    lasting: float = 0
    """A failure counts only once it has lasted this many seconds (the platform may still recover it)."""


def ready(detail: str, probed: bool = True) -> Observation:
    return Observation(READY, detail, probed=probed)


def pending(detail: str, **where) -> Observation:
    return Observation(PENDING, detail, **where)


def failed(detail: str, **where) -> Observation:
    return Observation(FAILED, detail, **where)


# -- Docker --------------------------------------------------------------------------------------


def _docker_exit(state: dict) -> str:
    if state.get("OOMKilled"):
        return f"was killed for running out of memory (exit code {state.get('ExitCode')})"
    text = f"exited with code {state.get('ExitCode')}"
    return f"{text}: {state['Error']}" if state.get("Error") else text


def docker_service_status(inspect: dict, last_exit_code: Optional[int] = None) -> Observation:
    """A service's container (restart policy unless-stopped), from `docker inspect`; a running
    container that has restarted no longer shows how it exited last: `last_exit_code` does."""
    name = inspect.get("Name", "").lstrip("/")
    state = inspect.get("State", {})
    status = state.get("Status")
    health = state.get("Health")
    crashes = inspect.get("RestartCount", 0) + (1 if status in ("restarting", "exited", "dead") else 0)
    where = {"subject": name}
    if state.get("Error") and status != "running":  # the engine could not start it (e.g. no such executable)
        return failed(f"cannot start: {state['Error']}", **where)
    if status == "restarting":
        if crashes >= CRASHES_TO_FAIL:
            return failed(f"crash-looping: {_docker_exit(state)} ({crashes} crashes)", **where)
        return pending(f"restarting: {_docker_exit(state)}", **where)
    if status in ("exited", "dead"):
        return failed(f"stopped: {_docker_exit(state)}", **where)
    if status != "running":
        return pending(f"container is {status}", **where)
    if crashes >= CRASHES_TO_FAIL:
        exit_text = f"exited with code {last_exit_code}" if last_exit_code is not None else "keeps exiting"
        return failed(f"crash-looping: {exit_text} ({crashes} crashes)", **where)
    if health is None:
        return ready("running (no health check)", probed=False)
    if health.get("Status") == "healthy":
        return ready("healthy")
    checks = health.get("Log") or []
    last = (checks[-1].get("Output") or "").strip() if checks else ""
    return pending(f"health check {health.get('Status')}" + (f": {last}" if last else ""), **where)


def docker_job_status(inspect: dict) -> Observation:
    """A job's container (run once, restart policy no), from `docker inspect`."""
    name = inspect.get("Name", "").lstrip("/")
    state = inspect.get("State", {})
    status = state.get("Status")
    if status in ("exited", "dead"):
        if state.get("ExitCode") == 0 and not state.get("OOMKilled"):
            return ready("completed")
        return failed(_docker_exit(state), subject=name)
    if state.get("Error"):
        return failed(f"cannot start: {state['Error']}", subject=name)
    return pending("running" if status == "running" else f"container is {status}", subject=name)


# -- Kubernetes ----------------------------------------------------------------------------------


def _termination(terminated: dict) -> str:
    reason = terminated.get("reason")
    if reason == "OOMKilled":
        return f"was killed for running out of memory (exit code {terminated.get('exitCode')})"
    text = f"exited with code {terminated.get('exitCode')}"
    message = (terminated.get("message") or "").strip()
    return f"{text}: {message}" if message else text


def _container_problem(pod_name: str, status: dict, service: bool, init: bool = False) -> Optional[Observation]:
    """A container status that fails its pod, or None. A service's container that stops counts as a
    crash (an init container only when it fails); so does each restart."""
    state, last = status.get("state", {}), status.get("lastState", {})
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason")
    stopped = state.get("terminated")
    if init and stopped and stopped.get("exitCode") == 0:
        stopped = None
    where = {"subject": pod_name, "container": status.get("name")}
    if reason in FATAL_WAITING_REASONS:
        message = (waiting.get("message") or "").strip()
        lasting = PULL_RETRY_SECONDS if reason in PULL_FAILURE_REASONS else 0
        return failed(f"{reason}" + (f": {message}" if message else ""), **where, lasting=lasting)
    crashes = status.get("restartCount", 0) + (1 if stopped or reason == "CrashLoopBackOff" else 0)
    if service and crashes >= CRASHES_TO_FAIL:
        exit_state = stopped or last.get("terminated")
        exit_text = _termination(exit_state) if exit_state else "keeps exiting"
        # The logs that explain it are those of the run that ended, unless it is still the current one.
        return failed(f"crash-looping: {exit_text} ({crashes} crashes)", **where, previous=not stopped)
    return None


def _statuses(pod: dict) -> list[tuple[dict, bool]]:
    """(container status, is an init container) of every container of the pod."""
    status = pod.get("status", {})
    return [(container, True) for container in status.get("initContainerStatuses") or []] + [
        (container, False) for container in status.get("containerStatuses") or []
    ]


def pod_status(pod: dict) -> Observation:
    """One pod of a service's Deployment."""
    name = pod["metadata"]["name"]
    status = pod.get("status", {})
    if status.get("phase") == "Failed":  # evicted, or rejected by the node
        return failed(f"pod {name} failed: {status.get('reason')}: {status.get('message')}", subject=name)
    for container, init in _statuses(pod):
        problem = _container_problem(name, container, service=True, init=init)
        if problem:
            return problem
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    if conditions.get("Ready", {}).get("status") == "True":
        return ready(f"pod {name} ready")
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return pending(f"pod {name} not scheduled: {scheduled.get('message')}", subject=name)
    for container in status.get("containerStatuses") or []:
        state = container.get("state", {})
        where = {"subject": name, "container": container.get("name")}
        if "waiting" in state:
            waiting = state["waiting"]
            return pending(f"pod {name}: {waiting.get('reason')} {waiting.get('message') or ''}".strip(), **where)
        if "terminated" in state:
            return pending(f"pod {name}: container {container['name']} {_termination(state['terminated'])}", **where)
        if not container.get("ready"):
            return pending(f"pod {name} running, not ready (readiness probe failing)", **where)
    return pending(f"pod {name} {status.get('phase', 'Pending').lower()}", subject=name)


def _probed(deployment: dict) -> bool:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return all(container.get("readinessProbe") for container in containers)


def newest_replica_set(deployment: dict, replica_sets: list[dict]) -> Optional[dict]:
    """The ReplicaSet of the Deployment's current revision (what `kubectl rollout status` watches)."""
    revision = deployment["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision")
    uid = deployment["metadata"]["uid"]
    for replica_set in replica_sets:
        metadata = replica_set["metadata"]
        owned = any(owner.get("uid") == uid for owner in metadata.get("ownerReferences") or [])
        if owned and revision and metadata.get("annotations", {}).get("deployment.kubernetes.io/revision") == revision:
            return replica_set
    return None


def rollout_status(deployment: dict, new_pods: list[dict]) -> Observation:
    """A Deployment's rollout, given the pods of its newest ReplicaSet (those not being deleted)."""
    spec, status = deployment["spec"], deployment.get("status", {})
    probed = _probed(deployment)
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return pending("waiting for the Deployment controller to see the new spec")
    pods = [pod_status(pod) for pod in new_pods]
    for observation in pods:
        if observation.state == FAILED:
            return observation
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return failed(f"rollout stalled: {condition.get('message')}")
    wanted = spec.get("replicas", 1)
    updated, available = status.get("updatedReplicas", 0), status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if updated >= wanted and total <= updated and available >= updated:
        return ready(f"{available} of {wanted} replicas available", probed=probed)
    not_ready = next((observation for observation in pods if observation.state != READY), None)
    progress = f"{min(available, updated)} of {wanted} new replicas available"
    if total > updated and updated >= wanted:
        progress += f", {total - updated} old replicas terminating"
    if not_ready is None:
        return pending(progress)
    return pending(
        f"{progress}; {not_ready.detail}",
        subject=not_ready.subject,
        container=not_ready.container,
        previous=not_ready.previous,
    )


def job_status(job: dict, pods: list[dict]) -> Observation:
    """A Job, given its pods: complete, failed (with the failed pod's exit), or still running."""
    conditions = {c["type"]: c for c in job.get("status", {}).get("conditions") or [] if c.get("status") == "True"}
    newest_first = sorted(pods, key=lambda pod: pod["metadata"].get("creationTimestamp", ""), reverse=True)
    if "Complete" in conditions:
        return ready("completed")
    if "Failed" in conditions:
        condition = conditions["Failed"]
        for pod in newest_first:
            for container, _ in _statuses(pod):
                terminated = container.get("state", {}).get("terminated") or container.get("lastState", {}).get(
                    "terminated"
                )
                if terminated and terminated.get("exitCode", 0) != 0:
                    return failed(
                        f"{_termination(terminated)} ({condition.get('reason')})",
                        subject=pod["metadata"]["name"],
                        container=container.get("name"),
                    )
        return failed(
            f"{condition.get('reason')}: {condition.get('message')}",
            subject=newest_first[0]["metadata"]["name"] if newest_first else None,
        )
    for pod in newest_first:
        for container, init in _statuses(pod):
            problem = _container_problem(pod["metadata"]["name"], container, service=False, init=init)
            if problem:
                return problem
    if newest_first:
        return pending(
            f"running (pod {newest_first[0]['metadata']['name']})", subject=newest_first[0]["metadata"]["name"]
        )
    return pending("waiting for its pod")


# -- the error `pulumi up` shows ------------------------------------------------------------------


def failure_message(
    kind: str, name: str, observation: Observation, timeout: Optional[float], logs: list[str], events: list[str] = ()
) -> str:
    """The error for a failed workload, or (with `timeout`) for one not ready in time; `logs` are
    its last log lines, `events` the cluster's recent warnings about it."""
    if timeout is None:
        headline = f"{kind} {name} failed: {observation.detail}"
    else:
        goal = "complete" if kind == "job" else "become ready"
        headline = f"{kind} {name} did not {goal} within {timeout:g}s: {observation.detail}"
    lines = [headline]
    if events:
        lines.append("recent events:")
        lines += [f"    {event}" for event in events]
    source = observation.subject or name
    if observation.container and observation.container != source:
        source = f"{source}, container {observation.container}"
    if observation.previous:
        source += ", previous run"
    if logs:
        lines.append(f"last log lines ({source}):")
        lines += [f"    {line}" for line in logs]
    else:
        lines.append(f"no log output ({source})")
    return "\n".join(lines)
