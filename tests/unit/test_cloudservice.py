"""components/cloudservice.py: the whole resource graph per target, image sources, the order in
which workloads start (links, dependsOn, jobs), secrets, and two apps in one stack."""

from __future__ import annotations

import dataclasses
import json
import os

import pulumi
import pytest
from harness import (
    DB_PASSWORD,
    REGISTRY,
    app_args,
    default_services,
    deploy,
    docker_config,
    kubernetes_config,
    make_config,
    stack_values,
)
from pulumi.runtime import rpc
from recorder import (
    APP_NAMESPACE,
    APP_NETWORK,
    CLOUD_SERVICE,
    CONFIG_MAP,
    CONTAINER,
    CONTAINER_IMAGE,
    DEPLOYMENT,
    DOCKER_JOB,
    DOCKER_PROVIDER,
    DOCKER_SERVICE,
    JOB,
    JOB_CHECK,
    K8S_PROVIDER,
    KUBERNETES_JOB,
    KUBERNETES_SERVICE,
    NAMESPACE,
    NETWORK,
    NETWORK_POLICY,
    PVC,
    REGISTRY_IMAGE,
    REMOTE_IMAGE,
    ROLLOUT_CHECK,
    SECRET,
    SERVICE,
    STACK_REFERENCE,
    VOLUME,
    fake_digest,
    image_id,
    install_mocks,
    is_secret,
    plaintext_occurrences,
    registry_digest,
    resolve,
    run,
)

from components.cloudservice import CloudService, _image_from_stack
from components.image import content_tag
from components.kubernetes_objects import SERVER_SIDE_APPLY
from components.pod_security import namespace_labels
from components.spec import DockerSettings, NetworkSpec

PASSWORD = REGISTRY["registryPassword"]
REPO = "localhost:5000/cloudservice"
APP = "cloudservice-dev"


def tag_of(config, workload: str) -> str:
    build = next(w for w in config.app.workloads if w.name == workload).build
    return f"{REPO}/{workload}:{content_tag(build)}"


def docker_resources(mocks):
    return [r for r in mocks.resources if r.type.startswith("docker:")]


def kubernetes_resources(mocks):
    return [r for r in mocks.resources if r.type.startswith("kubernetes:")]


def pod_image(deployment) -> str:
    return deployment.inputs["spec"]["template"]["spec"]["containers"][0]["image"]


def with_services(**changes) -> dict:
    """The project's services with `changes` merged into each named one (None removes a key)."""
    services = default_services()
    for name, change in changes.items():
        services[name] = {k: v for k, v in {**services.get(name, {}), **change}.items() if v is not None}
    return services


MIGRATE = {
    "migrate": {
        "build": "app/web",
        "args": ["migrate"],
        "links": ["redis"],
        "dependsOn": {"redis": "healthy"},
        "secretEnv": {"DB_PASSWORD": "dbPassword"},
    }
}


def with_job(target: str, **values):
    """The app with a `migrate` job the web service waits for (dependsOn completed)."""
    services = with_services(web={"dependsOn": {"migrate": "completed"}})
    return make_config(target=target, services=services, jobs=MIGRATE, dbPassword=DB_PASSWORD, **REGISTRY, **values)


# -- docker target -------------------------------------------------------------------------------


def test_docker_target_graph(mocks):
    app = deploy(docker_config())
    root = mocks.get(CLOUD_SERVICE, APP)
    provider = mocks.get(DOCKER_PROVIDER, f"{APP}-docker")
    assert {(r.type, r.name) for r in mocks.children_of(root)} == {
        (DOCKER_PROVIDER, f"{APP}-docker"),
        (CONTAINER_IMAGE, f"{APP}-web"),
        (CONTAINER_IMAGE, f"{APP}-redis"),
        (APP_NETWORK, f"{APP}-network"),
        (DOCKER_SERVICE, f"{APP}-web"),
        (DOCKER_SERVICE, f"{APP}-redis"),
    }
    assert kubernetes_resources(mocks) == [] and mocks.of_type(K8S_PROVIDER) == []
    assert {(r.type, r.name) for r in docker_resources(mocks)} == {
        (REMOTE_IMAGE, f"{APP}-web"),
        (REMOTE_IMAGE, f"{APP}-redis"),
        (REGISTRY_IMAGE, f"{APP}-web"),
        (REGISTRY_IMAGE, f"{APP}-redis"),
        (NETWORK, f"{APP}-network"),
        (VOLUME, f"{APP}-redis-data"),
        (CONTAINER, f"{APP}-web"),
        (CONTAINER, f"{APP}-redis"),
        (CONTAINER, f"{APP}-redis-data-owner"),
    }
    for resource in docker_resources(mocks):
        assert mocks.provider_of(resource) is provider, f"{resource.type} {resource.name} uses the stack's engine"
    for name in ("web", "redis"):
        assert mocks.parent_of(mocks.get(CONTAINER, f"{APP}-{name}")) is mocks.get(DOCKER_SERVICE, f"{APP}-{name}")
    assert resolve(app.network) == APP
    assert resolve(app.urls) == {"web": "http://127.0.0.1:8080"}
    assert resolve(app.url) == "http://127.0.0.1:8080"
    assert app.namespace is None and app.services is None


