"""components/docker_service.py: DockerService runs one service as a hardened, health-checked
container; DockerJob runs one task to its exit."""

from __future__ import annotations

import dataclasses
import os

import pulumi
import pytest
import recorder
from harness import DB_PASSWORD, REGISTRY, ROOT, STACK_LABELS, default_services, file_versions, make_config, spec_of
from harness import deploy as deploy_app
from pulumi.runtime import rpc
from recorder import (
    CONTAINER,
    DOCKER_JOB,
    DOCKER_SERVICE,
    JOB_CHECK,
    ROLLOUT_CHECK,
    VOLUME,
    plaintext_occurrences,
    resolve,
    run,
)

from components.docker_service import DockerJob, DockerJobArgs, DockerService, DockerServiceArgs
from components.spec import ANY_HOST_PORT, PortSpec, VolumeSpec
from components.workload import Endpoint

IMAGE = "sha256:" + "1" * 64
NETWORK = "cloudservice-dev"
REDIS = {"redis": Endpoint(host="redis", ports={"main": 6379})}
CONFIG_FILE = "app/redis/redis.conf"


def secrets_for(spec) -> dict:
    return {key: pulumi.Output.secret(DB_PASSWORD) for key in spec.secret_keys}


def deploy(mocks, spec=None, **args):
    spec = spec or spec_of()
    args = {"image": IMAGE, "networks": [NETWORK], "labels": STACK_LABELS, "secrets": secrets_for(spec), **args}
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
    assert [r.type for r in mocks.children_of(component)] == [CONTAINER, ROLLOUT_CHECK]


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
    spec = spec_of(
        port=None,
        publish=None,
        ports={"http": {"port": 8080, "publish": 8080}, "admin": {"port": 9000, "publish": 9001}},
        health={"http": "/healthz", "port": "admin"},
    )
    service, container = deploy(mocks, spec, port_offset=10)
    assert container.inputs["ports"] == [
        {"internal": 8080, "external": 8090, "ip": "127.0.0.1"},
        {"internal": 9000, "external": 9011, "ip": "127.0.0.1"},
    ]
    assert resolve(service.urls) == {"http": "http://127.0.0.1:8090", "admin": "http://127.0.0.1:9011"}
    assert resolve(service.url) == "http://127.0.0.1:8090", "the first port is the main one"
    assert "http://127.0.0.1:9000/healthz" in container.inputs["healthcheck"]["tests"][1], (
        "the check uses the named port"
    )


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
        assert {k: container.inputs["healthcheck"][k] for k in ("interval", "timeout", "retries", "startPeriod")} == {
            "interval": "2s",
            "timeout": "3s",
            "retries": 3,
            "startPeriod": "2s",
        }


def test_health_timings_and_ready_timeout(mocks):
    spec = spec_of(health={"http": "/ready", "interval": 5, "timeout": 4, "retries": 6, "startPeriod": 30})
    _, container = deploy(mocks, spec, ready_timeout=120)
    healthcheck = container.inputs["healthcheck"]
    assert (healthcheck["interval"], healthcheck["timeout"], healthcheck["retries"], healthcheck["startPeriod"]) == (
        "5s",
        "4s",
        6,
        "30s",
    )
    assert "http://127.0.0.1:8080/ready" in healthcheck["tests"][1]
    check = mocks.get(ROLLOUT_CHECK, "cloudservice-dev-web-ready")
    assert check.inputs["timeout"] == 120, "readyTimeout bounds the wait for healthy"


def test_service_without_health_has_no_health_check(mocks):
    _, container = deploy(mocks, spec_of(health=None))
    assert "healthcheck" not in container.inputs


def test_worker_without_ports(mocks):
    spec = spec_of(port=None, publish=None, health=None, args=["worker"])
    service, container = deploy(mocks, spec, links=REDIS)
    assert container.inputs["ports"] == []
    assert "healthcheck" not in container.inputs
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
    links = {
        "api": Endpoint(host="api", ports={"http": 80, "metrics": 9100}),
        "cache-db": Endpoint(host="cache-db", ports={"main": 6379}),
    }
    _, container = deploy(mocks, spec_of(links=None), links=links)
    assert container.inputs["envs"] == [
        "API_HOST=api",
        "API_HTTP_PORT=80",
        "API_METRICS_PORT=9100",
        "API_PORT=80",
        "CACHE_DB_HOST=cache-db",
        "CACHE_DB_PORT=6379",
    ]


