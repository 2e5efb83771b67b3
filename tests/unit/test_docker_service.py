"""components/docker_service.py: DockerService runs one service as a hardened, health-checked
container; DockerJob runs one task to its exit."""

from __future__ import annotations

import os

import pulumi
import pytest

from components.docker_service import DockerJob, DockerJobArgs, DockerService, DockerServiceArgs
from components.workload import Endpoint
from harness import (
    CONTAINER, DB_PASSWORD, DOCKER_JOB, DOCKER_SERVICE, ROOT, STACK_LABELS, VOLUME, file_versions, plaintext_occurrences,
    resolve, run, spec_of,
)
from pulumi.runtime import rpc

IMAGE = "sha256:" + "1" * 64
NETWORK = "cloudservice-dev"
REDIS = {"redis": Endpoint(host="redis", ports={"main": 6379})}
CONFIG_FILE = "app/redis/redis.conf"


def secrets_for(spec) -> dict:
    return {key: pulumi.Output.secret(DB_PASSWORD) for key in spec.secret_keys}


def deploy(mocks, spec=None, **args):
    spec = spec or spec_of()
    args = {"image": IMAGE, "network": NETWORK, "labels": STACK_LABELS, "secrets": secrets_for(spec), **args}
    name = f"cloudservice-dev-{spec.name}"
    service = run(lambda: DockerService(name, DockerServiceArgs(spec=spec, **args)))
    return service, mocks.get(CONTAINER, name)


def as_dict(labels: list[dict]) -> dict:
    return {item["label"]: item["value"] for item in labels}


def test_one_container_named_after_the_component(mocks):
    _, container = deploy(mocks, links=REDIS)
    component = mocks.get(DOCKER_SERVICE, "cloudservice-dev-web")
    assert mocks.parent_of(container) is component
    inputs = container.inputs
    assert inputs["name"] == "cloudservice-dev-web"
    assert inputs["hostname"] == "web"
    assert inputs["image"] == IMAGE
    assert inputs["restart"] == "unless-stopped"
    assert inputs["networksAdvanced"] == [{"name": NETWORK, "aliases": ["web"]}]
    assert as_dict(inputs["labels"]) == {**STACK_LABELS, "app.kubernetes.io/name": "web"}
    assert container.delete_before_replace, "a fixed name and host port cannot exist twice"
    assert [r.type for r in mocks.children_of(component)] == [CONTAINER]


@pytest.mark.parametrize("name,user,memory", [("web", "10001:10001", 96), ("redis", "10002:10002", 128)])
def test_containers_are_hardened(mocks, name, user, memory):
    _, container = deploy(mocks, spec_of(name))
    inputs = container.inputs
    assert inputs["user"] == user
    assert inputs["readOnly"] is True
    assert inputs["tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=16m"}
    assert inputs["capabilities"] == {"drops": ["ALL"]}
    assert inputs["securityOpts"] == ["no-new-privileges:true"]
    assert inputs["memory"] == memory and inputs["memorySwap"] == memory
    assert inputs["cpus"] == "0.5"
    assert not inputs.get("privileged")


def test_writable_root_gets_no_tmpfs(mocks):
    _, container = deploy(mocks, spec_of(readOnly=False))
    assert container.inputs["readOnly"] is False
    assert "tmpfs" not in container.inputs


def test_user_image_keeps_the_images_own_user(mocks):
    _, container = deploy(mocks, spec_of(user="image"))
    assert "user" not in container.inputs
    assert container.inputs["capabilities"] == {"drops": ["ALL"]}, "the rest of the hardening stays"


def test_uid_and_gid(mocks):
    _, container = deploy(mocks, spec_of(user="10005:20005"))
    assert container.inputs["user"] == "10005:20005"


def test_capabilities_are_added_back_after_dropping_all(mocks):
    _, container = deploy(mocks, spec_of(capabilities=["NET_BIND_SERVICE", "CHOWN"]))
    assert container.inputs["capabilities"] == {"drops": ["ALL"], "adds": ["NET_BIND_SERVICE", "CHOWN"]}


