"""RolloutCheck and JobCheck: `pulumi up` waits for each rollout and job, and fails fast and clearly.

The providers' own waits say little: the Docker provider "container failed to be in healthy state",
the Kubernetes provider a timeout after ten minutes. These Pulumi dynamic resources take that wait
over. Each watches one workload the stack has just created or changed (a container, a Deployment,
a Job) until it is ready or has completed, and fails `pulumi up` as soon as it crash-loops or cannot
start, or once `timeout` seconds have passed, with the service name, the exit reason and the last
log lines. A check re-runs whenever its `revision` changes (the container's ID, the Deployment's
UID and generation, the Job's UID), so on every rollout; what depends on a JobCheck starts only after the
job succeeded. Components turn the providers' own waits off (docker `wait`, Kubernetes
`pulumi.com/skipAwait`) so that these checks are the ones that report.

The checks run in Pulumi's dynamic provider process, which imports this module. Their inputs are
kept in the state: they name things (container, namespace, kubeconfig path) and never carry
credentials; the Docker and Kubernetes clients find those as the providers do (environment,
kubeconfig).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional, Protocol, Union

import pulumi
from pulumi import dynamic

from .conventions import DEFAULT_READY_TIMEOUT
from .workload_status import (
    FAILED,
    READY,
    Observation,
    docker_job_status,
    docker_service_status,
    failed,
    failure_message,
    job_status,
    newest_replica_set,
    pending,
    rollout_status,
)

UNPROBED_SETTLE_SECONDS = 5
"""How long a service without a health check must keep running to count as started."""
CONTAINER_POLL_SECONDS = 0.1
"""A container's state is one inspect over the engine's socket: polled as often as a script running
`docker inspect` in a loop would (a second's poll added up to a second to every container of a chain),
while the engine's events about it cannot be followed."""
CONTAINER_EVENTS_POLL_SECONDS = 1
"""With its events followed, a container is looked at again as soon as it changes (started, died,
health status): the poll only backs them up. 50 checks polling at 0.1 s slowed the engine's starts."""
CLUSTER_POLL_SECONDS = 1
"""A rollout's state is several reads from the API server: once a second."""
LOG_LINES = 20
EVENTS = 3


class ReadinessError(Exception):
    """A workload failed or was not ready in time; the message is what `pulumi up` shows."""


class Watch(Protocol):
    poll_seconds: float

    def observe(self) -> Observation: ...

    def wait(self, seconds: float) -> None:
        """Returns after `seconds`, or sooner once the workload has changed."""

    def logs(self, observation: Observation) -> list[str]:
        """The last log lines of what `observation` is about."""

    def events(self, observation: Observation) -> list[str]:
        """Recent warnings about it (Kubernetes events), oldest first."""

    def timed_out(self) -> None:
        """Called once the timeout has passed."""

    def close(self) -> None:
        """Stops whatever `wait` follows."""


def await_workload(
    workload: Watch,
    kind: str,
    name: str,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Optional[Callable[[float], None]] = None,
) -> Observation:
    """Polls `workload` until it is ready; raises ReadinessError when it fails or `timeout` passes.
    Between polls it waits on the workload (or on `sleep`)."""
    wait = sleep or workload.wait
    deadline = clock() + timeout
    ready_since = failing_since = None
    while True:
        try:
            observation = workload.observe()
        except Exception as error:  # noqa: BLE001 - an engine or API server blip: retry until the deadline
            observation = pending(f"cannot read its status ({error})")
        now = clock()
        if observation.state == FAILED:
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= observation.lasting:
                raise ReadinessError(_explain(workload, kind, name, observation, None))
        else:
            failing_since = None
        pause = workload.poll_seconds
        if observation.state == READY:
            ready_since = now if ready_since is None else ready_since
            settled_at = ready_since + UNPROBED_SETTLE_SECONDS
            if observation.probed or now >= settled_at:
                return observation
            pause = min(pause, settled_at - now)  # a process that keeps running sends no event
        else:
            ready_since = None
            if now >= deadline:
                workload.timed_out()
                raise ReadinessError(_explain(workload, kind, name, observation, timeout))
        wait(pause)


def _explain(workload: Watch, kind: str, name: str, observation: Observation, timeout: Optional[float]) -> str:
    def best_effort(read: Callable[[Observation], list[str]]) -> list[str]:
        try:
            return read(observation)
        except Exception as error:  # noqa: BLE001 - the failure itself matters more than its logs
            return [f"(unavailable: {error})"]

    return failure_message(kind, name, observation, timeout, best_effort(workload.logs), best_effort(workload.events))


# -- the workloads, observed live -----------------------------------------------------------------


class ContainerWatch:
    """A container on a Docker engine (the Docker SDK, as `docker inspect`, `docker events` and
    `docker logs`). Close it to stop following its events."""

    def __init__(self, host: Optional[str], container: str, job: bool, clock: Callable[[], float] = time.time):
        import docker  # only the provider process talks to the engine
        import requests

        self.docker = docker
        self.errors = docker.errors
        # What an engine that does not answer raises: refused, no socket, a timeout (an HTTP error is an answer).
        self.unreachable = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
        self.host = host
        self.container = container
        self.job = job
        self.clock = clock
        self._api: Any = None
        self._exit_code: Optional[int] = None
        """The latest exit code seen: a restarted container's inspect no longer shows it."""
        self._deaths_read_until: Optional[float] = None
        self._changes: Any = None
        """The engine's events about the container, while they are followed."""
        self._changed = threading.Event()

    @property
    def engine(self) -> str:
        """The engine as errors name it: the stack's dockerHost, else DOCKER_HOST, else the default socket."""
        return self.host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    @property
    def api(self) -> Any:
        """The client, made on first use: the SDK asks the engine its API version then, so a check that
        starts while the engine restarts waits for it like any later read."""
        if self._api is None:
            host = self.host
            self._api = (
                self.docker.APIClient(base_url=host, use_ssh_client=host.startswith("ssh://"))
                if host
                else self.docker.from_env().api
            )
        return self._api

    @property
    def poll_seconds(self) -> float:
        return CONTAINER_EVENTS_POLL_SECONDS if self._changes is not None else CONTAINER_POLL_SECONDS

    def wait(self, seconds: float) -> None:
        if self._changes is None:
            time.sleep(seconds)
        elif self._changed.wait(seconds):
            self._changed.clear()

    def close(self) -> None:
        changes, self._changes = self._changes, None
        if changes is not None:
            try:
                changes.close()
            except Exception:  # noqa: BLE001 - e.g. the SDK cannot cancel a stream over SSH: it ends with the process
                pass

    def _follow_changes(self) -> None:
        """Follows the container's events (`docker events --filter container=...`) in a thread, which
        wakes `wait` at each one; until the stream ends (the engine restarted), then again."""
        if self._changes is not None:
            return
        changes = self._changes = self.api.events(filters={"container": self.container}, decode=True)

        def note_changes() -> None:
            try:
                for _ in changes:
                    self._changed.set()
            except Exception:  # noqa: BLE001 - closed, or the engine went away: polled from here on
                pass
            if self._changes is changes:
                self._changes = None
            self._changed.set()

        threading.Thread(target=note_changes, name=f"events of {self.container}", daemon=True).start()

    def observe(self) -> Observation:
        try:
            self._follow_changes()  # before the inspect, so that no change after it goes unnoticed
        except Exception:  # noqa: BLE001 - the events only save polls: the inspect says what is wrong
            pass
        try:
            inspect = self.api.inspect_container(self.container)
        except self.errors.NotFound:
            return failed(f"container {self.container} does not exist")
        except self.errors.APIError:
            raise
        except (*self.unreachable, self.errors.DockerException) as error:
            # Stopped or restarting: the container may well come back by its restart policy.
            return pending(f"the Docker engine at {self.engine} does not answer ({error})")
        if self.job:
            return docker_job_status(inspect)
        state = inspect["State"]
        if state.get("Status") in ("restarting", "exited", "dead"):
            self._exit_code = state.get("ExitCode")
        restarted_and_running = state.get("Running") and inspect.get("RestartCount")
        if restarted_and_running:  # the only time the exit code is not in the inspect
            self._read_deaths(inspect)
        return docker_service_status(inspect, self._exit_code if restarted_and_running else None)

    def _read_deaths(self, inspect: dict) -> None:
        """Keeps the exit code of the container's latest `die` event. The engine keeps only its last
        256 events, so each read asks only for those since the previous one, up to now exactly (the
        SDK would cut a datetime to the whole second, leaving out a death of this second)."""
        since = self._deaths_read_until or datetime.fromisoformat(inspect["Created"]).timestamp()
        until = self.clock()
        deaths = self.api.events(
            since=f"{since:.6f}",
            until=f"{until:.6f}",
            filters={"container": inspect["Id"], "event": "die"},
            decode=True,
        )
        codes = [event["Actor"]["Attributes"].get("exitCode") for event in deaths]
        if codes and codes[-1] is not None:
            self._exit_code = int(codes[-1])
        self._deaths_read_until = until

    def logs(self, observation: Observation) -> list[str]:
        return self.api.logs(self.container, tail=LOG_LINES).decode(errors="replace").splitlines()

    def events(self, observation: Observation) -> list[str]:
        return []

    def timed_out(self) -> None:
        """A job's container is stopped, as Kubernetes stops a Job at its activeDeadlineSeconds."""
        if self.job:
            try:
                self.api.stop(self.container, timeout=10)
            except self.errors.APIError:  # it just exited, or was removed: nothing left to stop
                pass


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


class KubernetesCluster:
    """The API server the kubeconfig points at (the `kubernetes` client; objects read as plain JSON)."""

    def __init__(self, kubeconfig: Optional[str], context: Optional[str]):
        from kubernetes import client, config  # only the provider process talks to the cluster

        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.api_error = client.exceptions.ApiException
        self.core, self.apps, self.batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)

    @staticmethod
    def read(call: Callable, *args, **kwargs) -> Any:
        return json.loads(call(*args, _preload_content=False, **kwargs).data)

    def get(self, call: Callable, name: str, namespace: str) -> Optional[dict]:
        """One object, or None when it does not exist."""
        try:
            return self.read(call, name, namespace)
        except self.api_error as error:
            if error.status == 404:
                return None
            raise

    def pods(self, namespace: str, labels: dict[str, str]) -> list[dict]:
        """The pods with these labels, except those being deleted."""
        items = self.read(self.core.list_namespaced_pod, namespace, label_selector=_selector(labels))["items"]
        return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]

    def logs(self, namespace: str, observation: Observation) -> list[str]:
        if not observation.subject:
            return []
        text = self.core.read_namespaced_pod_log(
            observation.subject,
            namespace,
            container=observation.container,
            previous=observation.previous,
            tail_lines=LOG_LINES,
        )
        return text.splitlines()

    def events(self, namespace: str, observation: Observation) -> list[str]:
        if not observation.subject:
            return []
        items = self.read(
            self.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.name={observation.subject},type=Warning",
        )["items"]
        # "Back-off restarting failed container" repeats what the failure already says.
        items = [event for event in items if event.get("reason") != "BackOff"]
        items.sort(key=lambda event: event.get("lastTimestamp") or event.get("eventTime") or "")
        return [f"{event.get('reason')}: {event.get('message', '').strip()}" for event in items[-EVENTS:]]


