"""Readiness checks: how container, pod, Deployment and Job states read (on objects captured from a
real Docker engine and cluster), the error `pulumi up` shows, the waiting loop, and the check
resources as the engine receives them."""

from __future__ import annotations

import base64
import errno
import json
import os
import queue
import threading
import time
from datetime import datetime

import dill
import docker
import pulumi
import pytest
from harness import deploy, docker_config, kubernetes_config
from recorder import CONTAINER, DEPLOYMENT, JOB, JOB_CHECK, ROLLOUT_CHECK, run, uid, unwrap_secrets

from components import readiness, workload_status
from components.readiness import (
    CheckArgs,
    DockerWorkload,
    JobCheck,
    KubernetesWorkload,
    ReadinessError,
    RolloutCheck,
    await_workload,
    service_routing,
)
from components.workload_status import (
    FAILED,
    PENDING,
    READY,
    Observation,
    docker_job_status,
    docker_service_status,
    failed,
    failure_message,
    job_status,
    newest_replica_set,
    pod_status,
    rollout_status,
)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name: str) -> dict:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


DOCKER = fixture("docker_inspect.json")
KUBERNETES = fixture("kubernetes_objects.json")


# -- Docker ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "captured,state,probed,detail",
    [
        ("service_started", READY, False, "running (no health check)"),
        ("service_running_no_healthcheck", READY, False, "running (no health check)"),
        # One crash is forgiven: a dependency may still have been starting.
        ("service_running_after_one_crash", READY, False, "running (no health check)"),
        ("service_crash_looping", FAILED, True, "crash-looping: exited with code 3 (2 crashes)"),
        ("service_health_starting", PENDING, True, "health check starting"),
        ("service_healthy", READY, True, "healthy"),
        ("service_unhealthy", PENDING, True, "health check unhealthy: connection refused on 8080"),
        ("job_exit4", FAILED, True, "stopped: exited with code 4"),
    ],
)
def test_docker_service_status(captured, state, probed, detail):
    observation = docker_service_status(DOCKER[captured])
    assert (observation.state, observation.probed, observation.detail) == (state, probed, detail)


def test_a_running_container_that_crashed_twice_is_crash_looping_with_its_last_exit_code():
    restarted = DOCKER["service_running_after_two_crashes"]
    assert docker_service_status(restarted, last_exit_code=3).detail == "crash-looping: exited with code 3 (2 crashes)"
    assert docker_service_status(restarted).detail == "crash-looping: keeps exiting (2 crashes)"


CREATED = "2026-11-28T05:13:20.000000000Z"
CREATED_AT = datetime.fromisoformat(CREATED).timestamp()


def observed(captured: str) -> dict:
    return {**DOCKER[captured], "Id": "c0ffee", "Created": CREATED}


class RestartingContainer:
    """The engine's side of a restarting container: its inspect, one per poll (the last repeats), and
    its `die` events as the engine filters them by time (the SDK sends a datetime as whole seconds)."""

    def __init__(self, *inspects: dict, deaths: tuple[tuple[float, int], ...] = ()):
        self.inspects = list(inspects)
        self.deaths = deaths
        self.asked: list[tuple[float, float]] = []

    def inspect_container(self, container: str) -> dict:
        return self.inspects.pop(0) if len(self.inspects) > 1 else self.inspects[0]

    def events(self, since=None, until=None, filters=None, decode=None):
        if until is None:  # followed live: nothing happens in these tests
            return Stream()

        def seconds(bound) -> float:
            return docker.utils.datetime_to_timestamp(bound) if isinstance(bound, datetime) else float(bound)

        self.asked.append((seconds(since), seconds(until)))
        return [
            {"Actor": {"Attributes": {"exitCode": str(code)}}}
            for at, code in self.deaths
            if seconds(since) <= at <= seconds(until) and filters == {"container": "c0ffee", "event": "die"}
        ]


