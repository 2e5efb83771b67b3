"""components/kubernetes_namespace.py and kubernetes_service.py: AppNamespace (namespace, pull secret, app secrets),
KubernetesService (Deployment + Service + PVC + ConfigMap per service) and KubernetesJob."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from typing import Optional

import pulumi
import pytest
from harness import DB_PASSWORD, ROOT, STACK_LABELS, file_versions, spec_of
from pulumi.runtime import rpc
from recorder import (
    APP_NAMESPACE,
    CONFIG_MAP,
    DEPLOYMENT,
    JOB,
    KUBERNETES_JOB,
    KUBERNETES_SERVICE,
    NAMESPACE,
    NETWORK_POLICY,
    PVC,
    ROLLOUT_CHECK,
    SECRET,
    SERVICE,
    fake_digest,
    install_mocks,
    plaintext_occurrences,
    resolve,
    run,
)

from components.conventions import FILES_HASH
from components.kubernetes_namespace import AppNamespace, AppNamespaceArgs, PullCredentials
from components.kubernetes_objects import SERVER_SIDE_APPLY
from components.kubernetes_service import (
    SECRETS_REVISION,
    KubernetesJob,
    KubernetesJobArgs,
    KubernetesService,
    KubernetesServiceArgs,
)
from components.pod_security import namespace_labels
from components.spec import ANY_HOST_PORT, FileSpec, KubernetesSettings, PortSpec, VolumeSpec
from components.workload import Endpoint

PASSWORD = "s3cr3t-registry-pw"
REGISTRY = PullCredentials(server="localhost:5000", username="cloudservice", password=pulumi.Output.secret(PASSWORD))
SETTINGS = KubernetesSettings(namespace="cloudservice-dev")
REDIS = {"redis": Endpoint(host="redis", ports={"main": 6379})}
CONFIG_FILE = "app/redis/redis.conf"
SELECTOR = {"app.kubernetes.io/name": "web", "cloudservice.dev/stack": "dev"}


def image_of(name: str) -> str:
    return f"localhost:5000/cloudservice/{name}@{fake_digest(name)}"


def k8s_spec(name: str = "web", **changes):
    return spec_of(name, target="kubernetes", **changes)


def with_fields(base: str = "web", **fields):
    """The parsed spec of service `base` with spec fields (not config keys) changed, e.g. those Compose files need."""
    return dataclasses.replace(k8s_spec(base), **fields)


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    """The messages of pulumi.log.warn, each with the name of the resource it is about."""
    seen: list[str] = []
    monkeypatch.setattr(
        pulumi.log,
        "warn",
        lambda message, resource=None, **_: seen.append((resource._name if resource is not None else None, message)),
    )
    return seen


def namespace_for(
    specs, registry: Optional[PullCredentials] = REGISTRY, namespace: str = "cloudservice-dev"
) -> AppNamespace:
    keys = sorted({key for spec in specs for key in spec.secret_keys})
    return AppNamespace(
        "cloudservice-dev-namespace",
        AppNamespaceArgs(
            namespace=namespace,
            labels=STACK_LABELS,
            registry=registry,
            secrets={key: pulumi.Output.secret(DB_PASSWORD) for key in keys},
        ),
    )


def workload_args(spec, namespace: AppNamespace, settings: KubernetesSettings = SETTINGS, **args) -> dict:
    return dict(
        image=image_of(spec.name),
        namespace=namespace.name,
        labels=STACK_LABELS,
        pull_secrets=namespace.pull_secrets,
        secrets_name=namespace.secrets_name if spec.secret_keys else None,
        secrets_revision=namespace.secrets_revision(bool(spec.secret_keys)),
        settings=settings,
        **args,
    )


def deploy(
    mocks, spec=None, *, settings: KubernetesSettings = SETTINGS, registry=REGISTRY, ready_timeout: int = 60, **args
):
    """Declares `spec` (web by default) as a KubernetesService in its AppNamespace; returns the
    component and the Deployment."""
    spec = spec or k8s_spec()

    def program():
        namespace = namespace_for([spec], registry, settings.namespace)
        return KubernetesService(
            f"cloudservice-dev-{spec.name}",
            KubernetesServiceArgs(
                spec=spec, ready_timeout=ready_timeout, **workload_args(spec, namespace, settings, **args)
            ),
        )

    return run(program), mocks.get(DEPLOYMENT, f"cloudservice-dev-{spec.name}")


def pod(deployment) -> dict:
    return deployment.inputs["spec"]["template"]["spec"]


def container(deployment) -> dict:
    (only,) = pod(deployment)["containers"]
    return only


# -- AppNamespace ----------------------------------------------------------------------------------


def test_namespace_holds_the_pull_secret_and_the_app_secrets(mocks):
    namespace = run(lambda: namespace_for([k8s_spec(secretEnv={"DB_PASSWORD": "dbPassword"})]))
    component = mocks.get(APP_NAMESPACE, "cloudservice-dev-namespace")
    created = mocks.get(NAMESPACE, "cloudservice-dev-namespace")
    assert created.inputs["metadata"] == {
        "name": "cloudservice-dev",
        "labels": {**STACK_LABELS, **namespace_labels("restricted")},
        "annotations": SERVER_SIDE_APPLY,
    }
    pull = mocks.get(SECRET, "cloudservice-dev-namespace-registry-credentials")
    app = mocks.get(SECRET, "cloudservice-dev-namespace-app-secrets")
    for resource in (created, pull, app):
        assert mocks.parent_of(resource) is component
    for secret in (pull, app):
        assert secret.inputs["metadata"]["namespace"] == "cloudservice-dev"
        assert secret.inputs["metadata"]["labels"] == STACK_LABELS
        assert created.urn in secret.dependencies, "created once its namespace exists"
        assert rpc.is_rpc_secret(secret.inputs["stringData"]), "sent encrypted"
    assert resolve(namespace.name) == "cloudservice-dev"
    assert [resolve(name) for name in namespace.pull_secrets] == ["registry-credentials"]
    assert resolve(namespace.secrets_name) == "app-secrets"
    assert rpc.unwrap_rpc_secret(app.inputs["stringData"]) == {"dbPassword": DB_PASSWORD}
    for resource in mocks.resources:
        for secret in (PASSWORD, DB_PASSWORD):
            assert plaintext_occurrences(resource.inputs, secret) == [], f"{secret} in {resource.type} {resource.name}"


def test_image_pull_secret_holds_the_registry_credentials(mocks):
    run(lambda: namespace_for([]))
    secret = mocks.get(SECRET, "cloudservice-dev-namespace-registry-credentials")
    assert secret.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert secret.inputs["metadata"]["name"] == "registry-credentials"
    auths = json.loads(rpc.unwrap_rpc_secret(secret.inputs["stringData"])[".dockerconfigjson"])["auths"]
    assert auths == {
        "localhost:5000": {
            "username": "cloudservice",
            "password": PASSWORD,
            "auth": base64.b64encode(f"cloudservice:{PASSWORD}".encode()).decode(),
        }
    }


@pytest.mark.parametrize("level", ["restricted", "baseline", "privileged"])
def test_namespace_enforces_its_pod_security_level_in_place(mocks, level):
    def program():
        args = AppNamespaceArgs(
            namespace="cloudservice-dev",
            labels=STACK_LABELS,
            registry=REGISTRY,
            secrets={"dbPassword": pulumi.Output.secret(DB_PASSWORD)},
            pod_security=level,
        )
        return AppNamespace("cloudservice-dev-namespace", args)

    run(program)
    created = mocks.get(NAMESPACE, "cloudservice-dev-namespace")
    labels = created.inputs["metadata"]["labels"]
    assert labels == {**STACK_LABELS, **namespace_labels(level)}
    assert labels["pod-security.kubernetes.io/enforce"] == level
    # Labels are updated in place: nothing makes a changed level replace (delete) the namespace.
    assert created.inputs["metadata"]["name"] == "cloudservice-dev"
    assert not created.replace_on_changes and not created.delete_before_replace
    for secret in mocks.of_type(SECRET):
        assert secret.inputs["metadata"]["labels"] == STACK_LABELS, "the level labels the namespace only"


def test_no_registry_and_no_secrets_mean_no_secret_objects(mocks):
    namespace = run(lambda: namespace_for([], registry=None))
    assert mocks.of_type(SECRET) == []
    assert namespace.pull_secrets == [] and namespace.secrets_name is None


# -- KubernetesService -------------------------------------------------------------------------------


def test_deployment_and_service_are_named_from_the_component(mocks):
    _, deployment = deploy(mocks)
    component = mocks.get(KUBERNETES_SERVICE, "cloudservice-dev-web")
    service = mocks.get(SERVICE, "cloudservice-dev-web")
    namespace = mocks.get(NAMESPACE, "cloudservice-dev-namespace")
    for resource in (deployment, service):
        assert mocks.parent_of(resource) is component
        assert resource.inputs["metadata"]["name"] == "web", (
            "the cluster objects keep the service's name (its DNS name)"
        )
        assert resource.inputs["metadata"]["namespace"] == "cloudservice-dev"
        assert namespace.urn in resource.dependencies, f"{resource.type} waits for its namespace"
    assert {r.type for r in mocks.children_of(component)} == {DEPLOYMENT, SERVICE, NETWORK_POLICY, ROLLOUT_CHECK}


def test_selectors_match_the_pod_template_labels(mocks):
    for name in ("web", "redis"):
        _, deployment = deploy(mocks, k8s_spec(name))
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        selector = deployment.inputs["spec"]["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": name, "cloudservice.dev/stack": "dev"}
        assert selector.items() <= labels.items()
        assert labels == {**STACK_LABELS, "app.kubernetes.io/name": name}
        assert deployment.inputs["metadata"]["labels"] == labels
        assert mocks.get(SERVICE, f"cloudservice-dev-{name}").inputs["spec"]["selector"] == selector


def test_pods_run_images_by_digest(mocks):
    _, deployment = deploy(mocks)
    assert container(deployment)["image"] == image_of("web")


def test_ports_of_containers_and_services(mocks):
    web, deployment = deploy(mocks)
    assert container(deployment)["ports"] == [{"name": "main", "containerPort": 8080}]
    service = mocks.get(SERVICE, "cloudservice-dev-web")
    assert service.inputs["spec"]["type"] == "NodePort"
    assert service.inputs["spec"]["ports"] == [{"name": "main", "port": 8080, "targetPort": 8080}]
    node_port = service.outputs["spec"]["ports"][0]["nodePort"]
    assert (
        resolve(web.urls) == {"main": f"http://127.0.0.1:{node_port}"}
        and resolve(web.url) == f"http://127.0.0.1:{node_port}"
    )
    assert resolve(web.service_name) == "web"
    redis, _ = deploy(mocks, k8s_spec("redis"))
    service = mocks.get(SERVICE, "cloudservice-dev-redis")
    assert service.inputs["spec"]["type"] == "ClusterIP", "unpublished services stay inside the cluster"
    assert service.inputs["spec"]["ports"] == [{"name": "main", "port": 6379, "targetPort": 6379}]
    assert resolve(redis.urls) == {} and resolve(redis.url) is None


def test_two_named_ports(mocks):
    spec = k8s_spec(port=None, publish=None, ports={"http": {"port": 8080, "publish": 80}, "metrics": {"port": 9100}})
    web, deployment = deploy(mocks, spec)
    assert container(deployment)["ports"] == [
        {"name": "http", "containerPort": 8080},
        {"name": "metrics", "containerPort": 9100},
    ]
    service = mocks.get(SERVICE, "cloudservice-dev-web")
    assert service.inputs["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "metrics", "port": 9100, "targetPort": 9100},
    ]
    assert service.inputs["spec"]["type"] == "NodePort"
    node_port = service.outputs["spec"]["ports"][0]["nodePort"]
    assert resolve(web.urls) == {"http": f"http://127.0.0.1:{node_port}"}, "only published ports have a URL"
    assert container(deployment)["livenessProbe"]["tcpSocket"] == {"port": 8080}, "liveness checks the main port"


def test_worker_without_ports_has_no_service_and_no_probes(mocks):
    spec = k8s_spec(port=None, publish=None, health=None, args=["worker"])
    worker, deployment = deploy(mocks, spec, links=REDIS)
    assert mocks.of_type(SERVICE) == []
    spec_of_container = container(deployment)
    for key in ("ports", "readinessProbe", "livenessProbe", "lifecycle"):
        assert not spec_of_container.get(key), f"a worker has no {key}"
    assert worker.service_name is None
    assert resolve(worker.urls) == {} and resolve(worker.url) is None
    assert deployment.inputs["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "sysctls" not in pod(deployment)["securityContext"]


def test_replicas_and_rollout_strategy(mocks):
    _, web = deploy(mocks, spec_of("web", target="kubernetes", replicas=2))
    assert web.inputs["spec"]["replicas"] == 2
    assert web.inputs["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    _, redis = deploy(mocks, k8s_spec("redis"))
    assert redis.inputs["spec"]["replicas"] == 1
    assert redis.inputs["spec"]["strategy"] == {"type": "Recreate"}, (
        "one RWO volume cannot be mounted by old and new pod"
    )


HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def test_an_autoscaled_service_leaves_its_replicas_to_a_horizontal_pod_autoscaler(mocks):
    autoscale = {"max": 5, "cpu": 60, "memory": 80, "scaleDownSeconds": 30}
    _, web = deploy(mocks, k8s_spec("web", replicas=2, autoscale=autoscale))
    assert "replicas" not in web.inputs["spec"], "a no-op up must not scale the Deployment back"
    hpa = mocks.get(HPA, "cloudservice-dev-web")
    assert hpa.inputs["metadata"]["name"] == "web"
    assert hpa.inputs["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (hpa.inputs["spec"]["minReplicas"], hpa.inputs["spec"]["maxReplicas"]) == (2, 5)
    assert hpa.inputs["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": name, "target": {"type": "Utilization", "averageUtilization": pct}}}
        for name, pct in (("cpu", 60), ("memory", 80))
    ]
    assert hpa.inputs["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 30}}


def test_autoscale_defaults_to_cpu_at_70_percent_from_one_replica(mocks):
    deploy(mocks, k8s_spec("web", autoscale={"max": 3}))
    spec = mocks.get(HPA, "cloudservice-dev-web").inputs["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 3)
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
    assert spec["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert "behavior" not in spec


def test_a_fixed_replica_count_has_no_autoscaler(mocks):
    deploy(mocks, k8s_spec("web", replicas=2))
    assert mocks.of_type(HPA) == []


@pytest.mark.parametrize("name,user", [("web", 10001), ("redis", 10002)])
def test_pods_are_hardened(mocks, name, user):
    _, deployment = deploy(mocks, k8s_spec(name))
    spec = pod(deployment)
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["enableServiceLinks"] is False
    assert container(deployment)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}} in spec["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container(deployment)["volumeMounts"]


def test_uid_and_gid(mocks):
    _, deployment = deploy(mocks, k8s_spec(user="10005:20005"))
    context = pod(deployment)["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (10005, 20005, 20005)


def test_user_image_sets_no_user(mocks):
    _, deployment = deploy(mocks, k8s_spec(user="image"))
    assert pod(deployment)["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert container(deployment)["securityContext"]["capabilities"] == {"drop": ["ALL"]}, (
        "the rest of the hardening stays"
    )


def test_writable_root_file_system(mocks):
    _, deployment = deploy(mocks, k8s_spec(readOnly=False))
    assert container(deployment)["securityContext"]["readOnlyRootFilesystem"] is False
    assert not any(v["name"] == "tmp" for v in pod(deployment)["volumes"])


def test_capabilities_are_added_back_after_dropping_all(mocks):
    _, deployment = deploy(mocks, k8s_spec(capabilities=["NET_BIND_SERVICE"]))
    assert container(deployment)["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}


@pytest.mark.parametrize(
    "ports,low",
    [
        ({"http": {"port": 80, "publish": 8080}}, True),
        ({"http": {"port": 8080, "publish": 8080}, "dns": {"port": 53}}, True),
        ({"http": {"port": 1024, "publish": 8080}}, False),
    ],
)
def test_ports_below_1024_lower_the_unprivileged_port_start(mocks, ports, low):
    _, deployment = deploy(mocks, k8s_spec(port=None, publish=None, ports=ports))
    context = pod(deployment)["securityContext"]
    if low:
        assert context["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
        assert context["runAsNonRoot"] is True, "the user stays non-root"
    else:
        assert "sysctls" not in context


@pytest.mark.parametrize("name,memory", [("web", "96Mi"), ("redis", "128Mi")])
def test_memory_requests_equal_limits_and_cpu_requests_stay_small(mocks, name, memory):
    _, deployment = deploy(mocks, k8s_spec(name))
    assert container(deployment)["resources"] == {
        "requests": {"cpu": "50m", "memory": memory},
        "limits": {"cpu": "500m", "memory": memory},
    }


def test_probes(mocks):
    _, web = deploy(mocks)
    _, redis = deploy(mocks, k8s_spec("redis"))
    web, redis = container(web), container(redis)
    timing = {"periodSeconds": 2, "timeoutSeconds": 3, "failureThreshold": 3}
    assert web["readinessProbe"] == {"httpGet": {"path": "/healthz", "port": 8080}, **timing}
    assert redis["readinessProbe"] == {"exec": {"command": ["redis-cli", "ping"]}, **timing}
    liveness = {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3, "initialDelaySeconds": 2}
    assert web["livenessProbe"] == {"tcpSocket": {"port": 8080}, **liveness}
    assert redis["livenessProbe"] == {"tcpSocket": {"port": 6379}, **liveness}
    assert web["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}


def test_health_long_form_sets_the_probe_timings(mocks):
    spec = k8s_spec(
        port=None,
        publish=None,
        ports={"http": {"port": 8080, "publish": 8080}, "admin": {"port": 9000}},
        health={"http": "/ready", "port": "admin", "interval": 5, "timeout": 4, "retries": 6, "startPeriod": 30},
    )
    _, deployment = deploy(mocks, spec)
    assert container(deployment)["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": 9000},
        "periodSeconds": 5,
        "timeoutSeconds": 4,
        "failureThreshold": 6,
    }
    assert container(deployment)["livenessProbe"]["initialDelaySeconds"] == 30


def test_without_health_no_readiness_probe_but_liveness(mocks):
    _, deployment = deploy(mocks, k8s_spec(health=None))
    assert "readinessProbe" not in container(deployment)
    assert container(deployment)["livenessProbe"]["tcpSocket"] == {"port": 8080}
    assert "initialDelaySeconds" not in container(deployment)["livenessProbe"]


@pytest.mark.parametrize("ready_timeout", [60, 300])
def test_ready_timeout_bounds_the_wait_for_the_rollout(mocks, ready_timeout):
    _, deployment = deploy(mocks, ready_timeout=ready_timeout)
    # The rollout check waits (and reports a crash loop at once), not the provider.
    assert deployment.inputs["metadata"]["annotations"] == {**SERVER_SIDE_APPLY, "pulumi.com/skipAwait": "true"}
    assert mocks.get(ROLLOUT_CHECK, "cloudservice-dev-web-ready").inputs["timeout"] == ready_timeout


def test_command_and_args(mocks):
    _, deployment = deploy(mocks, k8s_spec(command=["python3", "-m", "server"], args=["--port", "8080"]))
    assert container(deployment)["command"] == ["python3", "-m", "server"]
    assert container(deployment)["args"] == ["--port", "8080"]
    _, plain = deploy(mocks, k8s_spec("redis"))
    assert "command" not in container(plain) and "args" not in container(plain)


def test_pods_pull_with_the_registry_credentials(mocks):
    _, deployment = deploy(mocks)
    secret = mocks.get(SECRET, "cloudservice-dev-namespace-registry-credentials")
    assert pod(deployment)["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert secret.urn in deployment.dependencies
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, PASSWORD) == [], f"{resource.type} {resource.name}"


def test_no_registry_means_no_pull_secret(mocks):
    _, deployment = deploy(mocks, registry=None)
    assert mocks.of_type(SECRET) == []
    assert pod(deployment)["imagePullSecrets"] == []


def test_volume_is_a_claim_mounted_by_the_pod(mocks):
    _, redis = deploy(
        mocks, k8s_spec("redis"), settings=KubernetesSettings(namespace="cloudservice-dev", storage_class="local-path")
    )
    claim = mocks.get(PVC, "cloudservice-dev-redis-data")
    assert mocks.parent_of(claim).type == KUBERNETES_SERVICE
    assert claim.inputs["metadata"]["name"] == "redis-data"
    assert claim.inputs["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "local-path",
    }
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "redis-data"}} in pod(redis)["volumes"]
    assert {"name": "data", "mountPath": "/data"} in container(redis)["volumeMounts"]
    assert claim.urn in redis.dependencies
    _, web = deploy(mocks)
    assert not any("persistentVolumeClaim" in v for v in pod(web)["volumes"])


def test_links_point_at_the_linked_service_by_its_dns_name(mocks):
    _, deployment = deploy(mocks, links=REDIS)
    assert container(deployment)["env"] == [
        {"name": "REDIS_HOST", "value": "redis"},
        {"name": "REDIS_PORT", "value": "6379"},
    ]
    _, redis = deploy(mocks, k8s_spec("redis"))
    assert container(redis)["env"] == []


def test_secret_env_comes_from_the_app_secrets(mocks):
    spec = k8s_spec(secretEnv={"DB_PASSWORD": "dbPassword"}, env={"MODE": "production"})
    _, deployment = deploy(mocks, spec)
    secret = mocks.get(SECRET, "cloudservice-dev-namespace-app-secrets")
    env = container(deployment)["env"]
    assert {"name": "MODE", "value": "production"} in env
    assert {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "dbPassword"}}} in env
    assert secret.urn in deployment.dependencies, "the pod references the Secret by name: it must exist first"
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, DB_PASSWORD) == [], f"{resource.type} {resource.name}"


def template_annotations(deployment) -> dict:
    return deployment.inputs["spec"]["template"]["metadata"].get("annotations") or {}


def test_pods_roll_when_a_secret_they_read_is_replaced(mocks):
    """The provider replaces a changed Secret (a new UID); the pods read theirs only at start."""
    reader = k8s_spec(secretEnv={"DB_PASSWORD": "dbPassword"})
    other = k8s_spec("redis")

    def program():
        namespace = namespace_for([reader, other])
        return [
            KubernetesService(
                f"cloudservice-dev-{spec.name}", KubernetesServiceArgs(spec=spec, **workload_args(spec, namespace))
            )
            for spec in (reader, other)
        ]

    run(program)
    pull, app = (
        mocks.get(SECRET, f"cloudservice-dev-namespace-{name}").outputs["metadata"]["uid"]
        for name in ("registry-credentials", "app-secrets")
    )
    revisions = {
        name: template_annotations(mocks.get(DEPLOYMENT, f"cloudservice-dev-{name}"))[SECRETS_REVISION]
        for name in ("web", "redis")
    }
    assert revisions == {"web": f"{pull},{app}", "redis": pull}, "each rolls with the Secrets it reads, only"


def test_a_preview_of_new_secrets_plans_the_pods(mocks):
    """In a preview of a new stack the Secrets have no UID yet: the pods are planned all the same."""
    mocks = install_mocks(preview=True)
    _, deployment = deploy(mocks, k8s_spec(secretEnv={"DB_PASSWORD": "dbPassword"}))
    assert template_annotations(deployment)[SECRETS_REVISION] == ","  # pull credentials, app secrets: no UIDs yet


def test_pods_that_read_no_secret_have_no_revision(mocks):
    _, deployment = deploy(mocks, registry=None)
    assert SECRETS_REVISION not in template_annotations(deployment)


def test_secret_files_are_items_of_the_app_secrets(mocks):
    _, deployment = deploy(mocks, k8s_spec(secretFiles={"/run/secrets/db": "dbPassword"}))
    secret = mocks.get(SECRET, "cloudservice-dev-namespace-app-secrets")
    assert {
        "name": "secret-files",
        "secret": {
            "secretName": "app-secrets",
            "items": [{"key": "dbPassword", "path": "dbPassword"}],
            "defaultMode": 0o440,
        },
    } in pod(deployment)["volumes"]
    assert {
        "name": "secret-files",
        "mountPath": "/run/secrets/db",
        "subPath": "dbPassword",
        "readOnly": True,
    } in container(deployment)["volumeMounts"]
    assert secret.urn in deployment.dependencies
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, DB_PASSWORD) == [], f"{resource.type} {resource.name}"


def test_files_are_a_config_map_mounted_file_by_file(mocks):
    _, deployment = deploy(
        mocks, k8s_spec(files={"/etc/web/redis.conf": CONFIG_FILE, "/etc/web/server.py": "app/web/server.py"})
    )
    config_map = mocks.get(CONFIG_MAP, "cloudservice-dev-web-files")
    assert mocks.parent_of(config_map).type == KUBERNETES_SERVICE
    assert config_map.inputs["metadata"]["name"] == "web-files"
    assert config_map.inputs["metadata"]["namespace"] == "cloudservice-dev"
    with open(os.path.join(ROOT, CONFIG_FILE), encoding="utf-8") as handle:
        assert config_map.inputs["data"]["file-0"] == handle.read()
    assert set(config_map.inputs["data"]) == {"file-0", "file-1"}
    assert {
        "name": "files",
        "configMap": {
            "name": "web-files",
            "items": [{"key": "file-0", "path": "file-0"}, {"key": "file-1", "path": "file-1"}],
        },
    } in pod(deployment)["volumes"]
    mounts = container(deployment)["volumeMounts"]
    assert {"name": "files", "mountPath": "/etc/web/redis.conf", "subPath": "file-0", "readOnly": True} in mounts
    assert {"name": "files", "mountPath": "/etc/web/server.py", "subPath": "file-1", "readOnly": True} in mounts
    assert config_map.urn in deployment.dependencies


def test_a_changed_file_rolls_the_pods(mocks, tmp_path):
    """subPath mounts never see a ConfigMap update: the template's files-hash annotation changes
    instead, which rolls the Deployment."""
    hashes = []
    for spec in file_versions(tmp_path, "kubernetes", ["level: info\n", "level: debug\n", "level: info\n"]):
        _, deployment = deploy(mocks, spec)
        hashes.append(deployment.inputs["spec"]["template"]["metadata"]["annotations"]["cloudservice.dev/files-hash"])
        mocks.resources.clear()
    assert hashes[0] != hashes[1] and hashes[0] == hashes[2]


def test_an_executable_file_stays_executable_and_its_bit_rolls_the_pods(mocks):
    """A health-check script mounted from the project runs on Kubernetes as it does on Docker."""
    hashes = []
    for executable in (False, True):
        script = FileSpec(
            path="/healthchecks/check.sh", source="/project/check.sh", content="exit 0\n", executable=executable
        )
        _, deployment = deploy(mocks, with_fields(files=(script,)))
        (volume,) = [v for v in pod(deployment)["volumes"] if v["name"] == "files"]
        assert volume["configMap"]["items"] == [
            {"key": "file-0", "path": "file-0", **({"mode": 0o555} if executable else {})}
        ]
        hashes.append(deployment.inputs["spec"]["template"]["metadata"]["annotations"]["cloudservice.dev/files-hash"])
        mocks.resources.clear()
    assert hashes[0] != hashes[1]


def test_no_files_no_config_map_and_no_annotation(mocks):
    _, deployment = deploy(mocks)
    assert mocks.of_type(CONFIG_MAP) == []
    assert FILES_HASH not in deployment.inputs["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("service_type", ["ClusterIP", "LoadBalancer", "NodePort"])
def test_urls_follow_the_service_type(mocks, service_type):
    web, _ = deploy(
        mocks, settings=KubernetesSettings(namespace="cloudservice-dev", service_type=service_type, node_host="node1")
    )
    service = mocks.get(SERVICE, "cloudservice-dev-web")
    assert service.inputs["spec"]["type"] == service_type
    if service_type == "ClusterIP":
        expected = f"http://{service.outputs['spec']['clusterIP']}:8080"
    elif service_type == "LoadBalancer":
        expected = f"http://{service.outputs['status']['loadBalancer']['ingress'][0]['ip']}:8080"
    else:
        expected = f"http://node1:{service.outputs['spec']['ports'][0]['nodePort']}"
    assert resolve(web.urls) == {"main": expected}


@pytest.mark.parametrize("service_type,awaited", [("ClusterIP", False), ("NodePort", False), ("LoadBalancer", True)])
def test_only_a_load_balancer_service_is_awaited(mocks, service_type, awaited):
    """The rollout check already waits for readiness; the provider's Service await adds a 10 s settle
    time and is only needed for a load balancer's address (the URL), bounded by readyTimeout."""
    deploy(mocks, settings=KubernetesSettings(namespace="cloudservice-dev", service_type=service_type))
    annotations = mocks.get(SERVICE, "cloudservice-dev-web").inputs["metadata"].get("annotations") or {}
    expected = {"pulumi.com/timeoutSeconds": "60"} if awaited else {"pulumi.com/skipAwait": "true"}
    assert annotations == {**SERVER_SIDE_APPLY, **expected}


