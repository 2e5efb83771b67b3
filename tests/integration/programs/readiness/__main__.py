"""Services and jobs of one image, each with its own command, on Docker or Kubernetes, each
watched by its readiness check the way the app's components wire them: the provider's own wait
off, the check depending on the workload, dependants of a job on the job's check.

Config (namespace `readiness`): target, image, readyTimeout, jobs {name: {command}}, services
{name: {command, health?, after?: job}}; on Kubernetes registryServer, registryUsername and the
secret registryPassword for the image pull secret.
"""

import base64
import json

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components.readiness import CheckArgs, DockerWorkload, JobCheck, KubernetesWorkload, RolloutCheck

config = pulumi.Config()
target = config.require("target")
image = config.require("image")
ready_timeout = config.get_float("readyTimeout") or 60
prefix = f"rd-{pulumi.get_stack()}"
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def docker_job(name: str, command: list[str]):
    container = docker.Container(
        name, name=f"{prefix}-{name}", image=image, command=command, restart="no", must_run=False
    )
    return container, DockerWorkload(container=container.name), container.id


def docker_service(name: str, command: list[str], health, after: list[pulumi.Resource]):
    container = docker.Container(
        name,
        name=f"{prefix}-{name}",
        image=image,
        command=command,
        restart="unless-stopped",
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=["CMD", *health], interval="1s", timeout="2s", retries=2, start_period="1s"
        )
        if health
        else None,
        destroy_grace_seconds=1,
        opts=pulumi.ResourceOptions(depends_on=after),
    )
    return container, DockerWorkload(container=container.name), container.id


if target == "kubernetes":
    namespace = k8s.core.v1.Namespace("namespace", metadata={"name": prefix})
    server = config.require("registryServer")
    credentials = pulumi.Output.all(config.require("registryUsername"), config.require_secret("registryPassword"))
    pull_secret = k8s.core.v1.Secret(
        "pull-secret",
        metadata={"namespace": namespace.metadata.name},
        type="kubernetes.io/dockerconfigjson",
        string_data={
            ".dockerconfigjson": credentials.apply(
                lambda c: json.dumps(
                    {
                        "auths": {
                            server: {
                                "username": c[0],
                                "password": c[1],
                                "auth": base64.b64encode(f"{c[0]}:{c[1]}".encode()).decode(),
                            }
                        }
                    }
                )
            )
        },
    )
    pod_defaults = {"imagePullSecrets": [{"name": pull_secret.metadata.name}], "terminationGracePeriodSeconds": 1}


def kubernetes_job(name: str, command: list[str]):
    job = k8s.batch.v1.Job(
        name,
        metadata={"namespace": namespace.metadata.name, "annotations": SKIP_AWAIT},
        spec={
            "backoffLimit": 0,
            "template": {
                "spec": {
                    **pod_defaults,
                    "restartPolicy": "Never",
                    "containers": [{"name": name, "image": image, "command": command}],
                }
            },
        },
    )
    return job, KubernetesWorkload(namespace=namespace.metadata.name, name=job.metadata.name), job.metadata.uid


def kubernetes_service(name: str, command: list[str], health, after: list[pulumi.Resource]):
    labels = {"app": name}
    container = {"name": name, "image": image, "command": command}
    if health:
        container["readinessProbe"] = {"exec": {"command": health}, "periodSeconds": 1}
    deployment = k8s.apps.v1.Deployment(
        name,
        metadata={"namespace": namespace.metadata.name, "annotations": SKIP_AWAIT},
        spec={
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels}, "spec": {**pod_defaults, "containers": [container]}},
        },
        opts=pulumi.ResourceOptions(depends_on=after),
    )
    return (
        deployment,
        KubernetesWorkload(namespace=namespace.metadata.name, name=deployment.metadata.name),
        deployment.metadata.generation,
    )


make_job, make_service = (docker_job, docker_service) if target == "docker" else (kubernetes_job, kubernetes_service)

job_checks = {}
for name, spec in (config.get_object("jobs") or {}).items():
    resource, workload, revision = make_job(name, spec["command"])
    job_checks[name] = JobCheck(
        f"{name}-done",
        CheckArgs(name=name, workload=workload, revision=revision, timeout=60),
        opts=pulumi.ResourceOptions(depends_on=[resource]),
    )

for name, spec in (config.get_object("services") or {}).items():
    after = [job_checks[job] for job in spec.get("after", [])]
    resource, workload, revision = make_service(name, spec["command"], spec.get("health"), after)
    RolloutCheck(
        f"{name}-ready",
        CheckArgs(name=name, workload=workload, revision=revision, timeout=ready_timeout),
        opts=pulumi.ResourceOptions(depends_on=[resource]),
    )