def test_only_published_ports_get_a_loopback_host_port(mocks):
    service, web = deploy(mocks)
    assert web.inputs["ports"] == [{"internal": 8080, "external": 8080, "ip": "127.0.0.1"}]
    assert resolve(service.urls) == {"main": "http://127.0.0.1:8080"}
    assert resolve(service.url) == "http://127.0.0.1:8080"
    redis, container = deploy(mocks, spec_of("redis"))
    assert container.inputs["ports"] == []
    assert resolve(redis.urls) == {} and resolve(redis.url) is None


def test_port_offset_moves_host_ports_only(mocks):
    service, container = deploy(mocks, port_offset=100)
    assert container.inputs["ports"] == [{"internal": 8080, "external": 8180, "ip": "127.0.0.1"}]
    assert resolve(service.url) == "http://127.0.0.1:8180"


def test_two_ports_both_published(mocks):
    spec = spec_of(port=None, publish=None, ports={"http": {"port": 8080, "publish": 8080}, "admin": {"port": 9000, "publish": 9001}},
                   health={"http": "/healthz", "port": "admin"})
    service, container = deploy(mocks, spec, port_offset=10)
    assert container.inputs["ports"] == [
        {"internal": 8080, "external": 8090, "ip": "127.0.0.1"}, {"internal": 9000, "external": 9011, "ip": "127.0.0.1"},
    ]
    assert resolve(service.urls) == {"http": "http://127.0.0.1:8090", "admin": "http://127.0.0.1:9011"}
    assert resolve(service.url) == "http://127.0.0.1:8090", "the first port is the main one"
    assert "http://127.0.0.1:9000/healthz" in container.inputs["healthcheck"]["tests"][1], "the check uses the named port"


def test_unpublished_named_port_is_not_on_the_host(mocks):
    spec = spec_of(port=None, publish=None, ports={"http": {"port": 8080, "publish": 8080}, "metrics": {"port": 9100}})
    _, container = deploy(mocks, spec)
    assert container.inputs["ports"] == [{"internal": 8080, "external": 8080, "ip": "127.0.0.1"}]


def test_health_checks_gate_the_rollout(mocks):
    _, web = deploy(mocks)
    _, redis = deploy(mocks, spec_of("redis"))
    assert redis.inputs["healthcheck"]["tests"] == ["CMD", "redis-cli", "ping"]
    assert web.inputs["healthcheck"]["tests"][0] == "CMD-SHELL"
    assert "http://127.0.0.1:8080/healthz" in web.inputs["healthcheck"]["tests"][1]
    for container in (web, redis):
        assert container.inputs["wait"] is True and container.inputs["waitTimeout"] == 60
        assert {k: container.inputs["healthcheck"][k] for k in ("interval", "timeout", "retries", "startPeriod")} == {
            "interval": "2s", "timeout": "3s", "retries": 3, "startPeriod": "2s",
        }


def test_health_timings_and_ready_timeout(mocks):
    spec = spec_of(health={"http": "/ready", "interval": 5, "timeout": 4, "retries": 6, "startPeriod": 30})
    _, container = deploy(mocks, spec, ready_timeout=120)
    healthcheck = container.inputs["healthcheck"]
    assert (healthcheck["interval"], healthcheck["timeout"], healthcheck["retries"], healthcheck["startPeriod"]) == ("5s", "4s", 6, "30s")
    assert "http://127.0.0.1:8080/ready" in healthcheck["tests"][1]
    assert container.inputs["waitTimeout"] == 120, "readyTimeout bounds the wait for healthy"


def test_service_without_health_does_not_wait(mocks):
    _, container = deploy(mocks, spec_of(health=None))
    assert "healthcheck" not in container.inputs
    assert container.inputs["wait"] is False