def test_custom_namespace(mocks):
    deploy(mocks, settings=KubernetesSettings(namespace="team-a"))
    assert mocks.get(NAMESPACE, "cloudservice-dev-namespace").inputs["metadata"]["name"] == "team-a"
    assert mocks.get(DEPLOYMENT, "cloudservice-dev-web").inputs["metadata"]["namespace"] == "team-a"
    assert mocks.get(SERVICE, "cloudservice-dev-web").inputs["metadata"]["namespace"] == "team-a"


def test_deployments_roll_instead_of_being_replaced(mocks):
    """A pod template change must be an update (a rolling update), never delete-then-create."""
    _, deployment = deploy(mocks)
    assert deployment.ignore_changes == ["spec.selector"]
    assert not deployment.delete_before_replace


def test_the_deployment_waits_for_what_it_comes_after(mocks):
    def program():
        before = pulumi.CustomResource("test:index:Thing", "migrated")
        spec = k8s_spec()
        namespace = namespace_for([spec])
        return KubernetesService(
            "cloudservice-dev-web", KubernetesServiceArgs(spec=spec, **workload_args(spec, namespace, after=[before]))
        )

    run(program)
    assert mocks.get("test:index:Thing", "migrated").urn in mocks.get(DEPLOYMENT, "cloudservice-dev-web").dependencies