def test_docker_containers_run_the_built_images(mocks):
    config = docker_config()
    app = deploy(config)
    for service in ("web", "redis"):
        name = tag_of(config, service)
        assert mocks.get(REMOTE_IMAGE, f"{APP}-{service}").inputs["name"] == name
        container = mocks.get(CONTAINER, f"{APP}-{service}")
        assert container.inputs["image"] == image_id(name)
        assert container.inputs["networksAdvanced"][0]["name"] == APP
    assert resolve(app.images) == {s: f"{REPO}/{s}@{registry_digest(tag_of(config, s))}" for s in ("web", "redis")}
    assert resolve(app.digests) == {s: registry_digest(tag_of(config, s)) for s in ("web", "redis")}


def test_docker_containers_wait_for_the_push(mocks):
    """A failed push must leave the running containers alone: they depend on the pushed image."""
    deploy(docker_config())
    for service in ("web", "redis"):
        assert (
            mocks.get(REGISTRY_IMAGE, f"{APP}-{service}").urn in mocks.get(CONTAINER, f"{APP}-{service}").dependencies
        )


def test_docker_links_order_the_containers(mocks):
    deploy(docker_config())
    assert mocks.get(CONTAINER, f"{APP}-redis").urn in mocks.get(CONTAINER, f"{APP}-web").dependencies
    assert mocks.get(CONTAINER, f"{APP}-web").urn not in mocks.get(CONTAINER, f"{APP}-redis").dependencies
    assert mocks.get(CONTAINER, f"{APP}-web").inputs["envs"] == ["REDIS_HOST=redis", "REDIS_PORT=6379"]


def test_docker_host_and_registry_auth_configure_the_provider(mocks):
    deploy(docker_config(dockerHost="unix:///run/user/1000/docker.sock"))
    provider = mocks.get(DOCKER_PROVIDER, f"{APP}-docker")
    assert provider.inputs["host"] == "unix:///run/user/1000/docker.sock"
    auth = provider.inputs["registryAuth"]
    assert rpc.is_rpc_secret(auth), "registry auth (with the password) is a secret input"
    assert json.loads(rpc.unwrap_rpc_secret(auth)) == [
        {"address": "http://localhost:5000", "username": "cloudservice", "password": PASSWORD}
    ]


def test_without_push_nothing_is_pushed(mocks):
    config = make_config(target="docker")
    app = deploy(config)
    assert mocks.of_type(REGISTRY_IMAGE) == []
    assert "registryAuth" not in mocks.get(DOCKER_PROVIDER, f"{APP}-docker").inputs
    assert resolve(app.images) == {
        s: f"cloudservice/{s}:{content_tag(config.app.service(s).build)}" for s in ("web", "redis")
    }
    assert resolve(app.digests) == {"web": None, "redis": None}


def test_service_with_an_image_reference_is_pulled_not_built(mocks):
    deploy(docker_config(services=with_services(redis={"build": None, "image": "redis:7-bookworm"})))
    redis = mocks.get(REMOTE_IMAGE, f"{APP}-redis")
    assert redis.inputs["name"] == "redis:7-bookworm" and "build" not in redis.inputs
    assert mocks.find(REGISTRY_IMAGE, f"{APP}-redis") is None
    assert mocks.get(CONTAINER, f"{APP}-redis").inputs["image"] == image_id("redis:7-bookworm")


def test_stand_ins_are_tagged_for_the_bases_builds_use_only(mocks):
    """baseImages: the project's Dockerfiles build FROM ${BASE_IMAGE}; a stand-in nobody uses is not tagged."""
    mocks.local_images = {"cloudservice/base:bookworm": fake_digest("base")}
    config = docker_config(
        buildArgs={"BASE_IMAGE": "python:3.12-slim"},
        baseImages={"python:3.12-slim": "cloudservice/base:bookworm", "node:22": "cloudservice/base:bookworm"},
    )
    deploy(config)
    tags = mocks.of_type("docker:index/tag:Tag")
    assert [(t.inputs["targetImage"], t.inputs["sourceImage"]) for t in tags] == [
        ("python:3.12-slim", "cloudservice/base:bookworm")
    ]
    assert mocks.provider_of(tags[0]).type == DOCKER_PROVIDER
    for image in mocks.of_type(REMOTE_IMAGE):
        assert tags[0].urn in image.dependencies, "built after the stand-in is tagged"


def test_docker_port_offset_and_ready_timeout_reach_the_containers(mocks):
    app = deploy(docker_config(portOffset=100, readyTimeout=45))
    web = mocks.get(CONTAINER, f"{APP}-web")
    assert web.inputs["ports"] == [{"internal": 8080, "external": 8180, "ip": "127.0.0.1"}]
    for name in ("web", "redis"):
        assert mocks.get(ROLLOUT_CHECK, f"{APP}-{name}-ready").inputs["timeout"] == 45
    assert resolve(app.url) == "http://127.0.0.1:8180"


def test_docker_two_ports_are_both_published(mocks):
    services = with_services(
        web={
            "port": None,
            "publish": None,
            "ports": {"http": {"port": 8080, "publish": 8080}, "admin": {"port": 9000, "publish": 9000}},
        }
    )
    app = deploy(docker_config(services=services))
    assert [p["external"] for p in mocks.get(CONTAINER, f"{APP}-web").inputs["ports"]] == [8080, 9000]
    assert resolve(app.urls) == {"web": "http://127.0.0.1:8080"}, "an app's URL per service is its main port's"


