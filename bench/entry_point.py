"""Section `entry`: the app's entry point. On Docker, the time `REQUESTS` requests take through the
router (https, a new connection each, as a client without keep-alive) against straight to web's
published port (http); the ratio is the router's cost per request, the inverse of its throughput
ratio. On Kubernetes, autoscaling: the time from a CPU load through the cluster's entry point
starting to a 2nd replica Ready."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import yaml

from support.testing import ROOT, free_ports, http, kubectl_json, wait_for
from support.traffic import PacedRequests

from .harness import Bench

REQUESTS = 400
CLIENTS = 4
BURNER = "cpu-burner"
SCALE_OUT_TIMEOUT = 180


def requests_in_parallel(url: str) -> None:
    """REQUESTS GETs of `url` from CLIENTS threads; every one must answer 200."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(pool.map(lambda _: http("GET", url)[0], range(REQUESTS)))
    assert statuses == [200] * REQUESTS, f"{url}: {sorted(set(statuses))}"


def bench_entry_point(b: Bench) -> None:
    services = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["services"]["value"]
    web_port, router_port = sorted(free_ports(2))  # the router's port is given above the offset: keep it positive
    port_offset = web_port - services["web"]["publish"]
    stack = b.pulumi(
        b.stack(
            "dev",
            "entry",
            config={
                "services": json.dumps(services),  # one web replica, published and routed
                "routes": json.dumps([{"service": "web"}]),
                "portOffset": str(port_offset),
                "routerPort": str(router_port - port_offset),
            },
        )
    )
    stack.up()
    router = stack.outputs()["url"]
    direct = f"http://127.0.0.1:{services['web']['publish'] + port_offset}/"
    requests_in_parallel(router)  # untimed: connections and caches warm on both sides
    requests_in_parallel(direct)
    for _ in range(b.runs):
        b.figures.time("entry.router", lambda: requests_in_parallel(router))
        b.figures.time("entry.direct", lambda: requests_in_parallel(direct))
    b.figures.ratio("entry point router/direct", "entry.router", "entry.direct")
    stack.destroy()
    bench_scale_out(b)


def bench_scale_out(b: Bench) -> None:
    """The autoscaling test's app and load (tests/integration/test_autoscaling.py), timed."""
    shutil.copytree(ROOT / "tests" / "integration" / "apps" / BURNER, b.project.directory / "apps" / BURNER)
    service = {
        "build": f"apps/{BURNER}",
        "port": 8080,
        "health": "/healthz",
        "cpuRequest": 0.1,
        "autoscale": {"max": 3, "cpu": 50, "scaleDownSeconds": 15},
    }
    for run_index in range(b.runs):
        stack = b.pulumi(
            b.stack(
                "staging",
                f"scale-out-{run_index}",
                config={
                    "services": json.dumps({"burner": service}),
                    "replicas": "1",
                    "routes": json.dumps([{"service": "burner"}]),
                },
            )
        )
        stack.up()
        outputs = stack.outputs()
        wait_for(lambda: hpa_reads_cpu(outputs["namespace"]), timeout=120, what="the autoscaler's first CPU reading")

        def scale_out() -> None:
            with PacedRequests(outputs["url"].rstrip("/") + "/burn?ms=25", per_second=10, threads=4):
                wait_for(
                    lambda: ready_replicas(outputs["namespace"]) >= 2,
                    timeout=SCALE_OUT_TIMEOUT,
                    what="a 2nd ready replica under load",
                )

        b.figures.time("k8s.scale-out", scale_out)
        stack.destroy()


def ready_replicas(namespace: str) -> int:
    return kubectl_json("-n", namespace, "get", "deployment", "burner")["status"].get("readyReplicas", 0)


def hpa_reads_cpu(namespace: str) -> bool:
    metrics = kubectl_json("-n", namespace, "get", "hpa", "burner").get("status", {}).get("currentMetrics") or []
    return any(
        metric.get("resource", {}).get("current", {}).get("averageUtilization") is not None for metric in metrics
    )