def deployment_rollout(cluster: KubernetesCluster, namespace: str, name: str) -> Observation:
    """A Deployment's rollout, as `kubectl rollout status` follows it, plus its new pods' state."""
    deployment = cluster.get(cluster.apps.read_namespaced_deployment, name, namespace)
    if deployment is None:
        return failed(f"Deployment {namespace}/{name} does not exist")
    labels = deployment["spec"]["selector"].get("matchLabels", {})
    replica_sets = cluster.read(cluster.apps.list_namespaced_replica_set, namespace, label_selector=_selector(labels))
    newest = newest_replica_set(deployment, replica_sets["items"])
    pods = []
    if newest is not None:
        template_hash = newest["metadata"]["labels"]["pod-template-hash"]
        pods = cluster.pods(namespace, {**labels, "pod-template-hash": template_hash})
    status = rollout_status(deployment, pods)
    if status.state != READY:
        return status
    waiting = service_routing(cluster, namespace, name, pods)
    return pending(waiting) if waiting else status


def service_routing(
    cluster: KubernetesCluster,
    namespace: str,
    name: str,
    pods: list[dict],
    connect: Callable = socket.create_connection,
) -> Optional[str]:
    """What a ready rollout still waits for before the workloads that depend on it can connect: None
    once its Service (of the same name; a worker has none) routes to the new pods. Ready pods come
    before their Service's EndpointSlices list them, and those before kube-proxy's rules: a job that
    connected at once got "No route to host". So: every new pod ready in an EndpointSlice, and a
    connection through the Service's address succeeds, from here, where this machine is on the
    cluster's service network (a refused or unroutable connection waits; one that times out means
    the service network is not reachable from here, and the EndpointSlices have to do)."""
    service = cluster.get(cluster.core.read_namespaced_service, name, namespace)
    if service is None:
        return None
    slices = cluster.read(
        cluster.discovery.list_namespaced_endpoint_slice, namespace, label_selector=f"kubernetes.io/service-name={name}"
    )["items"]
    routed = {
        address
        for endpoint_slice in slices
        for endpoint in endpoint_slice.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint.get("addresses") or []
    }
    ready_pods = {
        pod["status"].get("podIP")
        for pod in pods
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions") or [])
    }
    missing = ready_pods - routed
    if missing:
        return f"Service {name} does not route to every ready pod yet ({len(missing)} of {len(ready_pods)} missing)"
    address, port = (
        service["spec"].get("clusterIP"),
        next((p["port"] for p in service["spec"].get("ports") or [] if p.get("protocol", "TCP") == "TCP"), None),
    )
    if not address or address == "None" or port is None:
        return None
    try:
        connect((address, port), timeout=1).close()
    except (ConnectionRefusedError, OSError) as error:
        if isinstance(error, TimeoutError) or getattr(error, "errno", None) == errno.ENETUNREACH:
            return None
        return f"Service {name} ({address}:{port}) does not accept connections yet ({error.strerror or error})"
    return None


