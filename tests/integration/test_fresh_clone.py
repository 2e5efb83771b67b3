"""A fresh clone, as a newcomer meets it: the first commands of Pulumi's documentation work offline
(`pulumi install`, `pulumi about`, `pulumi plugin ls --project`), `make up` leaves the working
tree exactly as cloned, and what the offline language host cannot do, it says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import grpc
import pytest
from pulumi.runtime.proto import language_pb2, language_pb2_grpc

from devtools.stack_files import write_stack_file
from support.testing import ROOT, free_port, http, wait_for


@pytest.fixture(scope="module")
def clone(tmp_path_factory, pulumi_cli, registry, docker_client):
    """A clone of this repository's HEAD, with its stacks in a backend of its own."""
    directory = tmp_path_factory.mktemp("clone") / "cloudservice"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(directory)], check=True)
    backend = directory.parent / "state"
    backend.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PULUMI_BACKEND_URL"] = f"file://{backend}"
    yield directory, env
    for stack in (directory / ".stacks").glob("Pulumi.*.yaml"):
        name = stack.name.removeprefix("Pulumi.").removesuffix(".yaml")
        subprocess.run(
            ["pulumi", "destroy", "--yes", "--remove", "--stack", name],
            cwd=directory,
            env=env,
            capture_output=True,
            timeout=600,
        )


def run(clone, *command: str, timeout: int = 600) -> subprocess.CompletedProcess:
    directory, env = clone
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_pulumi_install_creates_a_working_virtualenv(clone):
    directory, _ = clone
    assert not (directory / "venv").exists()
    assert "Finished installing dependencies" in run(clone, "pulumi", "install").stdout
    run(clone, str(directory / "venv" / "bin" / "python"), "-c", "import pulumi, pulumi_docker, pulumi_kubernetes")


def test_make_up_leaves_the_tree_clean(clone):
    directory, _ = clone
    stack = f"it-clone-{uuid.uuid4().hex[:6]}"
    # A personal stack made from dev, on a free port: its settings file is the person's, not the repo's.
    write_stack_file(
        directory / ".stacks" / f"Pulumi.{stack}.yaml", {"cloudservice:portOffset": str(free_port() - 8080)}
    )
    output = run(clone, "make", "up", f"STACK={stack}", "FROM=dev").stderr
    url = output.rsplit(f"{stack} is up: ", 1)[1].split()[0]
    assert wait_for(lambda: http("GET", url + "/healthz")[0] == 200, timeout=60, what="the app")
    assert run(clone, "git", "status", "--porcelain", "--untracked-files=all").stdout == ""


def test_pulumi_about_and_the_project_plugins(clone):
    about = run(clone, "pulumi", "about")
    text = about.stdout + about.stderr
    assert "error" not in text.lower() and "warning" not in text.lower(), text
    directory, _ = clone
    assert f"executable='{directory}/venv/bin/python'" in text
    assert "pulumi_docker" in text  # the program's dependencies
    plugins = {
        tuple(line.split()[:3]) for line in run(clone, "pulumi", "plugin", "ls", "--project").stdout.splitlines()
    }
    versions = dict(
        line.split("=", 1)
        for line in (ROOT / "versions.env").read_text().splitlines()
        if line.startswith("PULUMI_") and "=" in line
    )
    assert ("docker", "resource", versions["PULUMI_DOCKER_VERSION"]) in plugins
    assert ("kubernetes", "resource", versions["PULUMI_KUBERNETES_VERSION"]) in plugins


def test_calls_the_offline_host_cannot_serve_name_the_official_one(clone):
    directory, env = clone
    host = subprocess.Popen(
        [shutil.which("pulumi-language-python")],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(host.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            runtime = language_pb2_grpc.LanguageRuntimeStub(channel)
            for call, request in (
                (runtime.GenerateProgram, language_pb2.GenerateProgramRequest()),
                (runtime.Pack, language_pb2.PackRequest()),
            ):
                with pytest.raises(grpc.RpcError) as refused:
                    call(request, timeout=30)
                assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
                assert "official Python language host" in refused.value.details()
                assert "Method not implemented" not in refused.value.details()
    finally:
        host.terminate()
        host.wait(timeout=30)
