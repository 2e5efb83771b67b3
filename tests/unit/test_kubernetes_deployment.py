"""components/kubernetes_deployment.py: a Deployment + Service per service in the stack's namespace."""

from __future__ import annotations

import base64
import json

import pytest

from components.kubernetes_deployment import KubernetesDeployment, KubernetesDeploymentArgs
from harness import (
    DEPLOYMENT, NAMESPACE, PVC, SECRET, SERVICE, default_services, fake_digest, kubernetes_config, make_config,
    plaintext_occurrences, resolve, run,
)
from pulumi.runtime import rpc

COMPONENT = "cloudservice:index:KubernetesDeployment"
IMAGES = {name: f"localhost:5000/cloudservice/{name}@{fake_digest(name)}" for name in ("web", "redis")}
PASSWORD = "s3cr3t-registry-pw"


def deploy(mocks, config=None, images=None):
    config = config or kubernetes_config(replicas=2)
    deployment = run(lambda: KubernetesDeployment("kubernetes", KubernetesDeploymentArgs(config=config, images=images or IMAGES)))
    return deployment, {d.name: d for d in mocks.of_type(DEPLOYMENT)}


def pod(deployment) -> dict:
    return deployment.inputs["spec"]["template"]["spec"]


def container(deployment) -> dict:
    (only,) = pod(deployment)["containers"]
    return only


def test_everything_lives_in_the_stack_namespace_under_the_component(mocks):
    component, _ = deploy(mocks)
    namespace = mocks.get(NAMESPACE, "namespace")
    assert namespace.inputs["metadata"]["name"] == "cloudservice-dev"
    assert namespace.inputs["metadata"]["labels"]["cloudservice.dev/stack"] == "dev"
    assert resolve(component.namespace) == "cloudservice-dev"
    parent = mocks.get(COMPONENT, "kubernetes")
    children = [r for r in mocks.resources if r.type.startswith("kubernetes:")]
    assert {(r.type, r.name) for r in children} == {
        (NAMESPACE, "namespace"), (SECRET, "registry-credentials"), (PVC, "redis-data"),
        (DEPLOYMENT, "web"), (DEPLOYMENT, "redis"), (SERVICE, "web"), (SERVICE, "redis"),
    }
    for resource in children:
        assert mocks.parent_of(resource) is parent
        if resource is not namespace:
            assert resource.inputs["metadata"]["namespace"] == "cloudservice-dev"
            assert namespace.urn in resource.dependencies, f"{resource.name} waits for its namespace"


def test_selectors_match_the_pod_template_labels(mocks):
    _, deployments = deploy(mocks)
    for name, deployment in deployments.items():
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        selector = deployment.inputs["spec"]["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": name, "cloudservice.dev/stack": "dev"}
        assert selector.items() <= labels.items()
        assert labels["app.kubernetes.io/part-of"] == "cloudservice"
        assert deployment.inputs["metadata"]["labels"] == labels
        service = mocks.get(SERVICE, name)
        assert service.inputs["spec"]["selector"].items() <= labels.items()


def test_pods_run_images_by_digest(mocks):
    _, deployments = deploy(mocks)
    for name, deployment in deployments.items():
        assert container(deployment)["image"] == IMAGES[name]
        assert "@sha256:" in container(deployment)["image"]


def test_ports_of_containers_and_services(mocks):
    component, deployments = deploy(mocks)
    assert container(deployments["web"])["ports"] == [{"containerPort": 8080}]
    assert container(deployments["redis"])["ports"] == [{"containerPort": 6379}]
    web, redis = mocks.get(SERVICE, "web"), mocks.get(SERVICE, "redis")
    assert web.inputs["spec"]["type"] == "NodePort"
    assert web.inputs["spec"]["ports"] == [{"name": "main", "port": 8080, "targetPort": 8080}]
    assert redis.inputs["spec"]["type"] == "ClusterIP", "unpublished services stay inside the cluster"
    assert redis.inputs["spec"]["ports"] == [{"name": "main", "port": 6379, "targetPort": 6379}]
    node_port = web.outputs["spec"]["ports"][0]["nodePort"]
    assert resolve(component.urls) == {"web": f"http://127.0.0.1:{node_port}"}
    assert resolve(component.services) == {"web": "web", "redis": "redis"}