def test_docker_worker_without_ports(mocks):
    services = with_services(worker={"build": "app/web", "args": ["worker"], "links": ["redis"]})
    app = deploy(docker_config(services=services))
    worker = mocks.get(CONTAINER, f"{APP}-worker")
    assert worker.inputs["ports"] == [] and "healthcheck" not in worker.inputs
    assert mocks.get(CONTAINER, f"{APP}-redis").urn in worker.dependencies
    assert set(resolve(app.urls)) == {"web"}


def test_docker_job_runs_before_its_dependants(mocks):
    config = with_job("docker")
    deploy(config)
    job = mocks.get(CONTAINER, f"{APP}-migrate")
    assert mocks.parent_of(job) is mocks.get(DOCKER_JOB, f"{APP}-migrate")
    assert (job.inputs["mustRun"], job.inputs["restart"]) == (False, "no") and "attach" not in job.inputs
    assert job.inputs["image"] == image_id(tag_of(config, "migrate")), "the job's image is built like a service's"
    assert mocks.get(REGISTRY_IMAGE, f"{APP}-migrate").urn in job.dependencies
    assert mocks.get(CONTAINER, f"{APP}-redis").urn in job.dependencies, "the job runs once redis is healthy"
    web = mocks.get(CONTAINER, f"{APP}-web")
    assert mocks.get(JOB_CHECK, f"{APP}-migrate-completed").urn in web.dependencies, (
        "web (re)starts only after the job completed"
    )
    assert job.urn not in mocks.get(CONTAINER, f"{APP}-redis").dependencies


def test_docker_depends_on_a_service(mocks):
    services = with_services(web={"links": [], "dependsOn": {"redis": "healthy"}})
    deploy(docker_config(services=services))
    web = mocks.get(CONTAINER, f"{APP}-web")
    assert mocks.get(CONTAINER, f"{APP}-redis").urn in web.dependencies
    assert web.inputs["envs"] == [], "dependsOn alone gives no link variables"


# -- kubernetes target ---------------------------------------------------------------------------


def test_kubernetes_target_graph(mocks):
    app = deploy(kubernetes_config(replicas=2))
    root = mocks.get(CLOUD_SERVICE, APP)
    cluster, engine = mocks.get(K8S_PROVIDER, f"{APP}-kubernetes"), mocks.get(DOCKER_PROVIDER, f"{APP}-docker")
    assert {(r.type, r.name) for r in mocks.children_of(root)} == {
        (DOCKER_PROVIDER, f"{APP}-docker"),
        (K8S_PROVIDER, f"{APP}-kubernetes"),
        (CONTAINER_IMAGE, f"{APP}-web"),
        (CONTAINER_IMAGE, f"{APP}-redis"),
        (APP_NAMESPACE, f"{APP}-namespace"),
        (KUBERNETES_SERVICE, f"{APP}-web"),
        (KUBERNETES_SERVICE, f"{APP}-redis"),
    }
    assert {(r.type, r.name) for r in kubernetes_resources(mocks)} == {
        (NAMESPACE, f"{APP}-namespace"),
        (NETWORK_POLICY, f"{APP}-namespace-same-namespace-only"),
        (NETWORK_POLICY, f"{APP}-web-published"),
        (SECRET, f"{APP}-namespace-registry-credentials"),
        (PVC, f"{APP}-redis-data"),
        (DEPLOYMENT, f"{APP}-web"),
        (DEPLOYMENT, f"{APP}-redis"),
        (SERVICE, f"{APP}-web"),
        (SERVICE, f"{APP}-redis"),
    }
    assert mocks.of_type(CONTAINER) == [] and mocks.of_type(NETWORK) == [] and mocks.of_type(VOLUME) == []
    for resource in kubernetes_resources(mocks):
        assert mocks.provider_of(resource) is cluster, f"{resource.type} {resource.name} goes to the stack's cluster"
    for resource in docker_resources(mocks):
        assert mocks.provider_of(resource) is engine, "images are built and pushed with the docker engine"
    assert mocks.get(DEPLOYMENT, f"{APP}-web").inputs["spec"]["replicas"] == 2
    assert resolve(app.namespace) == APP
    assert resolve(app.services) == {"web": "web", "redis": "redis"}
    assert app.network is None
    assert resolve(app.url).startswith("http://127.0.0.1:")


def test_pods_run_the_pushed_digests(mocks):
    config = kubernetes_config()
    app = deploy(config)
    for service in ("web", "redis"):
        pushed = mocks.get(REGISTRY_IMAGE, f"{APP}-{service}")
        assert pushed.inputs["name"] == tag_of(config, service)
        deployment = mocks.get(DEPLOYMENT, f"{APP}-{service}")
        assert pod_image(deployment) == f"{REPO}/{service}@{pushed.outputs['sha256Digest']}"
        assert pushed.urn in deployment.dependencies
    assert resolve(app.images) == {s: f"{REPO}/{s}@{registry_digest(tag_of(config, s))}" for s in ("web", "redis")}