class Stream:
    """An engine's event stream as the SDK returns it: blocks until an event is put or it is closed."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self.closed = False

    def __iter__(self):
        while (event := self.queue.get()) is not None:
            yield event

    def close(self):
        self.closed = True
        self.queue.put(None)


class FollowedContainer:
    """A running container (no health check) whose events the watch follows."""

    def __init__(self):
        self.streams: list[Stream] = []

    def inspect_container(self, container: str) -> dict:
        return observed("service_running_no_healthcheck")

    def events(self, filters, decode):
        assert filters == {"container": "web"}
        self.streams.append(Stream())
        return self.streams[-1]


def test_a_container_is_looked_at_again_as_soon_as_it_changes_and_polled_only_as_a_backup():
    engine = FollowedContainer()
    watch = readiness.ContainerWatch(None, "web", job=False)
    watch._api = engine
    watch.observe()
    assert watch.poll_seconds == readiness.CONTAINER_EVENTS_POLL_SECONDS
    threading.Timer(0.2, engine.streams[0].queue.put, [{"status": "health_status: healthy"}]).start()
    started = time.monotonic()
    watch.wait(30)
    assert time.monotonic() - started < 10
    watch.close()
    assert engine.streams[0].closed


def test_events_the_engine_refuses_leave_the_container_polled():
    engine = FollowedContainer()

    def refuse(filters, decode):
        raise docker.errors.APIError("500 Server Error: events unavailable")

    engine.events = refuse
    watch = readiness.ContainerWatch(None, "web", job=False)
    watch._api = engine
    assert watch.observe().detail == "running (no health check)"
    assert watch.poll_seconds == readiness.CONTAINER_POLL_SECONDS


def test_a_stream_that_cannot_be_cancelled_does_not_fail_the_check():
    """The Docker SDK cannot cancel a stream over SSH (a stack's `dockerHost: ssh://...`)."""

    class Uncancellable(Stream):
        def close(self):
            raise docker.errors.DockerException("Cancellable streams not supported for the SSH protocol")

    engine = FollowedContainer()
    engine.streams.append(Uncancellable())
    engine.events = lambda filters, decode: engine.streams[0]
    watch = readiness.ContainerWatch(None, "web", job=False)
    watch._api = engine
    watch.observe()
    watch.close()
    engine.streams[0].queue.put(None)  # what the process's end does to the thread


def test_when_the_events_stop_the_container_is_polled_and_followed_again():
    """The stream ends when the engine restarts: the watch polls as a script would, then follows anew."""
    engine = FollowedContainer()
    watch = readiness.ContainerWatch(None, "web", job=False)
    watch._api = engine
    watch.observe()
    engine.streams[0].close()
    watch.wait(30)
    assert watch.poll_seconds == readiness.CONTAINER_POLL_SECONDS
    watch.observe()
    assert len(engine.streams) == 2 and watch.poll_seconds == readiness.CONTAINER_EVENTS_POLL_SECONDS
    watch.close()


def watching(engine: RestartingContainer, now: float) -> readiness.ContainerWatch:
    watch = readiness.ContainerWatch(None, "cap-crash", job=False, clock=lambda: now)
    watch._api = engine
    return watch


def test_a_container_that_died_twice_within_this_second_is_crash_looping_with_its_exit_code():
    engine = RestartingContainer(
        observed("service_running_after_two_crashes"), deaths=((CREATED_AT + 10.1, 3), (CREATED_AT + 10.3, 3))
    )
    observation = watching(engine, now=CREATED_AT + 10.5).observe()
    assert observation.detail == "crash-looping: exited with code 3 (2 crashes)"


def test_an_exit_code_seen_while_restarting_outlives_the_engine_forgetting_its_events():
    """The engine keeps its last 256 events: on a busy engine the `die` events may be gone."""
    first_crash = {**observed("service_crash_looping"), "RestartCount": 0}
    engine = RestartingContainer(first_crash, observed("service_running_after_two_crashes"))
    watch = watching(engine, now=CREATED_AT + 10)
    assert watch.observe().detail == "restarting: exited with code 3"
    assert watch.observe().detail == "crash-looping: exited with code 3 (2 crashes)"


def test_each_read_of_a_container_deaths_starts_where_the_last_one_ended():
    engine = RestartingContainer(observed("service_running_after_two_crashes"))
    times = iter([CREATED_AT + 5.25, CREATED_AT + 5.5])
    watch = readiness.ContainerWatch(None, "cap-crash", job=False, clock=lambda: next(times))
    watch._api = engine
    watch.observe()
    watch.observe()
    assert engine.asked == [(CREATED_AT, CREATED_AT + 5.25), (CREATED_AT + 5.25, CREATED_AT + 5.5)]


def test_a_container_the_engine_cannot_start_fails_with_the_engine_error():
    observation = docker_service_status(DOCKER["service_cannot_start"])
    assert observation.state == FAILED
    assert observation.detail.startswith("cannot start: failed to create shim task")
    assert 'exec: "/no/such/binary"' in observation.detail
    assert observation.subject == "cap-noexec"


@pytest.mark.parametrize(
    "captured,state,detail",
    [
        ("job_exit0", READY, "completed"),
        ("job_exit4", FAILED, "exited with code 4"),
        ("job_oom", FAILED, "was killed for running out of memory (exit code 137)"),
        ("job_running", PENDING, "running"),
    ],
)
def test_docker_job_status(captured, state, detail):
    observation = docker_job_status(DOCKER[captured])
    assert (observation.state, observation.detail) == (state, detail)


def test_a_job_container_that_cannot_start_fails():
    observation = docker_job_status(DOCKER["service_cannot_start"])
    assert observation.state == FAILED and "/no/such/binary" in observation.detail


# -- Kubernetes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "captured,state,detail",
    [
        # A service's first crash is forgiven (a dependency may still be starting); the second is a crash loop,
        # whether the kubelet shows it as terminated or as CrashLoopBackOff.
        ("pod_crashed_once", PENDING, "container crash exited with code 1"),
        ("pod_crashed_twice", FAILED, "crash-looping: exited with code 1 (2 crashes)"),
        ("pod_crash_loop_backoff", FAILED, "crash-looping: exited with code 1 (3 crashes)"),
        (
            "pod_err_image_pull",
            FAILED,
            "ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image",
        ),
        (
            "pod_image_pull_backoff",
            FAILED,
            'ImagePullBackOff: Back-off pulling image "localhost:5000/cloudservice/does-not-exist:1"',
        ),
        ("pod_running_not_ready", PENDING, "running, not ready (readiness probe failing)"),
        ("pod_unschedulable", PENDING, "not scheduled: 0/1 nodes are available: 1 Insufficient cpu"),
    ],
)
def test_pod_status(captured, state, detail):
    observation = pod_status(KUBERNETES[captured])
    assert observation.state == state and detail in observation.detail, observation


