"""Autoscaling on the real cluster: a service with `autoscale` scales out under a CPU load and back in
once the load stops, its HorizontalPodAutoscaler reading the pods' use from the cluster's
metrics-server; `pulumi preview` and `up` at the peak change nothing and scale nothing back; and not
one request of a steady prober through the cluster's entry point (the service's route, https) fails
meanwhile, while the router adds the new pods and drops the removed ones. The tests run in order.

The app (tests/integration/apps/cpu-burner) answers `/` at once and `/burn?ms=N` after N ms of CPU.
Its CPU request is small (0.1 core; the target, 50 %, is 50m), so a load of a quarter of a core on
loopback trips it, while the prober's few requests a second stay well under the target.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from typing import Callable, Optional

import pytest
from pulumi import automation as auto

from support.testing import ROOT, changed_resources, kubectl, kubectl_json, wait_for
from support.traffic import PacedRequests

pytestmark = pytest.mark.exclusive  # loads the CPU on purpose and times the scale-out it causes

APP = "cpu-burner"
SERVICE = "burner"
SERVICES = {
    SERVICE: {
        "build": f"apps/{APP}",
        "port": 8080,
        "health": "/healthz",
        "replicas": 1,
        "cpuRequest": 0.1,
        "autoscale": {"max": 3, "cpu": 50, "scaleDownSeconds": 15},
    }
}
# 10 requests a second of 25 ms of CPU each: a quarter of a core, 250 % of one pod's request.
BURN_URL_PATH = "/burn?ms=25"
LOAD = {"per_second": 10, "threads": 4, "max_seconds": 180}
PROBES_PER_SECOND = 8
MIN_PROBES = 500
# The metrics pipeline: metrics-server scrapes every 15 s (a CPU rate needs two scrapes) and the
# autoscaler syncs every 15 s, so a minute is usual; twice that before calling it broken.
METRICS_TIMEOUT = 120


class Deployed:
    def __init__(self, stack: auto.Stack, namespace: str, url: str):
        self.stack, self.namespace, self.url = stack, namespace, url

    def deployment(self) -> dict:
        return kubectl_json("-n", self.namespace, "get", "deployment", SERVICE)

    def pods(self) -> list[str]:
        """The service's pods, terminating ones included."""
        pods = kubectl_json("-n", self.namespace, "get", "pods", "-l", f"app.kubernetes.io/name={SERVICE}")["items"]
        return [pod["metadata"]["name"] for pod in pods]

    def cpu_utilisation(self) -> Optional[int]:
        """The pods' average CPU use in percent of their request, as the autoscaler last read it."""
        status = kubectl_json("-n", self.namespace, "get", "hpa", SERVICE).get("status", {})
        for metric in status.get("currentMetrics") or []:
            if metric.get("type") == "Resource" and metric["resource"]["name"] == "cpu":
                return metric["resource"]["current"].get("averageUtilization")
        return None

    def wait(self, condition: Callable[[], object], timeout: float, what: str):
        """wait_for, failing with the autoscaler's conditions and events (why it did not scale)."""
        try:
            return wait_for(condition, timeout=timeout, what=what)
        except AssertionError as error:
            report = kubectl("-n", self.namespace, "describe", "hpa", SERVICE, check=False)
            raise AssertionError(f"{error}\nthe autoscaler:\n{report}") from None


@pytest.fixture(scope="module")
def deployed(project, registry, cluster):
    shutil.copytree(ROOT / "tests" / "integration" / "apps" / APP, project.directory / "apps" / APP)
    # The staging stack file's `replicas: 2` would be every stateless service's floor: this one starts from 1.
    stack = project.stack(
        "staging",
        config={"services": json.dumps(SERVICES), "replicas": "1", "routes": json.dumps([{"service": SERVICE}])},
        secrets={"registryPassword": registry.password},
    )
    try:
        outputs = stack.up().outputs
        yield Deployed(stack, outputs["namespace"].value, outputs["url"].value.rstrip("/"))
    finally:  # a failed `up` leaves objects too
        stack.destroy()
        stack.workspace.remove_stack(stack.name)


def test_the_autoscaler_reads_the_idle_pods_cpu_use_from_metrics_server(deployed):
    (pod,) = deployed.pods()

    def read() -> Optional[tuple[int]]:  # a tuple: 0 % is a reading too
        utilisation = deployed.cpu_utilisation()
        return (utilisation,) if utilisation is not None else None

    (utilisation,) = deployed.wait(
        read,
        timeout=METRICS_TIMEOUT,
        what="the autoscaler to read the pod's CPU use from the metrics API (is metrics-server running?)",
    )
    assert utilisation < 50 and deployed.deployment()["spec"]["replicas"] == 1, "idle, it keeps the floor"
    top = kubectl("-n", deployed.namespace, "top", "pod", "--no-headers")
    assert top.split()[0] == pod, top


def test_load_scales_out_and_back_in_without_a_failed_request(deployed):
    with PacedRequests(deployed.url + "/", PROBES_PER_SECOND) as probes:
        with PacedRequests(deployed.url + BURN_URL_PATH, **LOAD) as load:
            started = time.monotonic()
            deployed.wait(
                lambda: deployed.deployment()["status"].get("readyReplicas", 0) >= 2,
                timeout=150,
                what="a 2nd ready replica under load",
            )
            scale_out = time.monotonic() - started
            peak = deployed.deployment()["spec"]["replicas"]

            # At the peak: the stack does not count replicas as drift, and an `up` leaves them be.
            events: list = []
            deployed.stack.preview(on_event=events.append)
            assert changed_resources(events) == set(), "a no-op preview at the peak"
            deployed.stack.up(on_event=events.append)
            assert changed_resources(events) == set(), "a no-op up at the peak"
            after_up = deployed.deployment()["spec"]["replicas"]
            assert after_up >= 2, f"the no-op up scaled {SERVICE} back to {after_up}"
        stopped = time.monotonic()
        deployed.wait(
            lambda: deployed.deployment()["spec"]["replicas"] == 1 and len(deployed.pods()) == 1,
            timeout=150,
            what="scaling back in to one pod once the load stopped",
        )
        scale_in = time.monotonic() - stopped
        # A quick scale-out and -in can take less than MIN_PROBES / PROBES_PER_SECOND: probe on at one pod.
        wait_for(lambda: probes.requests >= MIN_PROBES, timeout=MIN_PROBES / PROBES_PER_SECOND, what="the probes")
    print(
        f"scale-out {scale_out:.0f}s (load started -> 2nd replica ready), peak {peak} replicas, "
        f"scale-in {scale_in:.0f}s (load stopped -> one pod left); probes: {probes.report()}; load: {load.report()}"
    )
    assert probes.failures == Counter(), probes.report()
    assert probes.requests >= MIN_PROBES, probes.report()