def test_worker_without_ports(mocks):
    spec = spec_of(port=None, publish=None, health=None, args=["worker"])
    service, container = deploy(mocks, spec, links=REDIS)
    assert container.inputs["ports"] == []
    assert "healthcheck" not in container.inputs and container.inputs["wait"] is False
    assert container.inputs["restart"] == "unless-stopped", "the engine restarts a worker that exits"
    assert container.inputs["networksAdvanced"] == [{"name": NETWORK, "aliases": ["web"]}]
    assert resolve(service.urls) == {} and resolve(service.url) is None


def test_command_and_args_replace_entrypoint_and_cmd(mocks):
    _, container = deploy(mocks, spec_of(command=["python3", "-m", "server"], args=["--port", "8080"]))
    assert container.inputs["entrypoints"] == ["python3", "-m", "server"]
    assert container.inputs["command"] == ["--port", "8080"]


def test_without_command_and_args_the_image_defaults_stay(mocks):
    _, container = deploy(mocks)
    assert "entrypoints" not in container.inputs and "command" not in container.inputs


def test_volume_keeps_state_across_container_replacement(mocks):
    _, container = deploy(mocks, spec_of("redis"))
    volume = mocks.get(VOLUME, "cloudservice-dev-redis-data")
    assert mocks.parent_of(volume).type == DOCKER_SERVICE
    assert volume.inputs["name"] == "cloudservice-dev-redis-data"
    assert as_dict(volume.inputs["labels"])["app.kubernetes.io/name"] == "redis"
    assert container.inputs["volumes"] == [{"volumeName": "cloudservice-dev-redis-data", "containerPath": "/data"}]


def test_no_volume_no_volumes(mocks):
    _, container = deploy(mocks)
    assert container.inputs["volumes"] == [] and mocks.of_type(VOLUME) == []


def test_links_give_host_and_port(mocks):
    _, web = deploy(mocks, links=REDIS)
    assert web.inputs["envs"] == ["REDIS_HOST=redis", "REDIS_PORT=6379"]
    _, redis = deploy(mocks, spec_of("redis"))
    assert redis.inputs["envs"] == []


def test_links_to_named_ports(mocks):
    links = {"api": Endpoint(host="api", ports={"http": 80, "metrics": 9100}), "cache-db": Endpoint(host="cache-db", ports={"main": 6379})}
    _, container = deploy(mocks, spec_of(links=None), links=links)
    assert container.inputs["envs"] == [
        "API_HOST=api", "API_HTTP_PORT=80", "API_METRICS_PORT=9100", "API_PORT=80", "CACHE_DB_HOST=cache-db", "CACHE_DB_PORT=6379",
    ]


def test_env_and_secret_env_are_passed_and_secrets_stay_secret(mocks):
    spec = spec_of(env={"MODE": "production"}, secretEnv={"DB_PASSWORD": "dbPassword"})
    _, container = deploy(mocks, spec, links=REDIS)
    envs = container.inputs["envs"]
    assert rpc.is_rpc_secret(envs), "the env list holding a secret is sent as a secret"
    assert rpc.unwrap_rpc_secret(envs) == [f"DB_PASSWORD={DB_PASSWORD}", "MODE=production", "REDIS_HOST=redis", "REDIS_PORT=6379"]
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, DB_PASSWORD) == [], resource.name


def test_files_are_read_only_bind_mounts_rolled_by_their_content(mocks, tmp_path):
    _, container = deploy(mocks, spec_of(files={"/etc/web/redis.conf": CONFIG_FILE}))
    assert container.inputs["mounts"] == [
        {"target": "/etc/web/redis.conf", "source": os.path.join(ROOT, CONFIG_FILE), "type": "bind", "readOnly": True},
    ]
    first = as_dict(container.inputs["labels"])["cloudservice.dev/files-hash"]

    hashes = []
    for spec in file_versions(tmp_path, "docker", ["level: info\n", "level: debug\n", "level: info\n"]):
        _, changed = deploy(mocks, spec)
        hashes.append(as_dict(changed.inputs["labels"])["cloudservice.dev/files-hash"])
        mocks.resources.clear()
    assert hashes[0] != hashes[1], "a changed file changes the container (it is replaced: the new content is mounted)"
    assert hashes[0] == hashes[2] and first not in hashes