def test_without_a_parent_no_first_release_aliases(mocks):
    deploy(mocks, k8s_spec("redis"))
    for typ in (DEPLOYMENT, SERVICE, PVC, NAMESPACE):
        (resource,) = mocks.of_type(typ)
        for alias in mocks.aliases_of(resource):  # the SDK's own: earlier API versions of the same object
            assert alias.rsplit("$", 1)[0] == resource.urn.rsplit("$", 1)[0] and alias.endswith(f"::{resource.name}"), (
                alias
            )


# -- KubernetesJob -----------------------------------------------------------------------------------

MIGRATE = {
    "migrate": {
        "build": "app/web",
        "command": ["python3", "-m", "migrate"],
        "args": ["--to", "head"],
        "timeout": 120,
        "env": {"MODE": "migrate"},
        "secretEnv": {"DB_PASSWORD": "dbPassword"},
        "links": ["redis"],
    }
}


def run_job(mocks, jobs=None, after=()):
    spec = spec_of("migrate", target="kubernetes", jobs=jobs or MIGRATE)

    def program():
        namespace = namespace_for([spec])
        return KubernetesJob(
            "cloudservice-dev-migrate",
            KubernetesJobArgs(
                spec=spec, **workload_args(spec, namespace, links=REDIS if spec.links else {}, after=after)
            ),
        )

    return run(program), mocks.get(JOB, "cloudservice-dev-migrate")