def test_kubernetes_links_do_not_wait_but_depends_on_does(mocks):
    """Links resolve by DNS name: linked services start side by side. dependsOn orders them."""
    deploy(kubernetes_config())
    web, redis = mocks.get(DEPLOYMENT, f"{APP}-web"), mocks.get(DEPLOYMENT, f"{APP}-redis")
    assert redis.urn not in web.dependencies and mocks.get(SERVICE, f"{APP}-redis").urn not in web.dependencies
    assert {"name": "REDIS_HOST", "value": "redis"} in web.inputs["spec"]["template"]["spec"]["containers"][0]["env"]


def test_kubernetes_depends_on_a_service(mocks):
    deploy(kubernetes_config(services=with_services(web={"dependsOn": {"redis": "healthy"}})))
    assert mocks.get(DEPLOYMENT, f"{APP}-redis").urn in mocks.get(DEPLOYMENT, f"{APP}-web").dependencies


def test_kubeconfig_and_context_configure_the_cluster_provider(mocks, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "ci").write_text("apiVersion: v1\nkind: Config\n")
    deploy(kubernetes_config(kubernetes={"kubeconfig": "~/.kube/ci", "context": "ci-admin"}))
    cluster = mocks.get(K8S_PROVIDER, f"{APP}-kubernetes")
    assert cluster.inputs["kubeconfig"] == os.path.join(str(tmp_path), ".kube", "ci")
    assert cluster.inputs["context"] == "ci-admin"


def test_kubernetes_ready_timeout_and_namespace(mocks):
    deploy(kubernetes_config(readyTimeout=90, kubernetes={"namespace": "team-a"}))
    assert mocks.get(NAMESPACE, f"{APP}-namespace").inputs["metadata"]["name"] == "team-a"
    for name in ("web", "redis"):
        deployment = mocks.get(DEPLOYMENT, f"{APP}-{name}")
        assert deployment.inputs["metadata"]["annotations"] == {**SERVER_SIDE_APPLY, "pulumi.com/skipAwait": "true"}
        assert mocks.get(ROLLOUT_CHECK, f"{APP}-{name}-ready").inputs["timeout"] == 90
        assert deployment.inputs["metadata"]["namespace"] == "team-a"