def test_replicas_and_rollout_strategy(mocks):
    _, deployments = deploy(mocks)
    web, redis = deployments["web"].inputs["spec"], deployments["redis"].inputs["spec"]
    assert web["replicas"] == 2
    assert web["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert redis["replicas"] == 1
    assert redis["strategy"] == {"type": "Recreate"}, "one RWO volume cannot be mounted by old and new pod"


@pytest.mark.parametrize("name,user", [("web", 10001), ("redis", 10002)])
def test_pods_are_hardened(mocks, name, user):
    _, deployments = deploy(mocks)
    spec = pod(deployments[name])
    assert spec["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": user, "runAsGroup": user, "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["enableServiceLinks"] is False
    assert container(deployments[name])["securityContext"] == {
        "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}} in spec["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container(deployments[name])["volumeMounts"]


@pytest.mark.parametrize("name,memory", [("web", "96Mi"), ("redis", "128Mi")])
def test_memory_requests_equal_limits_and_cpu_requests_stay_small(mocks, name, memory):
    _, deployments = deploy(mocks)
    resources = container(deployments[name])["resources"]
    assert resources == {"requests": {"cpu": "50m", "memory": memory}, "limits": {"cpu": "500m", "memory": memory}}


def test_probes(mocks):
    _, deployments = deploy(mocks)
    web, redis = container(deployments["web"]), container(deployments["redis"])
    timing = {"periodSeconds": 2, "timeoutSeconds": 3, "failureThreshold": 3}
    assert web["readinessProbe"] == {"httpGet": {"path": "/healthz", "port": 8080}, **timing}
    assert redis["readinessProbe"] == {"exec": {"command": ["redis-cli", "ping"]}, **timing}
    assert web["livenessProbe"]["tcpSocket"] == {"port": 8080}
    assert redis["livenessProbe"]["tcpSocket"] == {"port": 6379}
    assert web["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}


def test_image_pull_secret_holds_the_registry_credentials_as_a_secret(mocks):
    _, deployments = deploy(mocks)
    secret = mocks.get(SECRET, "registry-credentials")
    assert secret.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert secret.inputs["metadata"]["name"] == "registry-credentials"
    assert rpc.is_rpc_secret(secret.inputs["stringData"]), "the credentials are sent encrypted"
    auths = json.loads(rpc.unwrap_rpc_secret(secret.inputs["stringData"])[".dockerconfigjson"])["auths"]
    assert auths == {"localhost:5000": {
        "username": "cloudservice", "password": PASSWORD,
        "auth": base64.b64encode(f"cloudservice:{PASSWORD}".encode()).decode(),
    }}
    for deployment in deployments.values():
        assert pod(deployment)["imagePullSecrets"] == [{"name": "registry-credentials"}]
        assert secret.urn in deployment.dependencies
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, PASSWORD) == [], f"{resource.type} {resource.name}"


def test_no_registry_means_no_pull_secret(mocks):
    pinned = {name: f"docker.io/example/{name}@{fake_digest(name)}" for name in ("web", "redis")}
    config = make_config(target="kubernetes", images=pinned)
    _, deployments = deploy(mocks, config, images=pinned)
    assert mocks.find(SECRET, "registry-credentials") is None
    assert all(pod(d)["imagePullSecrets"] == [] for d in deployments.values())


def test_volume_is_a_claim_mounted_by_the_pod(mocks):
    _, deployments = deploy(mocks, kubernetes_config(kubernetes={"storageClass": "local-path"}))
    claim = mocks.get(PVC, "redis-data")
    assert claim.inputs["metadata"]["name"] == "redis-data"
    assert claim.inputs["spec"] == {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "local-path",
    }
    redis = deployments["redis"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "redis-data"}} in pod(redis)["volumes"]
    assert {"name": "data", "mountPath": "/data"} in container(redis)["volumeMounts"]
    assert claim.urn in redis.dependencies
    assert not any("persistentVolumeClaim" in v for v in pod(deployments["web"])["volumes"])


def test_links_point_at_the_linked_service_by_its_dns_name(mocks):
    _, deployments = deploy(mocks)
    redis_service = mocks.get(SERVICE, "redis")
    env = container(deployments["web"])["env"]
    assert env == [{"name": "REDIS_HOST", "value": "redis"}, {"name": "REDIS_PORT", "value": "6379"}]
    assert redis_service.inputs["metadata"]["name"] == "redis"
    # The web rollout does not wait for the redis Service: both start side by side.
    assert redis_service.urn not in deployments["web"].dependencies
    assert container(deployments["redis"])["env"] == []


def test_secret_env_comes_from_the_app_secret(mocks):
    services = default_services()
    services["web"]["secretEnv"] = {"APP_SECRET": "appSecret"}
    services["web"]["env"] = {"MODE": "production"}
    _, deployments = deploy(mocks, kubernetes_config(services=services, appSecret="app-secret-value"))
    secret = mocks.get(SECRET, "app-secrets")
    assert rpc.is_rpc_secret(secret.inputs["stringData"])
    assert rpc.unwrap_rpc_secret(secret.inputs["stringData"]) == {"appSecret": "app-secret-value"}
    env = container(deployments["web"])["env"]
    assert {"name": "MODE", "value": "production"} in env
    assert {"name": "APP_SECRET", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "appSecret"}}} in env
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, "app-secret-value") == [], resource.name


def test_no_secret_env_means_no_app_secret(mocks):
    deploy(mocks)
    assert mocks.find(SECRET, "app-secrets") is None


@pytest.mark.parametrize("service_type", ["ClusterIP", "LoadBalancer"])
def test_urls_follow_the_service_type(mocks, service_type):
    component, _ = deploy(mocks, kubernetes_config(kubernetes={"serviceType": service_type, "nodeHost": "node1"}))
    web = mocks.get(SERVICE, "web")
    assert web.inputs["spec"]["type"] == service_type
    if service_type == "ClusterIP":
        expected = f"http://{web.outputs['spec']['clusterIP']}:8080"
    else:
        expected = f"http://{web.outputs['status']['loadBalancer']['ingress'][0]['ip']}:8080"
    assert resolve(component.urls) == {"web": expected}


def test_custom_namespace(mocks):
    deploy(mocks, kubernetes_config(kubernetes={"namespace": "team-a"}))
    assert mocks.get(NAMESPACE, "namespace").inputs["metadata"]["name"] == "team-a"
    assert {d.inputs["metadata"]["namespace"] for d in mocks.of_type(DEPLOYMENT)} == {"team-a"}


def test_deployments_wait_for_the_app_secret_they_reference(mocks):
    services = default_services()
    services["web"]["secretEnv"] = {"APP_SECRET": "appSecret"}
    _, deployments = deploy(mocks, kubernetes_config(services=services, appSecret="app-secret-value"))
    assert mocks.get(SECRET, "app-secrets").urn in deployments["web"].dependencies


def test_deployments_roll_instead_of_being_replaced(mocks):
    """A pod template change must be an update (a rolling update), never delete-then-create."""
    _, deployments = deploy(mocks, kubernetes_config())
    for deployment in deployments.values():
        assert deployment.ignore_changes == ["spec.selector"]
        assert not deployment.delete_before_replace