def test_a_pull_failure_counts_only_once_it_outlasts_the_kubelets_retry():
    assert pod_status(KUBERNETES["pod_err_image_pull"]).lasting == workload_status.PULL_RETRY_SECONDS
    assert pod_status(KUBERNETES["pod_crashed_twice"]).lasting == 0


def test_a_pull_failure_the_kubelets_retry_clears_is_not_a_failure():
    """A node that has not read a new pod's pull Secret yet pulls once without it: the retry passes."""
    clock = Clock()
    first_pull = pod_status(KUBERNETES["pod_err_image_pull"])
    kubelet_back_off = [first_pull] * 10  # one poll a second
    workload = ScriptedWorkload(*kubelet_back_off, pod_status(KUBERNETES["pod_ready"]))
    assert await_workload(workload, "service", "web", 60, clock=clock, sleep=clock.sleep).state == READY


def test_a_lasting_pull_failure_fails_once_the_retry_has_had_its_time():
    clock = Clock()
    workload = ScriptedWorkload(pod_status(KUBERNETES["pod_image_pull_backoff"]))
    with pytest.raises(ReadinessError, match="service web failed: ImagePullBackOff"):
        await_workload(workload, "service", "web", 300, clock=clock, sleep=clock.sleep)
    assert clock.now == workload_status.PULL_RETRY_SECONDS and not workload.gave_up


def test_a_ready_pod_is_ready():
    assert pod_status(KUBERNETES["pod_ready"]).state == READY


def test_the_logs_of_a_crash_loop_are_those_of_the_run_that_ended():
    terminated, backing_off = (
        pod_status(KUBERNETES["pod_crashed_twice"]),
        pod_status(KUBERNETES["pod_crash_loop_backoff"]),
    )
    assert (terminated.container, terminated.previous) == ("crash", False)
    assert (backing_off.container, backing_off.previous) == ("crash", True)
    assert backing_off.subject == KUBERNETES["pod_crash_loop_backoff"]["metadata"]["name"]