def test_job_runs_once_to_completion(mocks):
    job, created = run_job(mocks)
    assert mocks.parent_of(created) is mocks.get(KUBERNETES_JOB, "cloudservice-dev-migrate")
    metadata = created.inputs["metadata"]
    assert "name" not in metadata, "auto-named: a changed job is a new Job (its template is immutable)"
    assert metadata["namespace"] == "cloudservice-dev"
    assert metadata["labels"] == {**STACK_LABELS, "app.kubernetes.io/name": "migrate"}
    spec = created.inputs["spec"]
    assert spec["backoffLimit"] == 0, "a failed job fails `up` instead of retrying"
    assert spec["activeDeadlineSeconds"] == 120
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    (job_container,) = pod_spec["containers"]
    assert job_container["image"] == image_of("migrate")
    assert job_container["command"] == ["python3", "-m", "migrate"] and job_container["args"] == ["--to", "head"]
    for key in ("ports", "readinessProbe", "livenessProbe", "lifecycle"):
        assert key not in job_container
    assert job_container["env"] == [
        {"name": "MODE", "value": "migrate"},
        {"name": "REDIS_HOST", "value": "redis"},
        {"name": "REDIS_PORT", "value": "6379"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "dbPassword"}}},
    ]
    assert pod_spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert mocks.get(SECRET, "cloudservice-dev-namespace-app-secrets").urn in created.dependencies
    assert not created.delete_before_replace, "the new Job is created before the old one goes"
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, DB_PASSWORD) == [], resource.name