def job_run(cluster: KubernetesCluster, namespace: str, name: str) -> Observation:
    """A Job and its pods."""
    job = cluster.get(cluster.batch.read_namespaced_job, name, namespace)
    if job is None:
        return failed(f"Job {namespace}/{name} does not exist")
    return job_status(job, cluster.pods(namespace, job["spec"]["selector"].get("matchLabels", {})))


class ClusterWatch:
    """One object of a namespace, observed by `read` (deployment_rollout or job_run), and the logs and
    warnings of its pods."""

    poll_seconds = CLUSTER_POLL_SECONDS

    def __init__(
        self,
        cluster: KubernetesCluster,
        namespace: str,
        name: str,
        read: Callable[[KubernetesCluster, str, str], Observation],
    ):
        self.cluster, self.namespace, self.name, self.read = cluster, namespace, name, read

    def observe(self) -> Observation:
        return self.read(self.cluster, self.namespace, self.name)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        """Nothing is followed: a cluster's objects are polled."""

    def logs(self, observation: Observation) -> list[str]:
        return self.cluster.logs(self.namespace, observation)

    def events(self, observation: Observation) -> list[str]:
        return self.cluster.events(self.namespace, observation)

    def timed_out(self) -> None:
        """The cluster stops a Job itself (activeDeadlineSeconds); a rollout stays as it is."""