@pytest.mark.parametrize(
    "web, jobs, level",
    [
        ({}, None, "restricted"),
        ({"readOnly": False}, None, "restricted"),
        ({"capabilities": ["NET_BIND_SERVICE"]}, None, "restricted"),
        ({"user": "image"}, None, "baseline"),
        ({"capabilities": ["CHOWN", "SETUID", "SETGID"]}, None, "baseline"),
        ({}, {"migrate": {**MIGRATE["migrate"], "user": "image"}}, "baseline"),
        ({"capabilities": ["NET_ADMIN"]}, None, "privileged"),
        ({"sysctls": {"net.core.somaxconn": "1024"}}, None, "privileged"),
    ],
    ids=[
        "default",
        "writable-root",
        "net-bind-service",
        "user-image",
        "baseline-capabilities",
        "a-job-user-image",
        "other-capability",
        "unsafe-sysctl",
    ],
)
def test_the_namespace_enforces_the_level_its_opt_outs_need(mocks, web, jobs, level):
    services = with_services(web=web)
    deploy(make_config(target="kubernetes", services=services, jobs=jobs, dbPassword=DB_PASSWORD, **REGISTRY))
    labels = mocks.get(NAMESPACE, f"{APP}-namespace").inputs["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith("pod-security.kubernetes.io/")} == namespace_labels(level)


def test_kubernetes_two_ports(mocks):
    services = with_services(
        web={
            "port": None,
            "publish": None,
            "ports": {"http": {"port": 8080, "publish": 8080}, "metrics": {"port": 9100}},
        }
    )
    app = deploy(kubernetes_config(services=services))
    service = mocks.get(SERVICE, f"{APP}-web")
    assert [(p["name"], p["port"]) for p in service.inputs["spec"]["ports"]] == [("http", 8080), ("metrics", 9100)]
    node_port = service.outputs["spec"]["ports"][0]["nodePort"]
    assert resolve(app.urls) == {"web": f"http://127.0.0.1:{node_port}"}


def test_kubernetes_worker_without_ports(mocks):
    services = with_services(worker={"build": "app/web", "args": ["worker"], "links": ["redis"]})
    app = deploy(kubernetes_config(services=services))
    worker = mocks.get(DEPLOYMENT, f"{APP}-worker")
    assert mocks.find(SERVICE, f"{APP}-worker") is None
    container = worker.inputs["spec"]["template"]["spec"]["containers"][0]
    assert "readinessProbe" not in container and "livenessProbe" not in container
    assert resolve(app.services) == {"web": "web", "redis": "redis"}, "a worker has no Service"


def test_kubernetes_job_runs_before_its_dependants(mocks):
    config = with_job("kubernetes")
    deploy(config)
    job = mocks.get(JOB, f"{APP}-migrate")
    assert mocks.parent_of(job) is mocks.get(KUBERNETES_JOB, f"{APP}-migrate")
    spec = job.inputs["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["template"]["spec"]["restartPolicy"]) == (
        0,
        300,
        "Never",
    )
    assert (
        spec["template"]["spec"]["containers"][0]["image"]
        == f"{REPO}/migrate@{registry_digest(tag_of(config, 'migrate'))}"
    )
    assert mocks.get(REGISTRY_IMAGE, f"{APP}-migrate").urn in job.dependencies
    assert mocks.get(DEPLOYMENT, f"{APP}-redis").urn in job.dependencies, "dependsOn healthy: redis is ready first"
    web = mocks.get(DEPLOYMENT, f"{APP}-web")
    assert job.urn in web.dependencies, "web rolls only after the job completed"
    assert job.urn not in mocks.get(DEPLOYMENT, f"{APP}-redis").dependencies
    secret = mocks.get(SECRET, f"{APP}-namespace-app-secrets")
    assert rpc.unwrap_rpc_secret(secret.inputs["stringData"]) == {"dbPassword": DB_PASSWORD}
    assert secret.urn in job.dependencies


def test_every_kubernetes_object_is_applied_under_one_field_manager(mocks):
    """A fixed Server-Side Apply field manager: an object made by a killed run and applied again (or
    adopted) is never in conflict with the random manager of its first create."""
    services = with_services(web={"files": {"/etc/web/redis.conf": "app/redis/redis.conf"}})
    deploy(make_config(target="kubernetes", services=services, jobs=MIGRATE, dbPassword=DB_PASSWORD, **REGISTRY))
    objects = [r for r in mocks.resources if r.custom and r.type.startswith("kubernetes:")]
    assert {r.type for r in objects} >= {NAMESPACE, SECRET, PVC, DEPLOYMENT, SERVICE, CONFIG_MAP, JOB}
    for resource in objects:
        annotations = resource.inputs["metadata"].get("annotations", {})
        assert annotations.items() >= SERVER_SIDE_APPLY.items(), (resource.type, resource.name)


def test_kubernetes_files_config_map_is_named_from_the_service(mocks):
    deploy(kubernetes_config(services=with_services(web={"files": {"/etc/web/redis.conf": "app/redis/redis.conf"}})))
    config_map = mocks.get(CONFIG_MAP, f"{APP}-web-files")
    assert mocks.parent_of(config_map) is mocks.get(KUBERNETES_SERVICE, f"{APP}-web")
    assert config_map.inputs["metadata"] == {
        "name": "web-files",
        "namespace": APP,
        "annotations": SERVER_SIDE_APPLY,
        "labels": {**mocks.get(DEPLOYMENT, f"{APP}-web").inputs["metadata"]["labels"]},
    }


def test_pinned_images_skip_the_build(mocks):
    pinned = f"{REPO}/web@{fake_digest('rollback')}"
    app = deploy(kubernetes_config(images={"web": pinned}))
    assert mocks.find(REMOTE_IMAGE, f"{APP}-web") is None and mocks.find(REGISTRY_IMAGE, f"{APP}-web") is None
    assert mocks.find(REGISTRY_IMAGE, f"{APP}-redis") is not None, "unpinned services still build"
    assert pod_image(mocks.get(DEPLOYMENT, f"{APP}-web")) == pinned
    assert resolve(app.images)["web"] == pinned
    assert resolve(app.digests)["web"] == fake_digest("rollback")


def test_pinned_images_on_docker_are_pulled_not_built(mocks):
    pinned = f"{REPO}/web@{fake_digest('rollback')}"
    deploy(docker_config(images={"web": pinned}))
    web = mocks.get(REMOTE_IMAGE, f"{APP}-web")
    assert web.inputs["name"] == pinned and "build" not in web.inputs
    assert mocks.find(REGISTRY_IMAGE, f"{APP}-web") is None
    assert mocks.get(CONTAINER, f"{APP}-web").inputs["image"] == image_id(pinned)


def test_services_running_one_pinned_image_on_docker_share_its_pull(mocks):
    pinned = f"{REPO}/web@{fake_digest('rollback')}"
    deploy(docker_config(images={"web": pinned, "redis": pinned}))
    pulls = [r for r in mocks.resources if r.type == REMOTE_IMAGE]
    assert [(r.name, r.inputs["name"]) for r in pulls] == [(f"{APP}-redis", pinned)]
    assert mocks.find(CONTAINER_IMAGE, f"{APP}-web") is None
    for service in ("web", "redis"):
        assert mocks.get(CONTAINER, f"{APP}-{service}").inputs["image"] == image_id(pinned)


PROMOTED = {s: f"{REPO}/{s}@{fake_digest('staging-' + s)}" for s in ("web", "redis")}


def test_images_from_another_stack_are_promoted_without_building(mocks):
    mocks = install_mocks(stack="prod", stack_outputs={"organization/cloudservice/staging": {"images": PROMOTED}})
    config = make_config("prod", **{**stack_values("prod"), "registryPassword": PASSWORD})
    app = deploy(config)
    reference = mocks.get(STACK_REFERENCE, "organization/cloudservice/staging")
    assert reference.inputs["name"] == "organization/cloudservice/staging"
    assert mocks.parent_of(reference).type == CLOUD_SERVICE
    assert mocks.of_type(REMOTE_IMAGE) == [] and mocks.of_type(REGISTRY_IMAGE) == [], "prod never builds"
    assert mocks.of_type(DOCKER_PROVIDER) == [], "nor needs a Docker engine"
    for service in ("web", "redis"):
        deployment = mocks.get(DEPLOYMENT, f"cloudservice-prod-{service}")
        assert pod_image(deployment) == PROMOTED[service]
        assert deployment.inputs["metadata"]["namespace"] == "cloudservice-prod"
    assert mocks.get(DEPLOYMENT, "cloudservice-prod-web").inputs["spec"]["replicas"] == 3
    assert mocks.get(DEPLOYMENT, "cloudservice-prod-redis").inputs["spec"]["replicas"] == 1
    assert resolve(app.images) == PROMOTED
    assert resolve(app.digests) == {s: fake_digest("staging-" + s) for s in ("web", "redis")}


def test_images_from_a_stack_missing_a_service_fails(mocks):
    """The deployment cannot proceed with a guess: a clear error names the stack and the service."""
    install_mocks(
        stack="prod", stack_outputs={"organization/cloudservice/staging": {"images": {"web": PROMOTED["web"]}}}
    )
    source = "organization/cloudservice/staging"
    web = run(lambda: _image_from_stack(pulumi.StackReference(source), source, "web"))
    assert resolve(web) == PROMOTED["web"]
    with pytest.raises(ValueError, match=f"imagesFrom: stack {source} exports no image for service 'redis'"):
        run(lambda: _image_from_stack(pulumi.StackReference(source), source, "redis"))


# -- secrets ---------------------------------------------------------------------------------------

SECRET_SPEC = {
    "web": {"secretEnv": {"DB_PASSWORD": "dbPassword"}, "secretFiles": {"/run/secrets/api_token": "apiToken"}}
}


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_secrets_never_reach_an_input_in_plaintext(mocks, target):
    config = make_config(
        target=target,
        services=with_services(**SECRET_SPEC),
        jobs=MIGRATE,
        dbPassword=DB_PASSWORD,
        apiToken="api-token-value",
        **REGISTRY,
    )
    assert is_secret(config.images.registry.password)
    assert all(is_secret(value) for value in config.secrets.values()) and set(config.secrets) == {
        "dbPassword",
        "apiToken",
    }
    deploy(config)
    assert mocks.resources
    for resource in mocks.resources:
        for secret in (PASSWORD, DB_PASSWORD, "api-token-value"):
            assert plaintext_occurrences(resource.inputs, secret) == [], (
                f"{secret!r} in {resource.type} {resource.name}"
            )


def test_secret_files_carry_the_secret_values(mocks):
    config = make_config(
        target="docker",
        services=with_services(**SECRET_SPEC),
        dbPassword=DB_PASSWORD,
        apiToken="api-token-value",
        **REGISTRY,
    )
    deploy(config)
    uploads = rpc.unwrap_rpc_secret(mocks.get(CONTAINER, f"{APP}-web-secrets").inputs["uploads"])
    assert [(u["file"], u["content"]) for u in uploads] == [("/run/secrets/api_token", "api-token-value")]


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_every_resource_descends_from_the_app(mocks, target):
    deploy(with_job(target))
    root = mocks.get(CLOUD_SERVICE, APP)
    for resource in mocks.resources:
        if resource is root:
            continue
        node = resource
        while node.parent != root.urn:
            assert node.parent and node.parent in {r.urn for r in mocks.resources}, (
                f"{resource.type} {resource.name} is outside CloudService"
            )
            node = mocks.by_urn(node.parent)


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_urns_are_unique(mocks, target):
    deploy(with_job(target))
    urns = [r.urn for r in mocks.resources]
    assert len(urns) == len(set(urns))


# -- two apps in one stack -------------------------------------------------------------------------


def two_apps(config, second_target):
    """The program of a stack running the app twice: as `cloudservice-dev` and as `shop`."""

    def program():
        return [
            CloudService(APP, app_args(config)),
            CloudService("shop", dataclasses.replace(app_args(config), target=second_target)),
        ]

    return run(program)


def _physical_names(mocks, resources) -> list:
    """What each resource is called in the engine or the cluster."""
    names = []
    for r in resources:
        if r.type in (CONTAINER, VOLUME, NETWORK):
            names.append((r.type, r.inputs["name"]))
        elif r.type.startswith("kubernetes:"):
            metadata = r.inputs["metadata"]
            names.append((r.type, metadata.get("namespace"), metadata.get("name") or r.name))
    return names


def _app_of(mocks, resource) -> str:
    node = resource
    while node.type != CLOUD_SERVICE:
        node = mocks.parent_of(node)
    return node.name


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_two_apps_in_one_stack_share_nothing(mocks, target):
    config = with_job(target, **({"replicas": 2} if target == "kubernetes" else {}))
    if target == "docker":
        second = DockerSettings(port_offset=1000)
    else:
        second = dataclasses.replace(config.kubernetes, namespace="shop")
    first_app, shop = two_apps(config, second)

    urns = [r.urn for r in mocks.resources]
    assert len(urns) == len(set(urns)), "every URN is unique"
    names = _physical_names(mocks, mocks.resources)
    assert len(names) == len(set(names)), "no engine or cluster object is declared twice"
    by_app = {APP: [], "shop": []}
    for resource in mocks.resources:
        by_app[_app_of(mocks, resource)].append(resource)
    assert len(by_app[APP]) == len(by_app["shop"]), "each app declares the same graph"
    for resource in mocks.resources:
        provider = mocks.provider_of(resource)
        if provider is not None:
            assert _app_of(mocks, provider) == _app_of(mocks, resource), f"{resource.name} uses its own app's provider"
        for dependency in map(mocks.by_urn, resource.dependencies):
            if (
                resource.type == dependency.type == REGISTRY_IMAGE
                and resource.inputs["name"] == dependency.inputs["name"]
            ):
                continue  # the same image, built from the same sources: pushed one after the other
            assert _app_of(mocks, dependency) == _app_of(mocks, resource), f"{resource.name} waits only for its own app"

    if target == "docker":
        assert {r.inputs["name"] for r in mocks.of_type(NETWORK)} == {APP, "shop"}
        assert {r.inputs["name"] for r in mocks.of_type(VOLUME)} == {f"{APP}-redis-data", "shop-redis-data"}
        assert {r.inputs["name"] for r in mocks.of_type(CONTAINER)} == {
            f"{APP}-web",
            f"{APP}-redis",
            f"{APP}-migrate",
            "shop-web",
            "shop-redis",
            "shop-migrate",
            f"{APP}-redis-data-owner",
            "shop-redis-data-owner",
        }
        assert resolve(first_app.url) == "http://127.0.0.1:8080" and resolve(shop.url) == "http://127.0.0.1:9080"
        assert mocks.get(CONTAINER, "shop-web").inputs["networksAdvanced"][0]["name"] == "shop"
    else:
        assert {r.inputs["metadata"]["name"] for r in mocks.of_type(NAMESPACE)} == {APP, "shop"}
        assert resolve(first_app.namespace) == APP and resolve(shop.namespace) == "shop"
        assert mocks.get(DEPLOYMENT, "shop-web").inputs["metadata"]["namespace"] == "shop"
        assert mocks.get(JOB, "shop-migrate").inputs["metadata"]["namespace"] == "shop"
    # Images are content-addressed: both apps name the same image, and neither ever deletes it.
    for image in mocks.of_type(REMOTE_IMAGE):
        assert image.inputs["keepLocally"] is True
    for image in mocks.of_type(REGISTRY_IMAGE):
        assert image.inputs["keepRemotely"] is True


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_only_the_first_release_app_claims_the_old_urns(mocks, target):
    """A URN holds its parents' types, not their names: were both apps to alias the first release's
    URNs, an upgraded stack could hand one app's volume to the other. Only `<project>-<stack>` does."""
    config = with_job(target)
    second = (
        DockerSettings(port_offset=1000)
        if target == "docker"
        else dataclasses.replace(config.kubernetes, namespace="shop")
    )
    two_apps(config, second)
    claimed: dict[str, str] = {}
    for resource in mocks.resources:
        aliases = mocks.aliases_of(resource)
        if _app_of(mocks, resource) == "shop":  # (the Kubernetes SDK's own aliases keep the name: old API versions)
            renamed = {alias for alias in aliases if alias.rsplit("::", 1)[1] != resource.name}
            assert renamed == set(), f"{resource.type} {resource.name} of the second app claims {renamed}"
        for alias in aliases:
            assert alias not in claimed, f"{resource.name} and {claimed[alias]} both claim {alias}"
            claimed[alias] = resource.name
    assert claimed, "the first release's app keeps its old URNs"


# -- docker target: the app's networks ------------------------------------------------------------


def on_networks(networks, **joined):
    """The Docker app with `networks` (NetworkSpecs) declared and each named workload joining the
    networks given for it; a `migrate` job (on no named network) is added when joined names it."""
    config = with_job("docker") if "migrate" in joined else docker_config()
    workloads = tuple(dataclasses.replace(w, networks=joined.get(w.name, ())) for w in config.app.workloads)
    return with_app(config, workloads=workloads, networks=networks)


def with_app(config, **changes):
    """The program's CloudServiceArgs for `config`, its app spec's fields replaced."""
    return dataclasses.replace(app_args(config), app=dataclasses.replace(config.app, **changes))


def networks_of(mocks, workload: str) -> list[str]:
    return [n["name"] for n in mocks.get(CONTAINER, f"{APP}-{workload}").inputs["networksAdvanced"]]


def test_docker_workloads_join_only_their_networks(mocks):
    front, back = NetworkSpec("front"), NetworkSpec("back")
    args = on_networks((front, back), web=("front",), redis=("back",), migrate=("front", "back"))
    app = run(lambda: CloudService(APP, args))
    assert {(r.name, r.inputs["name"]) for r in mocks.of_type(NETWORK)} == {
        (f"{APP}-front-network", f"{APP}-front"),
        (f"{APP}-back-network", f"{APP}-back"),
    }, "one bridge per network, named from the app's and the network's names; the unused default is not created"
    for network in mocks.of_type(APP_NETWORK):
        assert mocks.parent_of(network) is mocks.get(CLOUD_SERVICE, APP)
    assert networks_of(mocks, "web") == [f"{APP}-front"], "web cannot reach redis: they share no network"
    assert networks_of(mocks, "redis") == [f"{APP}-back"]
    assert networks_of(mocks, "migrate") == [f"{APP}-front", f"{APP}-back"]
    assert resolve(app.network) is None


def test_docker_default_network_keeps_its_urn_beside_named_ones(mocks):
    app = run(lambda: CloudService(APP, on_networks((NetworkSpec("front"),), web=("front", "default"))))
    default = mocks.get(NETWORK, f"{APP}-network")
    assert default.urn == (f"urn:pulumi:dev::cloudservice::{CLOUD_SERVICE}${APP_NETWORK}${NETWORK}::{APP}-network")
    assert default.inputs["name"] == APP and resolve(app.network) == APP
    assert networks_of(mocks, "web") == [f"{APP}-front", APP]
    assert networks_of(mocks, "redis") == [APP], "no networks: the default one"


def test_docker_external_network_is_joined_not_created(mocks):
    args = on_networks((NetworkSpec("shared", external="proxy-net"),), web=("shared",), redis=("shared",))
    run(lambda: CloudService(APP, args))
    assert mocks.of_type(NETWORK) == [] and mocks.of_type(APP_NETWORK) == []
    assert networks_of(mocks, "web") == networks_of(mocks, "redis") == ["proxy-net"]


def test_docker_aliases_reach_the_container(mocks):
    config = docker_config()
    redis = dataclasses.replace(config.app.service("redis"), aliases=("cache",))
    workloads = tuple(redis if w.name == "redis" else w for w in config.app.workloads)
    run(lambda: CloudService(APP, with_app(config, workloads=workloads)))
    assert mocks.get(CONTAINER, f"{APP}-redis").inputs["networksAdvanced"] == [
        {"name": APP, "aliases": ["redis", "cache"]}
    ]


def test_docker_new_volume_is_prepared_before_its_service(mocks):
    deploy(docker_config())
    step = mocks.get(CONTAINER, f"{APP}-redis-data-owner")
    assert step.inputs["image"] == mocks.get(CONTAINER, f"{APP}-redis").inputs["image"]
    assert step.inputs["entrypoints"] == ["chown", "10002:10002", "/data"]
    prepared = mocks.get(JOB_CHECK, f"{APP}-redis-data-owner-completed")
    assert prepared.urn in mocks.get(CONTAINER, f"{APP}-redis").dependencies
    assert mocks.find(CONTAINER, f"{APP}-web-data-owner") is None, "web has no volume"


def test_kubernetes_networks_are_isolated_by_network_policies(mocks, monkeypatch):
    """A NetworkPolicy per network some workload joins (the default one too), pods labelled with theirs;
    an external network is a Docker network: a notice, no policy, no label."""
    notices = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, resource, **_: notices.append((resource._name, message)))
    config = kubernetes_config(services=with_services(tool={"build": "app/web", "args": ["tool"]}))
    joined = {"web": ("front", "legacy"), "redis": ("back", "front")}
    workloads = tuple(dataclasses.replace(w, networks=joined.get(w.name, ())) for w in config.app.workloads)
    networks = (NetworkSpec("front"), NetworkSpec("back"), NetworkSpec("legacy", external="corp-net"))
    app = dataclasses.replace(config.app, workloads=workloads, networks=networks)
    run(lambda: CloudService(APP, dataclasses.replace(app_args(config), app=app)))
    namespace = mocks.get(APP_NAMESPACE, f"{APP}-namespace")
    policies = {r.name: r for r in mocks.of_type(NETWORK_POLICY)}
    isolated = ("front", "back", "default")
    assert set(policies) == {f"{APP}-namespace-network-{n}" for n in isolated} | {
        f"{APP}-web-published",
        f"{APP}-namespace-same-namespace-only",
    }
    no_network = policies[f"{APP}-namespace-same-namespace-only"].inputs["spec"]["podSelector"]["matchExpressions"]
    assert sorted(e["key"].split("/")[1] for e in no_network) == sorted(isolated)
    for network in isolated:
        policy = policies[f"{APP}-namespace-network-{network}"]
        assert mocks.parent_of(policy) is namespace
        assert mocks.provider_of(policy) is mocks.get(K8S_PROVIDER, f"{APP}-kubernetes")
        members = {"matchLabels": {f"network.cloudservice.dev/{network}": "true", "cloudservice.dev/stack": "dev"}}
        assert policy.inputs["spec"]["podSelector"] == members
        assert policy.inputs["spec"]["ingress"] == [{"from": [{"podSelector": members}]}]

    def networks_of_pods(name):
        labels = mocks.get(DEPLOYMENT, f"{APP}-{name}").inputs["spec"]["template"]["metadata"]["labels"]
        return sorted(key.split("/")[1] for key in labels if key.startswith("network.cloudservice.dev/"))

    assert [networks_of_pods(name) for name in ("web", "redis", "tool")] == [["front"], ["back", "front"], ["default"]]
    assert policies[f"{APP}-web-published"].inputs["spec"]["ingress"] == [{"ports": [{"port": 8080}]}]
    assert notices == [(APP, notices[0][1])] and "network legacy is external" in notices[0][1]


def test_kubernetes_app_without_networks_is_one_namespace_closed_to_others(mocks):
    deploy(kubernetes_config())
    assert {r.name for r in mocks.of_type(NETWORK_POLICY)} == {
        f"{APP}-namespace-same-namespace-only",
        f"{APP}-web-published",
    }
    for name in ("web", "redis"):
        labels = mocks.get(DEPLOYMENT, f"{APP}-{name}").inputs["spec"]["template"]["metadata"]["labels"]
        assert not any(key.startswith("network.cloudservice.dev/") for key in labels)