def test_job_defaults_and_hardening(mocks):
    _, created = run_job(mocks, {"migrate": {"image": "busybox:1.36", "command": ["true"]}})
    assert created.inputs["spec"]["activeDeadlineSeconds"] == 300
    pod_spec = created.inputs["spec"]["template"]["spec"]
    assert pod_spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (job_container,) = pod_spec["containers"]
    assert job_container["securityContext"]["readOnlyRootFilesystem"] is True
    assert job_container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "sysctls" not in pod_spec["securityContext"]


def test_job_opt_outs_and_files(mocks):
    jobs = {
        "migrate": {
            "build": "app/web",
            "user": "image",
            "readOnly": False,
            "capabilities": ["CHOWN"],
            "files": {"/etc/migrate.conf": CONFIG_FILE},
            "secretFiles": {"/run/secrets/db": "dbPassword"},
        }
    }
    _, created = run_job(mocks, jobs)
    template = created.inputs["spec"]["template"]
    (job_container,) = template["spec"]["containers"]
    assert template["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert job_container["securityContext"]["readOnlyRootFilesystem"] is False
    assert job_container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    config_map = mocks.get(CONFIG_MAP, "cloudservice-dev-migrate-files")
    assert mocks.parent_of(config_map).type == KUBERNETES_JOB
    assert {"name": "files", "mountPath": "/etc/migrate.conf", "subPath": "file-0", "readOnly": True} in job_container[
        "volumeMounts"
    ]
    assert {
        "name": "secret-files",
        "mountPath": "/run/secrets/db",
        "subPath": "dbPassword",
        "readOnly": True,
    } in job_container["volumeMounts"]
    assert "cloudservice.dev/files-hash" in template["metadata"]["annotations"]


def test_job_runs_after_what_it_comes_after(mocks):
    def program():
        before = pulumi.CustomResource("test:index:Thing", "db")
        spec = spec_of("migrate", target="kubernetes", jobs=MIGRATE)
        namespace = namespace_for([spec])
        return KubernetesJob(
            "cloudservice-dev-migrate",
            KubernetesJobArgs(spec=spec, **workload_args(spec, namespace, links=REDIS, after=[before])),
        )

    run(program)
    assert mocks.get("test:index:Thing", "db").urn in mocks.get(JOB, "cloudservice-dev-migrate").dependencies


# -- what Compose files need ---------------------------------------------------------------------


def test_a_spec_without_the_new_fields_declares_what_it_did(mocks, warnings):
    """Existing stacks see no change: no new keys in the pod, the container, the Service or the
    metadata, no notice, no new objects but the NetworkPolicies that close the namespace to other
    namespaces and open the published ports (created beside the rest: nothing is replaced)."""
    _, web = deploy(mocks)
    _, redis = deploy(mocks, k8s_spec("redis"))
    for deployment in (web, redis):
        assert set(pod(deployment)) == {
            "enableServiceLinks",
            "imagePullSecrets",
            "securityContext",
            "containers",
            "volumes",
        }
        assert set(container(deployment)) == {
            "name",
            "image",
            "env",
            "resources",
            "securityContext",
            "volumeMounts",
            "ports",
            "readinessProbe",
            "livenessProbe",
            "lifecycle",
        }
        assert deployment.inputs["metadata"]["annotations"] == {**SERVER_SIDE_APPLY, "pulumi.com/skipAwait": "true"}
        assert set(deployment.inputs["spec"]["template"]["metadata"]) == {"labels", "annotations"}
    assert container(web)["ports"] == [{"name": "main", "containerPort": 8080}]
    assert mocks.get(SERVICE, "cloudservice-dev-web").inputs["spec"] == {
        "type": "NodePort",
        "selector": SELECTOR,
        "ports": [{"name": "main", "port": 8080, "targetPort": 8080}],
    }
    assert {r.type for r in mocks.resources if r.custom} == {
        NAMESPACE,
        SECRET,
        DEPLOYMENT,
        SERVICE,
        PVC,
        ROLLOUT_CHECK,
        NETWORK_POLICY,
    }
    assert warnings == []


def test_user_labels_are_annotations_of_the_deployment_its_pods_and_its_services(mocks):
    labels = {
        "com.example.description": "Front end: serves /, /notes",
        "app.kubernetes.io/name": "not-web",
        "pulumi.com/skipAwait": "false",
    }
    _, deployment = deploy(mocks, with_fields(labels=labels, aliases=("www",)))
    service, alias = mocks.get(SERVICE, "cloudservice-dev-web"), mocks.get(SERVICE, "cloudservice-dev-web-alias-www")
    template = deployment.inputs["spec"]["template"]["metadata"]
    for found in (
        deployment.inputs["metadata"]["annotations"],
        template["annotations"],
        service.inputs["metadata"]["annotations"],
        alias.inputs["metadata"]["annotations"],
    ):
        assert found["com.example.description"] == "Front end: serves /, /notes", "values need not be label-safe"
        assert found["app.kubernetes.io/name"] == "not-web"
    for resource in (deployment, service, alias):
        assert resource.inputs["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true", "the stack's own win"
        assert resource.inputs["metadata"]["labels"] == {**STACK_LABELS, "app.kubernetes.io/name": "web"}
    assert template["labels"] == {**STACK_LABELS, "app.kubernetes.io/name": "web"}
    assert deployment.inputs["spec"]["selector"]["matchLabels"] == SELECTOR


def test_working_dir_tty_and_stdin(mocks):
    _, deployment = deploy(mocks, with_fields(working_dir="/srv/app", tty=True, stdin_open=True))
    assert (container(deployment)["workingDir"], container(deployment)["tty"], container(deployment)["stdin"]) == (
        "/srv/app",
        True,
        True,
    )


def test_extra_hosts_are_host_aliases_grouped_by_address(mocks):
    hosts = {"db.local": ("10.0.0.5",), "cache.local": ("10.0.0.5", "fd00::5"), "api.local": ("10.0.0.9",)}
    _, deployment = deploy(mocks, with_fields(extra_hosts=hosts))
    assert pod(deployment)["hostAliases"] == [
        {"ip": "10.0.0.5", "hostnames": ["db.local", "cache.local"]},
        {"ip": "fd00::5", "hostnames": ["cache.local"]},
        {"ip": "10.0.0.9", "hostnames": ["api.local"]},
    ]


@pytest.mark.parametrize(
    "port,sysctls,expected",
    [
        (8080, {"net.core.somaxconn": "1024"}, [("net.core.somaxconn", "1024")]),
        (
            80,
            {"net.core.somaxconn": "1024"},
            [("net.ipv4.ip_unprivileged_port_start", "0"), ("net.core.somaxconn", "1024")],
        ),
        (80, {"net.ipv4.ip_unprivileged_port_start": "80"}, [("net.ipv4.ip_unprivileged_port_start", "80")]),
    ],
)
def test_sysctls_join_the_unprivileged_port_start(mocks, port, sysctls, expected):
    spec = with_fields(ports=(PortSpec(name="main", port=port, publish=8080),), health=None, sysctls=sysctls)
    _, deployment = deploy(mocks, spec)
    assert pod(deployment)["securityContext"]["sysctls"] == [{"name": name, "value": value} for name, value in expected]


def test_shm_tmpfs_and_ephemeral_paths_are_empty_dirs(mocks):
    spec = with_fields(shm_size_mb=256, tmpfs=("/tmp", "/run/app"), ephemeral=("/var/cache/app", "/scratch"))
    _, deployment = deploy(mocks, spec)
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    mounts = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
    assert volumes["shm"] == {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}
    assert mounts["/dev/shm"] == {"name": "shm", "mountPath": "/dev/shm"}
    assert volumes["tmpfs-0"] == {"name": "tmpfs-0", "emptyDir": {"medium": "Memory"}}
    assert mounts["/run/app"] == {"name": "tmpfs-0", "mountPath": "/run/app"}
    assert mounts["/tmp"]["name"] == "tmp", "a read-only container's /tmp is already there"
    assert volumes["ephemeral-0"] == {"name": "ephemeral-0", "emptyDir": {}}
    assert volumes["ephemeral-1"] == {"name": "ephemeral-1", "emptyDir": {}}
    assert (mounts["/var/cache/app"]["name"], mounts["/scratch"]["name"]) == ("ephemeral-0", "ephemeral-1")
    assert not any(m.get("readOnly") for m in mounts.values()), "writable, by the pod's fsGroup"
    assert pod(deployment)["securityContext"]["fsGroup"] == 10001
    assert len(volumes) == len(pod(deployment)["volumes"]), "no two pod volumes share a name"
    _, writable = deploy(mocks, dataclasses.replace(spec, name="wr", read_only=False, tmpfs=("/tmp",)))
    assert {"name": "tmpfs-0", "mountPath": "/tmp"} in container(writable)["volumeMounts"]


@pytest.mark.parametrize(
    "ports,grace",
    [
        ((PortSpec(name="main", port=8080, publish=8080),), 15),  # the preStop sleep of a service with ports counts too
        ((), 10),
    ],
)
def test_stop_grace_period_is_counted_from_the_stop_signal(mocks, ports, grace):
    _, deployment = deploy(mocks, with_fields(ports=ports, health=None, stop_grace_period=10))
    assert pod(deployment)["terminationGracePeriodSeconds"] == grace
    if ports:
        assert container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"] == grace - 10


def test_volumes_are_claims_with_dns_names_and_may_be_read_only(mocks):
    volumes = (
        VolumeSpec(path="/data"),
        VolumeSpec(path="/srv/seed", name="Seed_Data", read_only=True),
        VolumeSpec(path="/var/tmp", name="tmp", size="2Gi"),
    )
    _, deployment = deploy(mocks, dataclasses.replace(k8s_spec("redis"), volumes=volumes))
    data, seed, tmp = (mocks.get(PVC, f"cloudservice-dev-redis-{v.name}") for v in volumes)
    assert data.inputs["metadata"]["name"] == "redis-data", "the first release's volume keeps its name"
    seed_name = seed.inputs["metadata"]["name"]
    assert seed_name.startswith("redis-seed-data-") and seed_name == seed_name.lower(), "DNS-safe, distinct"
    assert tmp.inputs["metadata"]["name"] == "redis-tmp"
    assert tmp.inputs["spec"]["resources"]["requests"]["storage"] == "2Gi"
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["name"]
        for v in pod(deployment)["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
    assert claims["redis-data"] == "data" and mounts["data"] == {"name": "data", "mountPath": "/data"}
    assert mounts[claims[seed_name]] == {"name": claims[seed_name], "mountPath": "/srv/seed", "readOnly": True}
    assert claims["redis-tmp"] != "tmp", "the pod's own /tmp volume keeps its name"
    assert mounts[claims["redis-tmp"]]["mountPath"] == "/var/tmp"
    names = [v["name"] for v in pod(deployment)["volumes"]]
    assert len(set(names)) == len(names)
    assert deployment.inputs["spec"]["strategy"] == {"type": "Recreate"}


def test_read_only_volumes_only_roll(mocks):
    spec = with_fields(volumes=(VolumeSpec(path="/srv/seed", name="seed", read_only=True),))
    _, deployment = deploy(mocks, spec)
    assert deployment.inputs["spec"]["strategy"]["type"] == "RollingUpdate", "nothing written: pods may share it"


def test_udp_ports(mocks):
    ports = (PortSpec(name="dns", port=5353, protocol="udp"), PortSpec(name="http", port=8080, publish=8080))
    _, deployment = deploy(mocks, with_fields(ports=ports, health=None))
    assert container(deployment)["ports"] == [
        {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
        {"name": "http", "containerPort": 8080},
    ]
    assert mocks.get(SERVICE, "cloudservice-dev-web").inputs["spec"]["ports"] == [
        {"name": "dns", "port": 5353, "targetPort": 5353, "protocol": "UDP"},
        {"name": "http", "port": 8080, "targetPort": 8080},
    ]
    assert container(deployment)["livenessProbe"]["tcpSocket"] == {"port": 8080}, "a TCP probe cannot ask a UDP port"
    mocks.resources.clear()
    udp = PortSpec(name="dns", port=5353, publish=5353, protocol="udp")
    _, udp_only = deploy(mocks, with_fields(name="dns", ports=(udp,), health=None))
    assert "livenessProbe" not in container(udp_only)
    assert mocks.get(SERVICE, "cloudservice-dev-dns").inputs["spec"]["ports"] == [
        {"name": "dns", "port": 5353, "targetPort": 5353, "protocol": "UDP"}
    ]


def test_any_host_port_is_the_container_port_on_a_node_port(mocks):
    web, _ = deploy(mocks, with_fields(ports=(PortSpec(name="main", port=8080, publish=ANY_HOST_PORT),)))
    service = mocks.get(SERVICE, "cloudservice-dev-web")
    assert service.inputs["spec"]["type"] == "NodePort"
    assert service.inputs["spec"]["ports"] == [{"name": "main", "port": 8080, "targetPort": 8080}]
    assert resolve(web.url) == f"http://127.0.0.1:{service.outputs['spec']['ports'][0]['nodePort']}"


def test_aliases_are_more_services_of_the_same_pods(mocks):
    ports = (PortSpec(name="http", port=9200, publish=9201), PortSpec(name="transport", port=9300))
    web, _ = deploy(mocks, with_fields(name="elasticsearch", ports=ports, health=None, aliases=("es", "search")))
    component = mocks.get(KUBERNETES_SERVICE, "cloudservice-dev-elasticsearch")
    main = mocks.get(SERVICE, "cloudservice-dev-elasticsearch")
    for alias in ("es", "search"):
        service = mocks.get(SERVICE, f"cloudservice-dev-elasticsearch-alias-{alias}")
        assert mocks.parent_of(service) is component
        metadata = service.inputs["metadata"]
        assert (metadata["name"], metadata["namespace"]) == (alias, "cloudservice-dev")
        # As a Compose network alias: http://es:9200 reaches the container's port, whatever is published.
        assert service.inputs["spec"] == {
            "type": "ClusterIP",
            "selector": main.inputs["spec"]["selector"],
            "ports": [
                {"name": "http", "port": 9200, "targetPort": 9200},
                {"name": "transport", "port": 9300, "targetPort": 9300},
            ],
        }
    assert main.inputs["metadata"]["name"] == "elasticsearch" and main.urn.endswith("::cloudservice-dev-elasticsearch")
    assert resolve(web.service_name) == "elasticsearch"
    assert resolve(web.urls) == {"http": f"http://127.0.0.1:{main.outputs['spec']['ports'][0]['nodePort']}"}


def test_what_kubernetes_cannot_do_is_one_notice_per_workload(mocks, warnings):
    spec = with_fields(stop_signal="SIGQUIT", ulimits={"nofile": (1024, 2048)}, restart="on-failure")
    deploy(mocks, spec)
    ((resource, message),) = warnings
    assert resource == "cloudservice-dev-web"
    assert message.startswith("service web: ")
    for said in ("stopSignal SIGQUIT", "SIGTERM", "ulimits (nofile)", "restart on-failure", "always restarts"):
        assert said in message, said
    warnings.clear()
    deploy(mocks, with_fields(name="ok", restart="always", stop_signal="SIGTERM"))
    assert warnings == []


def test_init_shares_the_pods_process_namespace_so_pause_is_pid_1(mocks, warnings):
    """Docker's --init on a cluster: the pause process reaps zombies, and the command, no longer PID 1,
    stops on SIGTERM without a handler of its own."""
    deploy(mocks, with_fields(init=True))
    pod = mocks.get(DEPLOYMENT, "cloudservice-dev-web").inputs["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True and warnings == []
    deploy(mocks, with_fields(name="plain"))
    plain = mocks.get(DEPLOYMENT, "cloudservice-dev-plain").inputs["spec"]["template"]["spec"]
    assert "shareProcessNamespace" not in plain


def test_aliases_of_a_service_without_ports_are_a_notice(mocks, warnings):
    deploy(mocks, with_fields(name="worker", ports=(), health=None, aliases=("bee",)))
    assert not any(r.type == SERVICE for r in mocks.resources)
    ((resource, message),) = warnings
    assert resource == "cloudservice-dev-worker" and "aliases (bee)" in message and "without ports" in message


def test_pods_carry_a_label_per_network_and_published_ports_stay_open(mocks):
    _, deployment = deploy(mocks, networks=["front", "back_end"])
    labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
    assert labels["network.cloudservice.dev/front"] == "true"
    (back,) = [key for key in labels if key.startswith("network.cloudservice.dev/back")]
    assert labels[back] == "true" and back.split("/")[1] == back.split("/")[1].lower()
    assert deployment.inputs["spec"]["selector"]["matchLabels"] == SELECTOR
    assert deployment.inputs["metadata"]["labels"] == {**STACK_LABELS, "app.kubernetes.io/name": "web"}
    policy = mocks.get(NETWORK_POLICY, "cloudservice-dev-web-published")
    assert mocks.parent_of(policy).type == KUBERNETES_SERVICE
    assert policy.inputs["metadata"]["name"] == "published-web"
    assert policy.inputs["spec"] == {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"port": 8080}]}],
    }


def test_published_ports_stay_open_with_or_without_networks_and_unpublished_ones_do_not(mocks):
    deploy(mocks, k8s_spec("redis"), networks=["default"])
    assert mocks.find(NETWORK_POLICY, "cloudservice-dev-redis-published") is None
    deploy(mocks)
    assert mocks.get(NETWORK_POLICY, "cloudservice-dev-web-published").inputs["spec"] == {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"port": 8080}]}],
    }