# -- the dynamic resources ------------------------------------------------------------------------


@dataclass
class DockerWorkload:
    """A container, by name, on the engine at `host` (default: the local one, DOCKER_HOST)."""

    container: pulumi.Input[str]
    host: Optional[str] = None


@dataclass
class KubernetesWorkload:
    """A Deployment (RolloutCheck) or Job (JobCheck) in a namespace of the cluster the kubeconfig
    (default: KUBECONFIG or ~/.kube/config) and context point at."""

    namespace: pulumi.Input[str]
    name: pulumi.Input[str]
    kubeconfig: Optional[str] = None
    context: Optional[str] = None


@dataclass
class CheckArgs:
    name: str
    """The service or job as the app spec names it (in error messages)."""
    workload: Union[DockerWorkload, KubernetesWorkload]
    revision: pulumi.Input[Any]
    """Changes with every rollout: the container's ID, the Deployment's generation, the Job's UID."""
    timeout: float = DEFAULT_READY_TIMEOUT


# Inputs whose change means another rollout to watch (a changed timeout alone re-checks nothing).
_WATCHED = ("name", "target", "dockerHost", "container", "kubeconfig", "context", "namespace", "workload", "revision")


def _inputs(args: CheckArgs) -> dict[str, Any]:
    workload = args.workload
    common = {
        "name": args.name,
        "revision": pulumi.Output.from_input(args.revision).apply(str),
        "timeout": args.timeout,
    }
    if isinstance(workload, DockerWorkload):
        return {**common, "target": "docker", "dockerHost": workload.host, "container": workload.container}
    return {
        **common,
        "target": "kubernetes",
        "kubeconfig": workload.kubeconfig,
        "context": workload.context,
        "namespace": workload.namespace,
        "workload": workload.name,
    }