def test_no_files_no_mounts_and_no_hash_label(mocks):
    _, container = deploy(mocks)
    assert "mounts" not in container.inputs
    assert "cloudservice.dev/files-hash" not in as_dict(container.inputs["labels"])


def test_secret_files_are_carried_into_a_volume_and_stay_secret(mocks):
    spec = spec_of(secretFiles={"/run/secrets/db": "dbPassword"})
    _, container = deploy(mocks, spec)
    volume = mocks.get(VOLUME, "cloudservice-dev-web-secrets")
    carrier = mocks.get(CONTAINER, "cloudservice-dev-web-secrets")
    component = mocks.get(DOCKER_SERVICE, "cloudservice-dev-web")
    assert mocks.parent_of(volume) is component and mocks.parent_of(carrier) is component
    assert volume.inputs["name"] == "cloudservice-dev-web-secrets"
    assert carrier.inputs["start"] is False and carrier.inputs["mustRun"] is False, "created, never started"
    assert carrier.inputs["networkMode"] == "none"
    assert carrier.inputs["volumes"] == [{"volumeName": "cloudservice-dev-web-secrets", "containerPath": "/run/secrets"}]
    assert rpc.is_rpc_secret(carrier.inputs["uploads"]), "the secret file's content is sent encrypted"
    (upload,) = rpc.unwrap_rpc_secret(carrier.inputs["uploads"])
    assert upload["content"] == DB_PASSWORD
    assert (upload["file"], upload["owner"], upload["group"], upload["permissions"]) == ("/run/secrets/db", "10001", "10001", "0400")
    assert {"volumeName": "cloudservice-dev-web-secrets", "containerPath": "/run/secrets", "readOnly": True} in container.inputs["volumes"]
    assert as_dict(container.inputs["labels"])["cloudservice.dev/secrets-revision"] == "cloudservice-dev-web-secrets-id", \
        "the carrier's ID: a changed secret replaces the carrier, and so the service"
    assert carrier.urn in container.dependencies, "the service (re)starts after its secrets are written"
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, DB_PASSWORD) == [], f"{resource.type} {resource.name}"


def test_secret_files_of_an_image_user_are_readable_by_it(mocks):
    deploy(mocks, spec_of(user="image", secretFiles={"/run/secrets/db": "dbPassword"}))
    (upload,) = rpc.unwrap_rpc_secret(mocks.get(CONTAINER, "cloudservice-dev-web-secrets").inputs["uploads"])
    assert upload["permissions"] == "0444" and "owner" not in upload


def test_images_are_what_the_caller_resolved(mocks):
    image = pulumi.Output.from_input("localhost:5000/cloudservice/web@sha256:" + "a" * 64)
    _, container = deploy(mocks, image=image)
    assert container.inputs["image"] == "localhost:5000/cloudservice/web@sha256:" + "a" * 64


def test_network_output_is_used(mocks):
    _, container = deploy(mocks, network=pulumi.Output.from_input("custom-net"))
    assert container.inputs["networksAdvanced"][0]["name"] == "custom-net"


def test_the_container_waits_for_what_it_comes_after(mocks):
    def program():
        before = pulumi.CustomResource("test:index:Thing", "pushed")
        spec = spec_of()
        return DockerService("cloudservice-dev-web", DockerServiceArgs(
            spec=spec, image=IMAGE, network=NETWORK, labels=STACK_LABELS, after=[before]))

    run(program)
    assert mocks.get("test:index:Thing", "pushed").urn in mocks.get(CONTAINER, "cloudservice-dev-web").dependencies


def test_without_a_parent_no_first_release_aliases(mocks):
    _, container = deploy(mocks, spec_of("redis"))
    assert container.aliases == [] and mocks.get(VOLUME, "cloudservice-dev-redis-data").aliases == []


# -- DockerJob -------------------------------------------------------------------------------------

MIGRATE = {"migrate": {"build": "app/web", "command": ["python3", "-m", "migrate"], "args": ["--to", "head"],
                       "env": {"MODE": "migrate"}, "secretEnv": {"DB_PASSWORD": "dbPassword"}}}


