"""What a stack really runs, asked of the Docker engine or the cluster: per service the running image
digest, its health or readiness, and where its logs come from."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from docker.errors import APIError, ImageNotFound

from components.conventions import SERVICE_LABEL, STACK_LABEL

from .stack import PROJECT_LABEL, Stack, StackError, repository_of


@dataclass(frozen=True)
class Workload:
    service: str
    state: str
    """healthy / starting / unhealthy / running / exited (0) on Docker; `2/2 ready` on Kubernetes."""
    digests: tuple[str, ...]
    """The registry digests (sha256:...) of the images running now; the image ID when it has none."""


@dataclass(frozen=True)
class LogSource:
    service: str
    lines: Callable[[bool], Iterator[bytes]]
    """Opens the followed log: its last lines (False), or all of it since it started, for a newcomer (True)."""


def _pick_digest(repo_digests: list[str], repository: Optional[str]) -> Optional[str]:
    for reference in repo_digests:
        if repository is None or repository_of(reference) == repository:
            return reference.partition("@")[2]
    return None


class DockerRuntime:
    """The stack's containers: labelled with its name and project, on the engine it runs on."""

    def __init__(self, stack: Stack, outputs: dict, tail: int = 20):
        self.client = stack.docker_client()
        self.images = outputs.get("images") or {}
        # The workloads' containers: the stack's one-shot steps (a volume's owner) carry no service label.
        self.labels = [f"{STACK_LABEL}={stack.name}", f"{PROJECT_LABEL}={stack.project}", SERVICE_LABEL]
        self.tail = tail

    def containers(self):
        return self.client.containers.list(all=True, filters={"label": self.labels})

    def workloads(self) -> list[Workload]:
        rows = []
        for container in self.containers():
            service = container.labels.get(SERVICE_LABEL, container.name)
            state = container.attrs["State"]
            status = state.get("Health", {}).get("Status") or state["Status"]
            if state["Status"] == "exited":
                status = f"exited ({state['ExitCode']})"
            elif state.get("Restarting") or container.attrs.get("RestartCount"):
                status += f", restarted {container.attrs.get('RestartCount', 0)}x"
            image_id = container.attrs["Image"]
            repository = repository_of(self.images[service]) if self.images.get(service) else None
            try:
                digest = _pick_digest(self.client.images.get(image_id).attrs.get("RepoDigests") or [], repository)
            except ImageNotFound:
                digest = None
            rows.append(Workload(service, status, (digest or image_id,)))
        return sorted(rows, key=lambda row: row.service)

    def running(self, service: str) -> list:
        return self.client.containers.list(filters={"label": [*self.labels[:2], f"{SERVICE_LABEL}={service}"]})

    def instances(self, service: str) -> set[str]:
        """The running containers of the service (a restart keeps a container's files, and its ID)."""
        return {container.id for container in self.running(service)}

    def copy_in(self, service: str, archive: bytes, deletes: list[str]) -> set[str]:
        """Unpacks `archive` (paths from /) into each running container of the service and removes
        `deletes`, as `docker cp` does; returns the containers changed."""
        containers = self.running(service)
        for container in containers:
            try:
                container.put_archive("/", archive)
            except APIError as error:
                raise StackError(f"copying into {container.name}: {error.explanation or error}") from error
            if deletes:
                exit_code, output = container.exec_run(["rm", "-f", "--", *deletes])
                if exit_code != 0:
                    raise StackError(f"removing files in {container.name}: {output.decode(errors='replace').strip()}")
        return {container.id for container in containers}

    def restart(self, service: str) -> None:
        """`docker restart`: the process starts again, on the container's own files (the synced ones)."""
        for container in self.running(service):
            try:
                container.restart()
            except APIError as error:
                raise StackError(f"restarting {container.name}: {error.explanation or error}") from error

    def log_sources(self) -> dict[str, LogSource]:
        def opener(container):
            started = datetime.datetime.fromisoformat(container.attrs["State"]["StartedAt"][:19]).replace(
                tzinfo=datetime.timezone.utc
            )
            return lambda everything: container.logs(
                stream=True, follow=True, **({"since": started} if everything else {"tail": self.tail})
            )

        # A restarted container is a new source (its log since that start); a replaced one, too.
        return {
            f"{container.id}@{container.attrs['State']['StartedAt']}": LogSource(
                container.labels.get(SERVICE_LABEL, container.name), opener(container)
            )
            for container in self.client.containers.list(filters={"label": self.labels})
        }