def rollout(captured: str) -> Observation:
    """What the check sees: the Deployment and the live pods of its newest ReplicaSet."""
    objects = KUBERNETES[captured]
    newest = newest_replica_set(objects["deployment"], objects["replicaSets"])
    template_hash = newest["metadata"]["labels"]["pod-template-hash"]
    pods = [
        pod
        for pod in objects["pods"]
        if pod["metadata"]["labels"]["pod-template-hash"] == template_hash
        and not pod["metadata"].get("deletionTimestamp")
    ]
    return rollout_status(objects["deployment"], pods)


def test_the_newest_replica_set_is_the_one_of_the_deployments_revision():
    objects = KUBERNETES["rollout_old_replica_terminating"]
    newest = newest_replica_set(objects["deployment"], objects["replicaSets"])
    revisions = {
        rs["metadata"]["name"]: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for rs in objects["replicaSets"]
    }
    assert sorted(revisions.values()) == ["1", "2"] and revisions[newest["metadata"]["name"]] == "2"


@pytest.mark.parametrize(
    "captured,state,detail",
    [
        ("rollout_complete", READY, "1 of 1 replicas available"),
        ("rollout_old_replica_terminating", PENDING, "1 of 1 new replicas available, 1 old replicas terminating"),
        ("rollout_crash_looping", FAILED, "crash-looping: exited with code 1 (3 crashes)"),
        ("rollout_not_ready", PENDING, "0 of 1 new replicas available; pod notready-"),
        ("rollout_unschedulable", PENDING, "not scheduled: 0/1 nodes are available: 1 Insufficient cpu"),
    ],
)
def test_rollout_status(captured, state, detail):
    observation = rollout(captured)
    assert observation.state == state and detail in observation.detail, observation