def run_job(mocks, jobs=None, **args):
    spec = spec_of("migrate", jobs=jobs or MIGRATE)
    args = {"image": IMAGE, "network": NETWORK, "labels": STACK_LABELS, "secrets": secrets_for(spec), **args}
    job = run(lambda: DockerJob("cloudservice-dev-migrate", DockerJobArgs(spec=spec, **args)))
    return job, mocks.get(CONTAINER, "cloudservice-dev-migrate")


def test_job_is_a_container_run_to_its_exit(mocks):
    _, container = run_job(mocks, links=REDIS)
    assert mocks.parent_of(container) is mocks.get(DOCKER_JOB, "cloudservice-dev-migrate")
    inputs = container.inputs
    assert inputs["restart"] == "no"
    assert inputs["mustRun"] is False, "a finished job is not restarted on the next update"
    assert inputs["attach"] is True, "up waits for the exit"
    assert inputs["name"] == "cloudservice-dev-migrate" and inputs["image"] == IMAGE
    assert inputs["entrypoints"] == ["python3", "-m", "migrate"] and inputs["command"] == ["--to", "head"]
    assert "ports" not in inputs and "healthcheck" not in inputs and not inputs.get("wait")
    assert container.delete_before_replace, "its fixed name cannot exist twice"
    envs = rpc.unwrap_rpc_secret(inputs["envs"])
    assert envs == [f"DB_PASSWORD={DB_PASSWORD}", "MODE=migrate", "REDIS_HOST=redis", "REDIS_PORT=6379"]
    assert inputs["networksAdvanced"] == [{"name": NETWORK, "aliases": ["migrate"]}]
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, DB_PASSWORD) == [], resource.name


def test_job_is_hardened_like_a_service(mocks):
    _, container = run_job(mocks)
    inputs = container.inputs
    assert inputs["user"] == "10001:10001" and inputs["readOnly"] is True
    assert inputs["capabilities"] == {"drops": ["ALL"]} and inputs["securityOpts"] == ["no-new-privileges:true"]
    assert inputs["memory"] == 128 and inputs["cpus"] == "0.5"


def test_job_opt_outs(mocks):
    jobs = {"migrate": {"image": "busybox:1.36", "user": "image", "readOnly": False, "capabilities": ["CHOWN"]}}
    _, container = run_job(mocks, jobs)
    assert "user" not in container.inputs and container.inputs["readOnly"] is False
    assert container.inputs["capabilities"] == {"drops": ["ALL"], "adds": ["CHOWN"]}


def test_job_files_and_secret_files(mocks):
    jobs = {"migrate": {"build": "app/web", "files": {"/etc/migrate.conf": CONFIG_FILE}, "secretFiles": {"/run/secrets/db": "dbPassword"}}}
    _, container = run_job(mocks, jobs)
    assert container.inputs["mounts"][0]["source"] == os.path.join(ROOT, CONFIG_FILE)
    carrier = mocks.get(CONTAINER, "cloudservice-dev-migrate-secrets")
    assert {"volumeName": "cloudservice-dev-migrate-secrets", "containerPath": "/run/secrets", "readOnly": True} in container.inputs["volumes"]
    assert rpc.unwrap_rpc_secret(carrier.inputs["uploads"])[0]["content"] == DB_PASSWORD


def test_job_runs_after_what_it_comes_after_and_exports_its_exit_code(mocks):
    def program():
        before = pulumi.CustomResource("test:index:Thing", "db")
        spec = spec_of("migrate", jobs=MIGRATE)
        return DockerJob("cloudservice-dev-migrate", DockerJobArgs(
            spec=spec, image=IMAGE, network=NETWORK, labels=STACK_LABELS, secrets=secrets_for(spec), after=[before]))

    job = run(program)
    container = mocks.get(CONTAINER, "cloudservice-dev-migrate")
    assert mocks.get("test:index:Thing", "db").urn in container.dependencies
    assert resolve(job.exit_code) == 0
