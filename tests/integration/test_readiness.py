"""The readiness checks through the real Pulumi engine, Docker engine and cluster: a crash-looping
service or a failing job fails `pulumi up` fast, naming it with its exit reason and log line; a
healthy service passes; a job's dependant starts only after the job completed.

The program (programs/readiness) declares containers, Deployments and Jobs of the base image with
the test's commands, each watched by its check as the app's components wire them.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import datetime
from pathlib import Path

import docker
import pytest
from pulumi import automation as auto

from support.testing import ProjectCopy, free_port, kubectl_json

PROGRAM = Path(__file__).parent / "programs" / "readiness"
BASE_IMAGE = "cloudservice/base:bookworm"
FAILS_WITHIN = 90
"""Seconds within which a crash-looping service or a failing job must have failed `up` (issue #10)."""


def python(code: str) -> list[str]:
    return ["python3", "-c", code]


CRASHING = python("import sys; print('fatal: cannot bind to port 80', flush=True); sys.exit(1)")
# A service stops when asked: as PID 1, a process without a SIGTERM handler waits out the grace period.
RUNNING = python(
    "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
    "print('serving', flush=True); time.sleep(3600)"
)
FAILING_JOB = python("import sys; print('migration 0007 failed: column exists', flush=True); sys.exit(3)")
GOOD_JOB = python("import time; time.sleep(2); print('migrated', flush=True)")


@pytest.fixture(scope="module")
def program(tmp_path_factory, pulumi_cli) -> ProjectCopy:
    copy = ProjectCopy(tmp_path_factory.mktemp("readiness"))
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROGRAM / name, copy.directory / name)
    return copy


@pytest.fixture
def new_stack(program):
    """Makes stacks of the readiness program with the given config; destroys them afterwards."""
    stacks = []

    def make(secrets=None, **config) -> auto.Stack:
        name = f"it-rd-{uuid.uuid4().hex[:6]}"
        stack = auto.create_stack(
            name,
            work_dir=str(program.directory),
            opts=auto.LocalWorkspaceOptions(work_dir=str(program.directory), env_vars=program.env),
        )
        values = {
            f"readiness:{key}": auto.ConfigValue(value if isinstance(value, str) else json.dumps(value))
            for key, value in config.items()
        }
        values.update(
            {f"readiness:{key}": auto.ConfigValue(value, secret=True) for key, value in (secrets or {}).items()}
        )
        stack.set_all_config(values)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


def up_fails(stack: auto.Stack) -> tuple[str, float]:
    """`pulumi up` must fail: returns its output and how long it took."""
    start = time.monotonic()
    with pytest.raises(auto.CommandError) as error:
        stack.up()
    return str(error.value), time.monotonic() - start


def timestamp(value: str) -> datetime:
    """Docker's and Kubernetes' RFC 3339 times (Docker's with nanoseconds)."""
    seconds, _, fraction = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{seconds}.{(fraction or '0')[:6]}+00:00")


# -- Docker ----------------------------------------------------------------------------------------


def container(docker_client, stack: auto.Stack, name: str):
    return docker_client.containers.get(f"rd-{stack.name}-{name}")


def test_docker_crash_loop_fails_up_fast_with_its_log_line(new_stack, docker_client):
    stack = new_stack(target="docker", image=BASE_IMAGE, services={"web": {"command": CRASHING}})
    output, seconds = up_fails(stack)
    assert seconds < FAILS_WITHIN, f"up took {seconds:.0f}s to fail"
    assert "service web failed: crash-looping: exited with code 1" in output
    assert "fatal: cannot bind to port 80" in output


def test_docker_service_never_healthy_fails_at_the_ready_timeout(new_stack, docker_client):
    stack = new_stack(
        target="docker", image=BASE_IMAGE, readyTimeout="8", services={"web": {"command": RUNNING, "health": ["false"]}}
    )
    output, seconds = up_fails(stack)
    assert "service web did not become ready within 8s: health check unhealthy" in output
    assert "serving" in output
    assert seconds < FAILS_WITHIN


def test_docker_failing_job_fails_up_and_leaves_its_dependant_alone(new_stack, docker_client):
    stack = new_stack(
        target="docker",
        image=BASE_IMAGE,
        jobs={"migrate": {"command": FAILING_JOB}},
        services={"api": {"command": RUNNING, "after": ["migrate"]}},
    )
    output, seconds = up_fails(stack)
    assert "job migrate failed: exited with code 3" in output
    assert "migration 0007 failed: column exists" in output
    assert seconds < FAILS_WITHIN
    with pytest.raises(docker.errors.NotFound):
        container(docker_client, stack, "api")