def _workload(kind: str, props: dict[str, Any]) -> Watch:
    if props["target"] == "docker":
        return ContainerWatch(props.get("dockerHost"), props["container"], job=kind == "job")
    cluster = KubernetesCluster(props.get("kubeconfig"), props.get("context"))
    return ClusterWatch(
        cluster, props["namespace"], props["workload"], deployment_rollout if kind == "service" else job_run
    )


class _CheckProvider(dynamic.ResourceProvider):
    """Creating or updating a check waits for its workload; deleting it deletes nothing."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return dynamic.DiffResult(changes=any(olds.get(key) != news.get(key) for key in _WATCHED))

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        self._await(props)
        return dynamic.CreateResult(id_=uuid.uuid4().hex, outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        self._await(news)
        return dynamic.UpdateResult(outs=news)

    def _await(self, props: dict[str, Any]) -> None:
        with contextlib.closing(_workload(self.kind, props)) as workload:
            await_workload(workload, self.kind, props["name"], float(props["timeout"]))


class RolloutCheck(dynamic.Resource, module="cloudservice", name="RolloutCheck"):
    """Done when the service's new container is running (and healthy) or its Deployment's new
    ReplicaSet is fully available; fails on a crash loop, an image that cannot be pulled, or after
    `timeout` seconds."""

    def __init__(self, resource_name: str, args: CheckArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(_CheckProvider("service"), resource_name, _inputs(args), opts)


class JobCheck(dynamic.Resource, module="cloudservice", name="JobCheck"):
    """Done when the job's container exited 0 or its Job completed; fails with the exit code and
    last log lines otherwise, or after `timeout` seconds."""

    def __init__(self, resource_name: str, args: CheckArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(_CheckProvider("job"), resource_name, _inputs(args), opts)