def test_namespace_takes_connections_from_its_own_pods_only(mocks):
    """Every pod of an app without networks is closed to other namespaces: a rule `from` pods
    without a namespace selector means this namespace's."""
    run(lambda: namespace_for([k8s_spec()]))
    component = mocks.get(APP_NAMESPACE, "cloudservice-dev-namespace")
    policy = mocks.get(NETWORK_POLICY, "cloudservice-dev-namespace-same-namespace-only")
    assert mocks.parent_of(policy) is component
    assert policy.inputs["metadata"] == {
        "name": "same-namespace-only",
        "namespace": "cloudservice-dev",
        "labels": STACK_LABELS,
        "annotations": SERVER_SIDE_APPLY,
    }
    assert policy.inputs["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {}}]}],
    }


def test_with_networks_the_namespace_policy_leaves_their_pods_to_their_own_policies(mocks):
    """NetworkPolicies add up: were the namespace's own over every pod, any pod of the namespace would
    reach every network. It selects the pods of no network (those on external networks only), under
    the same name, so adding networks updates it in place."""
    run(
        lambda: AppNamespace(
            "cloudservice-dev-namespace",
            AppNamespaceArgs(namespace="cloudservice-dev", labels=STACK_LABELS, networks=["default", "back_end"]),
        )
    )
    policy = mocks.get(NETWORK_POLICY, "cloudservice-dev-namespace-same-namespace-only")
    assert policy.inputs["metadata"]["name"] == "same-namespace-only"
    selectors = [
        mocks.get(NETWORK_POLICY, f"cloudservice-dev-namespace-network-{n}").inputs["spec"]["podSelector"]
        for n in ("default", "back_end")
    ]
    labels = [
        next(k for k in selector["matchLabels"] if k.startswith("network.cloudservice.dev/")) for selector in selectors
    ]
    assert policy.inputs["spec"]["podSelector"] == {
        "matchExpressions": [{"key": label, "operator": "DoesNotExist"} for label in labels]
    }
    assert policy.inputs["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_namespace_isolates_each_network(mocks):
    run(
        lambda: AppNamespace(
            "cloudservice-dev-namespace",
            AppNamespaceArgs(namespace="cloudservice-dev", labels=STACK_LABELS, networks=["default", "back_end"]),
        )
    )
    component = mocks.get(APP_NAMESPACE, "cloudservice-dev-namespace")
    for network in ("default", "back_end"):
        policy = mocks.get(NETWORK_POLICY, f"cloudservice-dev-namespace-network-{network}")
        assert mocks.parent_of(policy) is component
        assert policy.inputs["metadata"]["namespace"] == "cloudservice-dev"
        assert policy.inputs["metadata"]["labels"] == STACK_LABELS
        members = policy.inputs["spec"]["podSelector"]
        (label,) = [key for key in members["matchLabels"] if key.startswith("network.cloudservice.dev/")]
        assert members == {"matchLabels": {label: "true", "cloudservice.dev/stack": "dev"}}
        assert policy.inputs["spec"] == {
            "podSelector": members,
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": members}]}],
        }
    names = [
        mocks.get(NETWORK_POLICY, f"cloudservice-dev-namespace-network-{network}").inputs["metadata"]["name"]
        for network in ("default", "back_end")
    ]
    assert names[0] == "network-default" and names[1].startswith("network-back-end-")


def test_job_takes_the_workload_fields(mocks, warnings):
    base = spec_of("migrate", target="kubernetes", jobs=MIGRATE)
    spec = dataclasses.replace(
        base,
        labels={"com.example.team": "data"},
        working_dir="/work",
        stop_grace_period=7,
        extra_hosts={"db.local": ("10.0.0.5",)},
        ephemeral=("/scratch",),
        init=True,
    )

    def program():
        namespace = namespace_for([spec])
        return KubernetesJob(
            "cloudservice-dev-migrate",
            KubernetesJobArgs(spec=spec, **workload_args(spec, namespace, links=REDIS, networks=["default"])),
        )

    run(program)
    created = mocks.get(JOB, "cloudservice-dev-migrate")
    template = created.inputs["spec"]["template"]
    assert created.inputs["metadata"]["annotations"]["com.example.team"] == "data"
    assert template["metadata"]["annotations"]["com.example.team"] == "data"
    assert template["metadata"]["labels"]["network.cloudservice.dev/default"] == "true"
    assert template["spec"]["terminationGracePeriodSeconds"] == 7, "no preStop hook to cover"
    assert template["spec"]["hostAliases"] == [{"ip": "10.0.0.5", "hostnames": ["db.local"]}]
    (job_container,) = template["spec"]["containers"]
    assert job_container["workingDir"] == "/work"
    assert {"name": "ephemeral-0", "mountPath": "/scratch"} in job_container["volumeMounts"]
    assert template["spec"]["shareProcessNamespace"] is True
    assert warnings == [], "init is the shared process namespace"