def test_docker_job_runs_to_completion_before_its_dependant_starts(new_stack, docker_client):
    stack = new_stack(
        target="docker",
        image=BASE_IMAGE,
        jobs={"migrate": {"command": GOOD_JOB}},
        services={
            "api": {"command": RUNNING, "health": ["true"], "after": ["migrate"]},
            "worker": {"command": RUNNING},
        },
    )
    stack.up()
    job = container(docker_client, stack, "migrate").attrs["State"]
    api = container(docker_client, stack, "api").attrs
    assert job["Status"] == "exited" and job["ExitCode"] == 0
    assert timestamp(api["Created"]) >= timestamp(job["FinishedAt"])
    assert api["State"]["Health"]["Status"] == "healthy"
    assert container(docker_client, stack, "worker").attrs["State"]["Status"] == "running"


# -- Kubernetes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry_image(docker_client, registry) -> str:
    """The base image in the local registry, by digest: the cluster pulls it from there (with a
    pull secret), as does a Docker stack."""
    repository = f"{registry.server}/cloudservice/readiness-test"
    docker_client.images.get(BASE_IMAGE).tag(repository, "bookworm")
    for line in docker_client.images.push(
        repository,
        "bookworm",
        stream=True,
        decode=True,
        auth_config={"username": registry.username, "password": registry.password},
    ):
        assert "error" not in line, line
    return next(
        d for d in docker_client.images.get(f"{repository}:bookworm").attrs["RepoDigests"] if d.startswith(repository)
    )


@pytest.fixture
def cluster_stack(new_stack, registry_image, registry, cluster):
    def make(**config) -> auto.Stack:
        return new_stack(
            target="kubernetes",
            image=registry_image,
            registryServer=registry.server,
            registryUsername=registry.username,
            secrets={"registryPassword": registry.password},
            **config,
        )

    return make


def test_kubernetes_crash_loop_fails_up_fast_with_its_log_line(cluster_stack):
    stack = cluster_stack(services={"web": {"command": CRASHING}})
    output, seconds = up_fails(stack)
    assert seconds < FAILS_WITHIN, f"up took {seconds:.0f}s to fail"
    assert "service web failed: crash-looping: exited with code 1" in output
    assert "fatal: cannot bind to port 80" in output


def test_kubernetes_failing_job_fails_up_and_leaves_its_dependant_alone(cluster_stack):
    stack = cluster_stack(
        jobs={"migrate": {"command": FAILING_JOB}}, services={"api": {"command": RUNNING, "after": ["migrate"]}}
    )
    output, seconds = up_fails(stack)
    assert "job migrate failed: exited with code 3" in output
    assert "migration 0007 failed: column exists" in output
    assert seconds < FAILS_WITHIN
    assert kubectl_json("get", "deployments", "-n", f"rd-{stack.name}")["items"] == []


def test_kubernetes_job_completes_before_its_dependant_rolls_out(cluster_stack):
    stack = cluster_stack(
        jobs={"migrate": {"command": GOOD_JOB}},
        services={"api": {"command": RUNNING, "health": ["true"], "after": ["migrate"]}},
    )
    stack.up()
    namespace = f"rd-{stack.name}"
    [job] = kubectl_json("get", "jobs", "-n", namespace)["items"]
    [deployment] = kubectl_json("get", "deployments", "-n", namespace)["items"]
    assert job["status"]["succeeded"] == 1
    assert timestamp(deployment["metadata"]["creationTimestamp"]) >= timestamp(job["status"]["completionTime"])
    assert deployment["status"]["availableReplicas"] == 1


# -- the app's stack -------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["dev", "staging"])
def test_the_stack_fails_fast_on_a_crash_looping_service(project, registry, registry_image, cluster, template):
    """Issue #10: a crash-looping service fails `up` within 90 s, with its log line in the error
    (the stack's components on the dev stack's Docker engine and the staging stack's cluster)."""
    services = {"web": {"image": registry_image, "command": CRASHING, "port": 8080, "publish": free_port()}}
    stack = project.stack(
        template, config={"services": json.dumps(services)}, secrets={"registryPassword": registry.password}
    )
    try:
        output, seconds = up_fails(stack)
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)
    assert seconds < FAILS_WITHIN, f"up took {seconds:.0f}s to fail"
    assert "service web failed: crash-looping: exited with code 1" in output
    assert "fatal: cannot bind to port 80" in output