def test_env_and_secret_env_are_passed_and_secrets_stay_secret(mocks):
    spec = spec_of(env={"MODE": "production"}, secretEnv={"DB_PASSWORD": "dbPassword"})
    _, container = deploy(mocks, spec, links=REDIS)
    envs = container.inputs["envs"]
    assert rpc.is_rpc_secret(envs), "the env list holding a secret is sent as a secret"
    assert rpc.unwrap_rpc_secret(envs) == [
        f"DB_PASSWORD={DB_PASSWORD}",
        "MODE=production",
        "REDIS_HOST=redis",
        "REDIS_PORT=6379",
    ]
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, DB_PASSWORD) == [], resource.name


def test_files_are_read_only_bind_mounts_rolled_by_their_content(mocks, tmp_path):
    _, container = deploy(mocks, spec_of(files={"/etc/web/redis.conf": CONFIG_FILE}))
    assert container.inputs["mounts"] == [
        {"target": "/etc/web/redis.conf", "source": os.path.join(ROOT, CONFIG_FILE), "type": "bind", "readOnly": True}
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
    assert carrier.inputs["volumes"] == [
        {"volumeName": "cloudservice-dev-web-secrets", "containerPath": "/run/secrets"}
    ]
    assert rpc.is_rpc_secret(carrier.inputs["uploads"]), "the secret file's content is sent encrypted"
    (upload,) = rpc.unwrap_rpc_secret(carrier.inputs["uploads"])
    assert upload["content"] == DB_PASSWORD
    assert (upload["file"], upload["permissions"]) == ("/run/secrets/db", "0444")
    assert "owner" not in upload and "group" not in upload, "an owner makes the engine look a user name up in the image"
    assert {
        "volumeName": "cloudservice-dev-web-secrets",
        "containerPath": "/run/secrets",
        "readOnly": True,
    } in container.inputs["volumes"]
    assert (
        as_dict(container.inputs["labels"])["cloudservice.dev/secrets-revision"] == "cloudservice-dev-web-secrets-id"
    ), "the carrier's ID: a changed secret replaces the carrier, and so the service"
    assert carrier.urn in container.dependencies, "the service (re)starts after its secrets are written"
    for resource in mocks.resources:
        assert plaintext_occurrences(resource.inputs, DB_PASSWORD) == [], f"{resource.type} {resource.name}"


@pytest.mark.parametrize("user", ["image", "10001:10001"])
def test_secret_files_are_readable_by_any_user_of_the_image(mocks, user):
    deploy(mocks, spec_of(user=user, secretFiles={"/run/secrets/db": "dbPassword"}))
    (upload,) = rpc.unwrap_rpc_secret(mocks.get(CONTAINER, "cloudservice-dev-web-secrets").inputs["uploads"])
    assert upload["permissions"] == "0444" and "owner" not in upload


def test_images_are_what_the_caller_resolved(mocks):
    image = pulumi.Output.from_input("localhost:5000/cloudservice/web@sha256:" + "a" * 64)
    _, container = deploy(mocks, image=image)
    assert container.inputs["image"] == "localhost:5000/cloudservice/web@sha256:" + "a" * 64


def test_network_output_is_used(mocks):
    _, container = deploy(mocks, networks=[pulumi.Output.from_input("custom-net")])
    assert container.inputs["networksAdvanced"][0]["name"] == "custom-net"


def test_the_container_waits_for_what_it_comes_after(mocks):
    def program():
        before = pulumi.CustomResource("test:index:Thing", "pushed")
        spec = spec_of()
        return DockerService(
            "cloudservice-dev-web",
            DockerServiceArgs(spec=spec, image=IMAGE, networks=[NETWORK], labels=STACK_LABELS, after=[before]),
        )

    run(program)
    assert mocks.get("test:index:Thing", "pushed").urn in mocks.get(CONTAINER, "cloudservice-dev-web").dependencies


def test_without_a_parent_no_first_release_aliases(mocks):
    _, container = deploy(mocks, spec_of("redis"))
    assert container.aliases == [] and mocks.get(VOLUME, "cloudservice-dev-redis-data").aliases == []


# -- DockerJob -------------------------------------------------------------------------------------

MIGRATE = {
    "migrate": {
        "build": "app/web",
        "command": ["python3", "-m", "migrate"],
        "args": ["--to", "head"],
        "env": {"MODE": "migrate"},
        "secretEnv": {"DB_PASSWORD": "dbPassword"},
    }
}


def run_job(mocks, jobs=None, **args):
    spec = spec_of("migrate", jobs=jobs or MIGRATE)
    args = {"image": IMAGE, "networks": [NETWORK], "labels": STACK_LABELS, "secrets": secrets_for(spec), **args}
    job = run(lambda: DockerJob("cloudservice-dev-migrate", DockerJobArgs(spec=spec, **args)))
    return job, mocks.get(CONTAINER, "cloudservice-dev-migrate")


def test_job_is_a_container_run_to_its_exit(mocks):
    _, container = run_job(mocks, links=REDIS)
    assert mocks.parent_of(container) is mocks.get(DOCKER_JOB, "cloudservice-dev-migrate")
    inputs = container.inputs
    assert inputs["restart"] == "no"
    assert inputs["mustRun"] is False, "a finished job is not restarted on the next update"
    assert "attach" not in inputs, "its check waits for the exit, within the job's timeout"
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
    jobs = {
        "migrate": {
            "build": "app/web",
            "files": {"/etc/migrate.conf": CONFIG_FILE},
            "secretFiles": {"/run/secrets/db": "dbPassword"},
        }
    }
    _, container = run_job(mocks, jobs)
    assert container.inputs["mounts"][0]["source"] == os.path.join(ROOT, CONFIG_FILE)
    carrier = mocks.get(CONTAINER, "cloudservice-dev-migrate-secrets")
    assert {
        "volumeName": "cloudservice-dev-migrate-secrets",
        "containerPath": "/run/secrets",
        "readOnly": True,
    } in container.inputs["volumes"]
    assert rpc.unwrap_rpc_secret(carrier.inputs["uploads"])[0]["content"] == DB_PASSWORD


def test_job_runs_after_what_it_comes_after(mocks):
    def program():
        before = pulumi.CustomResource("test:index:Thing", "db")
        spec = spec_of("migrate", jobs=MIGRATE)
        return DockerJob(
            "cloudservice-dev-migrate",
            DockerJobArgs(
                spec=spec,
                image=IMAGE,
                networks=[NETWORK],
                labels=STACK_LABELS,
                secrets=secrets_for(spec),
                after=[before],
            ),
        )

    run(program)
    container = mocks.get(CONTAINER, "cloudservice-dev-migrate")
    assert mocks.get("test:index:Thing", "db").urn in container.dependencies


# -- what `docker run` flags the spec sets -----------------------------------------------------------


def with_fields(name: str = "web", **fields):
    """The parsed spec of `name` with spec fields (components/spec.py names) replaced."""
    return dataclasses.replace(spec_of(name), **fields)


def test_user_labels_are_merged_under_the_stacks(mocks):
    spec = with_fields(labels={"team": "payments", "cloudservice.dev/stack": "spoofed", "app.kubernetes.io/name": "x"})
    _, container = deploy(mocks, spec)
    expected = {**STACK_LABELS, "app.kubernetes.io/name": "web", "team": "payments"}
    assert as_dict(container.inputs["labels"]) == expected, "the stack's win: destroy and the checks select by them"


def test_process_flags(mocks):
    spec = with_fields(
        working_dir="/srv",
        tty=True,
        stdin_open=True,
        init=True,
        stop_signal="SIGQUIT",
        sysctls={"net.core.somaxconn": "1024"},
        shm_size_mb=256,
    )
    _, container = deploy(mocks, spec)
    inputs = container.inputs
    assert (inputs["workingDir"], inputs["tty"], inputs["stdinOpen"], inputs["init"]) == ("/srv", True, True, True)
    assert inputs["stopSignal"] == "SIGQUIT"
    assert inputs["sysctls"] == {"net.core.somaxconn": "1024"}
    assert inputs["shmSize"] == 256


def test_unset_flags_are_not_sent(mocks):
    """A stack made before these fields existed plans no change (container fields replace it)."""
    _, container = deploy(mocks)
    for key in (
        "workingDir",
        "tty",
        "stdinOpen",
        "init",
        "hosts",
        "sysctls",
        "ulimits",
        "shmSize",
        "stopSignal",
        "stopTimeout",
    ):
        assert key not in container.inputs, key
    assert container.inputs["destroyGraceSeconds"] == 10


def test_extra_hosts_one_entry_per_address_and_ulimits(mocks):
    spec = with_fields(
        extra_hosts={"db.internal": ("10.0.0.5", "10.0.0.6"), "api.internal": ("10.0.0.7",)},
        ulimits={"nofile": (1024, 65536), "nproc": (512, 512)},
    )
    _, container = deploy(mocks, spec)
    assert container.inputs["hosts"] == [
        {"host": "api.internal", "ip": "10.0.0.7"},
        {"host": "db.internal", "ip": "10.0.0.5"},
        {"host": "db.internal", "ip": "10.0.0.6"},
    ]
    assert container.inputs["ulimits"] == [
        {"name": "nofile", "soft": 1024, "hard": 65536},
        {"name": "nproc", "soft": 512, "hard": 512},
    ]


def test_tmpfs_paths_besides_the_read_only_roots_tmp(mocks):
    _, container = deploy(mocks, with_fields(tmpfs=("/run", "/var/cache/app")))
    assert container.inputs["tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=16m", "/run": "", "/var/cache/app": ""}, (
        "the spec's paths get the engine's defaults, as `--tmpfs <path>`"
    )
    mocks.resources.clear()
    _, writable = deploy(mocks, with_fields(read_only=False, tmpfs=("/run",)))
    assert writable.inputs["tmpfs"] == {"/run": ""}


def test_ephemeral_paths_are_anonymous_volumes(mocks):
    _, container = deploy(mocks, with_fields("redis", ephemeral=("/scratch",)))
    assert container.inputs["volumes"] == [
        {"volumeName": "cloudservice-dev-redis-data", "containerPath": "/data"},
        {"containerPath": "/scratch"},
    ], "no volume name: the engine creates it with the container (from the image) and removes it with it"
    assert [v.inputs["name"] for v in mocks.of_type(VOLUME)] == ["cloudservice-dev-redis-data"]
    assert container.inputs.get("removeVolumes", True) is True


def test_stop_grace_period_bounds_stop_and_destroy(mocks):
    _, container = deploy(mocks, with_fields(stop_grace_period=45))
    assert (container.inputs["stopTimeout"], container.inputs["destroyGraceSeconds"]) == (45, 45)


@pytest.mark.parametrize("restart", ["always", "on-failure", "no"])
def test_service_restart_policy(mocks, restart):
    _, container = deploy(mocks, with_fields(restart=restart))
    assert container.inputs["restart"] == restart


def test_read_only_volume(mocks):
    spec = with_fields("redis", volumes=(VolumeSpec(path="/seed", name="seed", read_only=True),))
    _, container = deploy(mocks, spec)
    assert container.inputs["volumes"] == [
        {"volumeName": "cloudservice-dev-redis-seed", "containerPath": "/seed", "readOnly": True}
    ]
    assert mocks.find(CONTAINER, "cloudservice-dev-redis-seed-owner") is None, "nothing writes to it: none to prepare"


def test_job_gets_the_same_flags_and_never_restarts(mocks):
    jobs = {"migrate": {"build": "app/web"}}
    spec = dataclasses.replace(
        spec_of("migrate", jobs=jobs), init=True, ephemeral=("/work",), stop_grace_period=5, labels={"team": "data"}
    )
    job = run(
        lambda: DockerJob(
            "cloudservice-dev-migrate", DockerJobArgs(spec=spec, image=IMAGE, networks=[NETWORK], labels=STACK_LABELS)
        )
    )
    assert job is not None
    inputs = mocks.get(CONTAINER, "cloudservice-dev-migrate").inputs
    assert inputs["init"] is True and inputs["volumes"] == [{"containerPath": "/work"}]
    assert (inputs["stopTimeout"], inputs["destroyGraceSeconds"], inputs["restart"]) == (5, 5, "no")
    assert as_dict(inputs["labels"])["team"] == "data"


# -- networks and aliases ----------------------------------------------------------------------------


def test_aliases_on_every_network(mocks):
    _, container = deploy(mocks, with_fields(aliases=("cache", "db")), networks=["app-front", "app-back"])
    aliases = ["web", "cache", "db"]
    assert container.inputs["networksAdvanced"] == [
        {"name": "app-front", "aliases": aliases},
        {"name": "app-back", "aliases": aliases},
    ]


# -- ports -------------------------------------------------------------------------------------------


@pytest.fixture
def engine_picks_host_ports(mocks, monkeypatch):
    """The mocked engine fills in the host port of each published port without one (from 32768), and
    reads the protocol back, as the provider reports the container's `ports`."""
    outputs = mocks._outputs

    def with_bound_ports(typ, name, inputs):
        state = outputs(typ, name, inputs)
        if typ == CONTAINER:
            state["ports"] = [
                {**port, "external": port.get("external") or 32768 + index, "protocol": port.get("protocol", "tcp")}
                for index, port in enumerate(inputs.get("ports", []))
            ]
        return state

    monkeypatch.setattr(mocks, "_outputs", with_bound_ports)


def test_udp_port(mocks, engine_picks_host_ports):
    spec = with_fields(
        ports=(
            PortSpec(name="http", port=8080, publish=8080),
            PortSpec(name="dns", port=5353, publish=5353, protocol="udp"),
        ),
        health=None,
    )
    service, container = deploy(mocks, spec, port_offset=1)
    assert container.inputs["ports"] == [
        {"internal": 8080, "external": 8081, "ip": "127.0.0.1"},
        {"internal": 5353, "external": 5354, "ip": "127.0.0.1", "protocol": "udp"},
    ]
    assert resolve(service.urls) == {"http": "http://127.0.0.1:8081", "dns": "udp://127.0.0.1:5354"}


def test_any_host_port_is_picked_by_the_engine_and_reported(mocks, engine_picks_host_ports):
    spec = with_fields(
        ports=(
            PortSpec(name="http", port=8080, publish=ANY_HOST_PORT),
            PortSpec(name="dns", port=8080, publish=ANY_HOST_PORT, protocol="udp"),
        )
    )
    service, container = deploy(mocks, spec, port_offset=100)
    assert container.inputs["ports"] == [
        {"internal": 8080, "ip": "127.0.0.1"},
        {"internal": 8080, "ip": "127.0.0.1", "protocol": "udp"},
    ], "no host port (and no offset): the engine picks a free one on the loopback address"
    assert resolve(service.urls) == {"http": "http://127.0.0.1:32768", "dns": "udp://127.0.0.1:32769"}, (
        "the URL has the port the engine picked, from the container's ports"
    )
    assert resolve(service.url) == "http://127.0.0.1:32768"


# -- a new volume is made writable for the service's user ---------------------------------------------


@pytest.fixture
def replaced_with(monkeypatch):
    """Resource name -> the URNs whose replacement replaces it (ResourceOptions.replace_with), as sent."""
    sent = {}
    register = recorder.RecordingMonitor.RegisterResource

    def recording(self, request):
        sent[request.name] = list(request.replace_with)
        return register(self, request)

    monkeypatch.setattr(recorder.RecordingMonitor, "RegisterResource", recording)
    return sent


def test_new_volume_is_chowned_for_the_user_before_the_service_starts(mocks, replaced_with):
    spec = with_fields("redis", volumes=(VolumeSpec(path="/data"), VolumeSpec(path="/var/log/redis", name="logs")))
    _, container = deploy(mocks, spec, ready_timeout=30)
    component = mocks.get(DOCKER_SERVICE, "cloudservice-dev-redis")
    for volume_name, path in (("data", "/data"), ("logs", "/var/log/redis")):
        volume = mocks.get(VOLUME, f"cloudservice-dev-redis-{volume_name}")
        step = mocks.get(CONTAINER, f"cloudservice-dev-redis-{volume_name}-owner")
        check = mocks.get(JOB_CHECK, f"cloudservice-dev-redis-{volume_name}-owner-completed")
        assert mocks.parent_of(step) is component and mocks.parent_of(check) is component
        inputs = step.inputs
        assert inputs["image"] == IMAGE, "the service's own image: it has chown, and the path's content to copy in"
        assert inputs["user"] == "0:0" and inputs["entrypoints"] == ["chown", "10002:10002", path]
        assert "command" not in inputs, "not recursive: only the new volume's root"
        assert inputs["capabilities"] == {"drops": ["ALL"], "adds": ["CHOWN"]}
        assert inputs["securityOpts"] == ["no-new-privileges:true"] and inputs["readOnly"] is True
        assert inputs["volumes"] == [{"volumeName": f"cloudservice-dev-redis-{volume_name}", "containerPath": path}]
        assert (inputs["networkMode"], inputs["mustRun"], inputs["restart"]) == ("none", False, "no")
        assert as_dict(inputs["labels"]) == STACK_LABELS, "destroy finds it; a look-up of redis's container does not"
        assert step.delete_before_replace
        assert step.ignore_changes == ["image"], "a new image of the service does not run it again"
        assert replaced_with[step.name] == [volume.urn], "a new volume (replaced) is prepared again"
        assert check.inputs["container"] == step.name and check.inputs["revision"] == f"{step.name}-id"
        assert check.inputs["timeout"] == 30, "bounded; fails with the step's exit code and logs"
        assert check.urn in container.dependencies, "the service starts on a prepared volume"


def test_a_changed_user_runs_the_step_again(mocks):
    deploy(mocks, with_fields("redis", user=(2000, 3000)))
    step = mocks.get(CONTAINER, "cloudservice-dev-redis-data-owner")
    assert step.inputs["entrypoints"] == ["chown", "2000:3000", "/data"], (
        "the entrypoint changes with the user: the step is replaced, so it runs again"
    )


@pytest.mark.parametrize("name,changes", [("redis", {"user": None}), ("web", {})])
def test_no_step_without_a_user_or_a_volume(mocks, name, changes):
    deploy(mocks, with_fields(name, **changes))
    assert [c.name for c in mocks.of_type(CONTAINER)] == [f"cloudservice-dev-{name}"]
    assert mocks.of_type(JOB_CHECK) == []


def test_autoscale_is_for_kubernetes_docker_runs_one_container_and_says_so(mocks, monkeypatch):
    said = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, resource=None, **_: said.append(message))
    _, container = deploy(mocks, spec_of("web", autoscale={"max": 3}))
    assert len(mocks.of_type(CONTAINER)) == 1 and container.inputs["name"] == "cloudservice-dev-web"
    assert said == ["service web: autoscale is for Kubernetes: Docker runs a fixed `replicas`"]