def test_a_rollout_is_probed_only_when_its_pods_have_a_readiness_probe():
    assert rollout("rollout_complete").probed is True
    unprobed = json.loads(json.dumps(KUBERNETES["rollout_complete"]))
    del unprobed["deployment"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert rollout_status(unprobed["deployment"], unprobed["pods"]).probed is False


def test_a_spec_the_controller_has_not_seen_yet_is_not_judged_by_the_old_pods():
    """Right after `apply` the status still describes the previous generation (here, derived from a
    crash-looping rollout by raising the generation)."""
    objects = json.loads(json.dumps(KUBERNETES["rollout_crash_looping"]))
    objects["deployment"]["metadata"]["generation"] += 1
    observation = rollout_status(objects["deployment"], objects["pods"])
    assert (observation.state, observation.detail) == (
        PENDING,
        "waiting for the Deployment controller to see the new spec",
    )


@pytest.mark.parametrize(
    "captured,state,detail",
    [
        ("job_complete", READY, "completed"),
        ("job_failed", FAILED, "exited with code 3 (BackoffLimitExceeded)"),
        ("job_running", PENDING, "running (pod works-"),
    ],
)
def test_job_status(captured, state, detail):
    objects = KUBERNETES[captured]
    observation = job_status(objects["job"], objects["pods"])
    assert observation.state == state and detail in observation.detail, observation


def test_a_failed_job_points_at_its_failed_pod_for_the_logs():
    objects = KUBERNETES["job_failed"]
    observation = job_status(objects["job"], objects["pods"])
    assert (observation.subject, observation.container) == (objects["pods"][0]["metadata"]["name"], "fails")


# -- the error message ---------------------------------------------------------------------------


def test_failure_message_names_the_service_the_reason_and_the_logs():
    observation = failed(
        "crash-looping: exited with code 1 (2 crashes)", subject="web-5d9f-x2k", container="web", previous=True
    )
    message = failure_message("service", "web", observation, None, ["starting", "PermissionError: port 80"])
    assert message.splitlines() == [
        "service web failed: crash-looping: exited with code 1 (2 crashes)",
        "last log lines (web-5d9f-x2k, container web, previous run):",
        "    starting",
        "    PermissionError: port 80",
    ]


def test_timeout_message_says_how_long_and_what_it_was_doing():
    observation = Observation(PENDING, "pod api-1 running, not ready (readiness probe failing)", subject="api-1")
    message = failure_message("service", "api", observation, 60, [], ["Unhealthy: Readiness probe failed: 503"])
    assert message.splitlines() == [
        "service api did not become ready within 60s: pod api-1 running, not ready (readiness probe failing)",
        "recent events:",
        "    Unhealthy: Readiness probe failed: 503",
        "no log output (api-1)",
    ]


def test_job_timeout_message():
    message = failure_message(
        "job", "migrate", Observation(PENDING, "running", subject="app-migrate"), 300, ["step 3/9"]
    )
    assert message.splitlines()[0] == "job migrate did not complete within 300s: running"
    assert message.splitlines()[1:] == ["last log lines (app-migrate):", "    step 3/9"]


# -- the waiting loop ------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedWorkload:
    """Replays what a workload reported, one observation per poll (the last one repeats)."""

    poll_seconds = 1

    def __init__(self, *observations, logs=("a log line",)):
        self.observations = list(observations)
        self.log_lines = logs
        self.gave_up = False

    def observe(self) -> Observation:
        current = self.observations[0]
        if len(self.observations) > 1:
            self.observations.pop(0)
        if isinstance(current, Exception):
            raise current
        return current

    def logs(self, observation):
        if isinstance(self.log_lines, Exception):
            raise self.log_lines
        return list(self.log_lines)

    def events(self, observation):
        return []

    def timed_out(self):
        self.gave_up = True


def service(captured: str) -> Observation:
    return docker_service_status(DOCKER[captured])


def test_a_healthy_service_is_done_at_once():
    clock = Clock()
    result = await_workload(
        ScriptedWorkload(service("service_health_starting"), service("service_healthy")),
        "service",
        "web",
        60,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.detail == "healthy" and clock.now == ScriptedWorkload.poll_seconds


def test_a_service_without_health_check_must_keep_running_a_while():
    clock = Clock()
    await_workload(
        ScriptedWorkload(service("service_started")), "service", "worker", 60, clock=clock, sleep=clock.sleep
    )
    assert clock.now == readiness.UNPROBED_SETTLE_SECONDS


def test_a_service_without_health_check_is_ready_once_settled_however_long_the_poll():
    """Its process sends no event while it keeps running: the wait ends when the settling does."""
    clock = Clock()
    workload = ScriptedWorkload(service("service_started"))
    workload.poll_seconds = 3
    await_workload(workload, "service", "worker", 60, clock=clock, sleep=clock.sleep)
    assert clock.now == readiness.UNPROBED_SETTLE_SECONDS


def test_a_crash_while_settling_fails_with_the_logs():
    clock = Clock()
    workload = ScriptedWorkload(
        service("service_started"), service("service_started"), service("service_crash_looping"), logs=["boom"]
    )
    with pytest.raises(ReadinessError) as error:
        await_workload(workload, "service", "worker", 60, clock=clock, sleep=clock.sleep)
    assert str(error.value).splitlines() == [
        "service worker failed: crash-looping: exited with code 3 (2 crashes)",
        "last log lines (cap-crash):",
        "    boom",
    ]
    assert clock.now == 2 * ScriptedWorkload.poll_seconds and not workload.gave_up


def test_a_service_never_healthy_fails_at_the_timeout():
    clock = Clock()
    workload = ScriptedWorkload(service("service_unhealthy"))
    with pytest.raises(ReadinessError) as error:
        await_workload(workload, "service", "web", 10, clock=clock, sleep=clock.sleep)
    assert str(error.value).startswith(
        "service web did not become ready within 10s: health check unhealthy: connection refused on 8080"
    )
    assert clock.now == 10 and workload.gave_up


def test_readiness_broken_by_a_restart_starts_the_settle_time_again():
    clock = Clock()
    workload = ScriptedWorkload(
        service("service_started"),
        service("service_started"),
        service("service_health_starting"),
        service("service_started"),
    )
    await_workload(workload, "service", "worker", 60, clock=clock, sleep=clock.sleep)
    assert clock.now == 3 * ScriptedWorkload.poll_seconds + readiness.UNPROBED_SETTLE_SECONDS


def test_status_read_errors_are_retried_until_the_timeout():
    clock = Clock()
    workload = ScriptedWorkload(ConnectionError("engine restarting"), service("service_healthy"))
    assert await_workload(workload, "service", "web", 60, clock=clock, sleep=clock.sleep).state == READY
    with pytest.raises(ReadinessError, match=r"within 3s: cannot read its status \(engine restarting\)"):
        await_workload(
            ScriptedWorkload(ConnectionError("engine restarting")), "service", "web", 3, clock=clock, sleep=clock.sleep
        )


@pytest.mark.parametrize("stack_host", [True, False], ids=["dockerHost", "DOCKER_HOST"])
def test_an_engine_that_does_not_answer_is_named_and_waited_for(tmp_path, monkeypatch, stack_host):
    """A real Docker client on a socket nothing listens on (an engine stopped or restarting): the
    check waits, and its timeout names the engine, whether the check began before or after it went."""
    engine = f"unix://{tmp_path}/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock" if stack_host else engine)
    watch = readiness.ContainerWatch(engine if stack_host else None, "app-dev-web", job=False)
    assert watch.observe().state == PENDING
    clock = Clock()
    with pytest.raises(ReadinessError) as error:
        await_workload(watch, "service", "web", 3, clock=clock, sleep=clock.sleep)
    headline = str(error.value).splitlines()[0]
    assert headline.startswith(
        f"service web did not become ready within 3s: the Docker engine at {engine} does not answer ("
    )


def test_an_engine_error_is_not_taken_for_an_engine_that_does_not_answer():
    class Refusing:
        def inspect_container(self, container):
            raise docker.errors.APIError("500 Server Error: conflict")

        def events(self, filters, decode):
            return Stream()

    watch = readiness.ContainerWatch("unix:///run/docker.sock", "app-dev-web", job=False)
    watch._api = Refusing()
    with pytest.raises(docker.errors.APIError):
        watch.observe()


def test_logs_that_cannot_be_read_do_not_hide_the_failure():
    workload = ScriptedWorkload(service("service_crash_looping"), logs=ConnectionError("no route"))
    with pytest.raises(ReadinessError) as error:
        await_workload(workload, "service", "web", 60, sleep=lambda _: None)
    assert str(error.value).splitlines()[0].startswith("service web failed: crash-looping")
    assert "    (unavailable: no route)" in str(error.value).splitlines()


# -- the resources -----------------------------------------------------------------------------------


def provider_of(inputs: dict):
    """The provider the dynamic provider process would unpickle from the check's inputs."""
    return dill.loads(base64.b64decode(unwrap_secrets(inputs["__provider"])))


def test_rollout_check_on_docker_names_the_container_and_its_revision(mocks):
    def program():
        RolloutCheck(
            "web-ready",
            CheckArgs(
                name="web",
                workload=DockerWorkload(container="app-dev-web", host="unix:///run/docker.sock"),
                revision=pulumi.Output.from_input("c0ffee"),
                timeout=45,
            ),
        )

    run(program)
    check = mocks.get(ROLLOUT_CHECK, "web-ready")
    inputs = {key: value for key, value in check.inputs.items() if key != "__provider"}
    assert inputs == {
        "name": "web",
        "target": "docker",
        "dockerHost": "unix:///run/docker.sock",
        "container": "app-dev-web",
        "revision": "c0ffee",
        "timeout": 45,
    }
    provider = provider_of(check.inputs)
    assert type(provider).__module__ == "components.readiness" and provider.kind == "service"


def test_job_check_on_kubernetes_names_the_job_and_stringifies_the_revision(mocks):
    def program():
        JobCheck(
            "migrate-done",
            CheckArgs(
                name="migrate",
                workload=KubernetesWorkload(namespace="app-staging", name="migrate-x1", context="ci"),
                revision=7,
                timeout=300,
            ),
        )

    run(program)
    check = mocks.get(JOB_CHECK, "migrate-done")
    inputs = {key: value for key, value in check.inputs.items() if key != "__provider"}
    assert inputs == {
        "name": "migrate",
        "target": "kubernetes",
        "context": "ci",
        "namespace": "app-staging",
        "workload": "migrate-x1",
        "revision": "7",
        "timeout": 300,
    }
    assert provider_of(check.inputs).kind == "job"


def test_the_provider_is_pickled_by_reference_not_by_value(mocks):
    """The state keeps a reference to components.readiness (a few bytes), not a copy of its code:
    fixes to the checks apply to stacks already deployed."""
    run(
        lambda: RolloutCheck("web-ready", CheckArgs(name="web", workload=DockerWorkload(container="web"), revision="1"))
    )
    serialized = base64.b64decode(unwrap_secrets(mocks.get(ROLLOUT_CHECK, "web-ready").inputs["__provider"]))
    assert b"components.readiness" in serialized and len(serialized) < 300


@pytest.mark.parametrize(
    "change,rechecks",
    [
        ({}, False),
        ({"timeout": 120}, False),
        ({"revision": "2"}, True),
        ({"container": "app-dev-api"}, True),
        ({"namespace": "other"}, True),
    ],
)
def test_a_check_runs_again_only_for_another_rollout(change, rechecks):
    olds = {
        "name": "web",
        "target": "docker",
        "container": "app-dev-web",
        "revision": "1",
        "timeout": 60,
        "__provider": "same",
    }
    diff = readiness._CheckProvider("service").diff("id", olds, {**olds, **change})
    assert diff.changes is rechecks


# -- wired into the app's components ---------------------------------------------------------------

IMAGE = "localhost:5000/cloudservice/app@sha256:" + "a" * 64

# A migration job, an API that waits for it, and a worker without ports or health check.
APP = {
    "services": {
        "api": {
            "image": IMAGE,
            "port": 8080,
            "publish": 8080,
            "health": "/healthz",
            "dependsOn": {"migrate": "completed"},
        },
        "worker": {"image": IMAGE, "command": ["python3", "worker.py"]},
    },
    "jobs": {"migrate": {"image": IMAGE, "command": ["python3", "migrate.py"], "timeout": 120}},
    "readyTimeout": 45,
}


def check_inputs(check) -> dict:
    return {key: value for key, value in check.inputs.items() if key != "__provider"}


def test_docker_services_and_jobs_are_watched_by_their_checks(mocks):
    config = docker_config(**APP, dockerHost="unix:///run/user/docker.sock")
    deploy(config)
    prefix = config.name_prefix
    for service in ("api", "worker"):
        container = mocks.get(CONTAINER, f"{prefix}-{service}")
        check = mocks.get(ROLLOUT_CHECK, f"{prefix}-{service}-ready")
        assert check_inputs(check) == {
            "name": service,
            "target": "docker",
            "dockerHost": "unix:///run/user/docker.sock",
            "container": container.inputs["name"],
            "revision": f"{prefix}-{service}-id",
            "timeout": 45,
        }
        assert mocks.parent_of(check) is mocks.parent_of(container)
        # The check reports instead of the provider's wait (which has neither the crash loop nor the logs).
        assert "wait" not in container.inputs
    job = mocks.get(CONTAINER, f"{prefix}-migrate")
    assert job.inputs["mustRun"] is False and job.inputs["restart"] == "no" and "attach" not in job.inputs
    assert check_inputs(mocks.get(JOB_CHECK, f"{prefix}-migrate-completed")) == {
        "name": "migrate",
        "target": "docker",
        "dockerHost": "unix:///run/user/docker.sock",
        "container": job.inputs["name"],
        "revision": f"{prefix}-migrate-id",
        "timeout": 120,
    }


def test_a_changed_health_check_replaces_the_docker_container(mocks):
    """The provider would plan it as an update it never applies, and nothing would be re-checked."""
    config = docker_config(**APP)
    deploy(config)
    assert mocks.get(CONTAINER, f"{config.name_prefix}-api").replace_on_changes == ["healthcheck"]


def test_a_dependant_starts_only_after_the_jobs_check(mocks):
    for config, workload_type in ((docker_config(**APP), CONTAINER), (kubernetes_config(**APP), DEPLOYMENT)):
        mocks.resources.clear()
        deploy(config)
        prefix = config.name_prefix
        job_check = mocks.get(JOB_CHECK, f"{prefix}-migrate-completed")
        assert job_check.urn in mocks.get(workload_type, f"{prefix}-api").dependencies
        assert job_check.urn not in mocks.get(workload_type, f"{prefix}-worker").dependencies


def test_kubernetes_rollouts_and_jobs_are_watched_by_their_checks(mocks, tmp_path):
    kubeconfig = tmp_path / "staging.kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    config = kubernetes_config(**APP, kubernetes={"context": "staging", "kubeconfig": str(kubeconfig)})
    deploy(config)
    prefix = config.name_prefix
    cluster = {
        "target": "kubernetes",
        "context": "staging",
        "kubeconfig": str(kubeconfig),
        "namespace": config.kubernetes.namespace,
    }
    for service in ("api", "worker"):
        deployment = mocks.get(DEPLOYMENT, f"{prefix}-{service}")
        assert deployment.inputs["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
        check = mocks.get(ROLLOUT_CHECK, f"{prefix}-{service}-ready")
        # Re-checked on every rollout: a new generation of the Deployment, or a new Deployment.
        assert check_inputs(check) == {
            **cluster,
            "name": service,
            "workload": service,
            "timeout": 45,
            "revision": f"{uid(f'{prefix}-{service}')}/1",
        }
        assert mocks.parent_of(check) is mocks.parent_of(deployment)
    job = mocks.get(JOB, f"{prefix}-migrate")
    assert job.inputs["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert check_inputs(mocks.get(JOB_CHECK, f"{prefix}-migrate-completed")) == {
        **cluster,
        "name": "migrate",
        "workload": job.outputs["metadata"]["name"],
        "revision": uid(f"{prefix}-migrate"),
        "timeout": 120,
    }


# -- a ready rollout waits until its Service routes to it ------------------------------------------


class _Api:
    """Stands for one kubernetes API method: the fake cluster answers by its name."""

    def __init__(self, name: str):
        self.name = name


class _Cluster:
    """What service_routing reads of a cluster: the Service and its EndpointSlices."""

    def __init__(self, service, slices):
        self.core, self.discovery = (
            type("Core", (), {"read_namespaced_service": _Api("service")})(),
            type("Discovery", (), {"list_namespaced_endpoint_slice": _Api("slices")})(),
        )
        self.service, self.slices, self.selectors = service, slices, []

    def get(self, call, name, namespace):
        return self.service

    def read(self, call, namespace, label_selector):
        self.selectors.append(label_selector)
        return {"items": self.slices}


def _pod(ip: str, ready: bool = True) -> dict:
    return {"status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _slice(*endpoints: tuple[str, bool]) -> dict:
    return {"endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in endpoints]}


SERVICE_SPEC = {"spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 6379, "protocol": "TCP"}]}}


def _connect_raising(error):
    def connect(address, timeout):
        raise error

    return connect


def _connected(address, timeout):
    return type("Connection", (), {"close": lambda self: None})()


def test_a_ready_pod_the_endpoint_slices_do_not_list_yet_keeps_the_rollout_waiting():
    cluster = _Cluster(SERVICE_SPEC, [_slice(("10.88.0.5", True), ("10.88.0.6", False))])
    waiting = service_routing(cluster, "ns", "store", [_pod("10.88.0.5"), _pod("10.88.0.6")], connect=_connected)
    assert waiting == "Service store does not route to every ready pod yet (1 of 2 missing)"
    assert cluster.selectors == ["kubernetes.io/service-name=store"]


def test_no_route_to_the_service_yet_keeps_the_rollout_waiting():
    """The race the product had: pods ready and listed, kube-proxy's rule not there yet."""
    cluster = _Cluster(SERVICE_SPEC, [_slice(("10.88.0.5", True))])
    unroutable = OSError(errno.EHOSTUNREACH, "No route to host")
    waiting = service_routing(cluster, "ns", "store", [_pod("10.88.0.5")], connect=_connect_raising(unroutable))
    assert waiting == "Service store (10.96.0.9:6379) does not accept connections yet (No route to host)"
    refused = _connect_raising(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert "Connection refused" in service_routing(cluster, "ns", "store", [_pod("10.88.0.5")], connect=refused)


@pytest.mark.parametrize("error", [TimeoutError("timed out"), OSError(errno.ENETUNREACH, "Network is unreachable")])
def test_a_service_network_not_reachable_from_here_leaves_it_to_the_endpoint_slices(error):
    cluster = _Cluster(SERVICE_SPEC, [_slice(("10.88.0.5", True))])
    assert service_routing(cluster, "ns", "store", [_pod("10.88.0.5")], connect=_connect_raising(error)) is None


def test_routed_and_connected_is_ready_and_a_worker_without_a_service_waits_for_nothing():
    cluster = _Cluster(SERVICE_SPEC, [_slice(("10.88.0.5", True))])
    assert (
        service_routing(cluster, "ns", "store", [_pod("10.88.0.5"), _pod("10.88.0.7", ready=False)], _connected) is None
    )
    assert service_routing(_Cluster(None, []), "ns", "worker", [_pod("10.88.0.5")], connect=_connected) is None