class KubernetesRuntime:
    """The stack's namespace, through kubectl and the stack's kubeconfig and context."""

    def __init__(self, stack: Stack, outputs: dict, tail: int = 20):
        settings = stack.config("kubernetes") or {}
        self.kubectl = ["kubectl"]
        if settings.get("kubeconfig"):
            self.kubectl += ["--kubeconfig", os.path.expanduser(settings["kubeconfig"])]
        if settings.get("context"):
            self.kubectl += ["--context", settings["context"]]
        if not outputs.get("namespace"):
            raise StackError(f"stack {stack.name} exports no namespace")
        self.kubectl += ["--namespace", outputs["namespace"]]
        self.tail = tail
        self.processes: list[subprocess.Popen] = []

    def get(self, kinds: str) -> list[dict]:
        result = subprocess.run([*self.kubectl, "get", kinds, "-o", "json"], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise StackError(f"kubectl get {kinds}: {result.stderr.strip()}")
        return json.loads(result.stdout)["items"]

    def workloads(self) -> list[Workload]:
        items = self.get("deployments,jobs,pods")
        pods = [item for item in items if item["kind"] == "Pod"]
        rows = []
        for item in items:
            if item["kind"] == "Pod":
                continue
            service = item["metadata"].get("labels", {}).get(SERVICE_LABEL, item["metadata"]["name"])
            mine = [pod for pod in pods if pod["metadata"].get("labels", {}).get(SERVICE_LABEL) == service]
            digests = sorted(
                {
                    status["imageID"].rpartition("@")[2]
                    for pod in mine
                    for status in pod["status"].get("containerStatuses") or []
                    if status.get("imageID")
                }
            )
            rows.append(Workload(service, _state(item, mine), tuple(digests)))
        return sorted(rows, key=lambda row: row.service)

    def running_pods(self, service: str) -> list[dict]:
        return [
            pod
            for pod in self.get("pods")
            if pod["metadata"].get("labels", {}).get(SERVICE_LABEL) == service
            and pod["status"].get("phase") == "Running"
            and not pod["metadata"].get("deletionTimestamp")
        ]

    @staticmethod
    def container_id(pod: dict, service: str) -> Optional[str]:
        """The ID of the service's container in the pod: a restarted container is a new one, started
        from its image (what was synced into the old one is gone), so it has a new ID."""
        statuses = pod["status"].get("containerStatuses") or []
        return next((status.get("containerID") for status in statuses if status["name"] == service), None)

    def instances(self, service: str) -> set[str]:
        return {self.container_id(pod, service) or "" for pod in self.running_pods(service)} - {""}

    def copy_in(self, service: str, archive: bytes, deletes: list[str]) -> set[str]:
        """`tar -x` of `archive` (paths from /) in the service's container of each running pod, as the
        container's user (as `kubectl cp` does), then `rm -f` of `deletes`; returns the containers changed."""
        commands = [(["tar", "-x", "-f", "-", "-C", "/"], archive)]
        if deletes:
            commands.append((["rm", "-f", "--", *deletes], b""))
        changed = set()
        for pod in self.running_pods(service):
            name = pod["metadata"]["name"]
            for command, given in commands:
                result = subprocess.run(
                    [*self.kubectl, "exec", "-i", name, "-c", service, "--", *command],
                    input=given,
                    capture_output=True,
                    timeout=60,
                )
                if result.returncode != 0:
                    raise StackError(f"{command[0]} in pod {name}: {result.stderr.decode(errors='replace').strip()}")
            changed.add(self.container_id(pod, service) or name)
        return changed

    def log_sources(self) -> dict[str, LogSource]:
        def opener(pod: str):
            def lines(everything: bool) -> Iterator[bytes]:
                tail = [] if everything else [f"--tail={self.tail}"]
                process = subprocess.Popen(
                    [*self.kubectl, "logs", "--follow", "--all-containers", *tail, pod],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                self.processes.append(process)
                yield from process.stdout

            return lines

        return {
            pod["metadata"]["uid"]: LogSource(
                pod["metadata"].get("labels", {}).get(SERVICE_LABEL, pod["metadata"]["name"]),
                opener(pod["metadata"]["name"]),
            )
            for pod in self.get("pods")
            if any(
                "running" in status.get("state", {}) or "terminated" in status.get("state", {})
                for status in pod["status"].get("containerStatuses") or []
            )
        }

    def close(self) -> None:
        for process in self.processes:
            process.terminate()


def _state(item: dict, pods: list[dict]) -> str:
    status = item.get("status", {})
    if item["kind"] == "Job":
        if status.get("succeeded"):
            return "completed"
        return "failed" if status.get("failed") else "running"
    wanted, ready = item["spec"].get("replicas", 1), status.get("readyReplicas", 0)
    state = f"{ready}/{wanted} ready"
    if status.get("updatedReplicas", 0) < wanted or status.get("replicas", 0) > wanted:
        state += ", rolling out"
    # Why pods are not ready: CrashLoopBackOff, ImagePullBackOff, ...
    reasons = sorted(
        {
            container["state"]["waiting"]["reason"]
            for pod in pods
            for container in pod["status"].get("containerStatuses") or []
            if container.get("state", {}).get("waiting", {}).get("reason") not in (None, "ContainerCreating")
        }
    )
    return state + (f" ({', '.join(reasons)})" if reasons else "")


def runtime_for(stack: Stack, outputs: dict, tail: int = 20):
    return (DockerRuntime if outputs["target"] == "docker" else KubernetesRuntime)(stack, outputs, tail=tail)