def test_replicas_are_containers_with_the_services_aliases(mocks):
    """The first replica keeps the service's container (an upgrade updates it in place); the others are
    `<name>-<n>`, on the same networks under the same aliases, so the service's name resolves to all."""
    service, first = deploy(mocks, spec_of(publish=None, replicas=3, aliases=["www"]))
    containers = [first, mocks.get(CONTAINER, f"{first.name}-2"), mocks.get(CONTAINER, f"{first.name}-3")]
    assert [c.inputs["name"] for c in containers] == [first.name, f"{first.name}-2", f"{first.name}-3"]
    for container in containers:
        assert container.inputs["networksAdvanced"] == [{"name": NETWORK, "aliases": ["web", "www"]}]
        assert container.inputs["image"] == IMAGE and container.inputs["readOnly"] is True
        assert container.delete_before_replace and not container.inputs.get("ports")
    assert resolve(service.containers) == [c.name for c in containers]
    assert service.container_names == [c.name for c in containers]
    assert len(mocks.of_type(CONTAINER)) == 3 and len(mocks.of_type(ROLLOUT_CHECK)) == 3


def test_replicas_roll_one_after_the_other(mocks):
    """Each replica waits for the previous one's readiness check: a rollout replaces them in turn and
    the others keep serving."""
    deploy(mocks, spec_of(publish=None, replicas=3))
    name = "cloudservice-dev-web"
    for replica, previous in ((f"{name}-2", name), (f"{name}-3", f"{name}-2")):
        check = mocks.get(ROLLOUT_CHECK, f"{previous}-ready")
        assert check.urn in mocks.get(CONTAINER, replica).dependencies
    assert not any(c.urn in mocks.get(CONTAINER, name).dependencies for c in mocks.of_type(ROLLOUT_CHECK))


def test_only_the_first_replica_claims_the_first_releases_container(mocks):
    services = default_services()
    services["web"] = {**services["web"], "replicas": 2}
    del services["web"]["publish"]
    deploy_app(make_config(target="docker", **REGISTRY, services=services))
    first, second = mocks.get(CONTAINER, "cloudservice-dev-web"), mocks.get(CONTAINER, "cloudservice-dev-web-2")
    assert first.aliases and not second.aliases
