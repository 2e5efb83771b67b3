"""What the integration tests and the bench share: a private copy of the project (ProjectCopy), the
platform's credentials, HTTP and polling helpers. The real engine, registry, cluster and Pulumi, no mocks."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any, Optional

from pulumi import automation as auto

from devtools.stack_files import stack_file, sync, team_settings, write_stack_file

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "components", "app", "policy")
MAKE_FILES = (
    "Makefile",
    "versions.env",
    "platform/lib.sh",
    "platform/registry.sh",
    "scripts/env.sh",
    "scripts/python-env.sh",
    "scripts/devtools.sh",
    "scripts/destroy.sh",
    "devtools",
)
"""What `make dev/logs/status/gc/destroy` need beside the project itself."""
STATE_DIR = Path(os.environ.get("CLOUDSERVICE_STATE", Path.home() / ".local/state/cloudservice"))


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip().strip("'\"") for key, value in pairs}


@dataclass(frozen=True)
class RegistryCredentials:
    server: str
    username: str
    password: str

    @classmethod
    def load(cls) -> "RegistryCredentials":
        values = read_env_file(STATE_DIR / "registry" / "credentials.env")
        return cls(values["REGISTRY_SERVER"], values["REGISTRY_USERNAME"], values["REGISTRY_PASSWORD"])

    @property
    def url(self) -> str:
        return "http://" + self.server.replace("localhost", "127.0.0.1")


# The platform's local CA (platform/router.sh): the entry point's certificate is checked against it.
ENTRY_POINT_CA = STATE_DIR / "tls" / "ca.crt"

# Run in a container (`python3 -c PYTHON_CONNECT HOST PORT`): prints "connected", or the name of the
# error the connection ends with (refused, timed out when a firewall drops it, no such name).
PYTHON_CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
    "    print('connected')\n"
    "except OSError as error:\n"
    "    print(type(error).__name__)"
)


class _LoopbackHTTPSConnection(HTTPSConnection):
    """https to a `localhost` name, as curl and browsers resolve them (to loopback; glibc does not),
    sending the name as SNI and Host and checking the certificate for it against the platform's CA."""

    def __init__(self, host: str, **kwargs):
        super().__init__(host, context=ssl.create_default_context(cafile=ENTRY_POINT_CA), **kwargs)

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


class _EntryPointHandler(urllib.request.HTTPSHandler):
    def https_open(self, request):
        return self.do_open(_LoopbackHTTPSConnection, request)


def http(
    method: str,
    url: str,
    body: Optional[bytes] = None,
    auth: Optional[tuple[str, str]] = None,
    timeout: float = 5,
    headers: Optional[dict] = None,
) -> tuple[int, bytes, Message]:
    """One HTTP request; returns (status, body, headers) for every status, raises only on network errors.
    An https URL is the entry point's: sent to loopback, its certificate checked against the platform's CA."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    urlopen = (
        urllib.request.build_opener(_EntryPointHandler).open if url.startswith("https://") else urllib.request.urlopen
    )
    try:
        with urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def get_json(url: str, method: str = "GET", body: Optional[bytes] = None, timeout: float = 5) -> tuple[int, Any]:
    status, payload, _ = http(method, url, body, timeout=timeout)
    return status, json.loads(payload) if payload else None


def free_port() -> int:
    """A loopback port nothing listens on now (for a stack's published port)."""
    return free_ports(1)[0]


PICKED_PORTS = range(20000, 30000)
"""Where free ports are picked: below the kernel's ephemeral range (32768-60999), where each outgoing
connection takes its local port, so that a port found free there may be taken before the engine binds
it; and below the cluster's NodePorts (30000-32767)."""


def worker_ports() -> range:
    """This test process's share of PICKED_PORTS: each pytest-xdist worker (`make test` runs two) picks
    from a slice of its own, so that two workers never pick the same port at once."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    share = len(PICKED_PORTS) // workers
    return PICKED_PORTS[worker * share : (worker + 1) * share]


def free_ports(count: int) -> list[int]:
    """`count` different loopback ports nothing listens on now: each is held until all are picked (one
    port closed and asked for again may come back the same)."""
    picked: list[int] = []
    candidates = worker_ports()
    with contextlib.ExitStack() as held:
        for port in random.sample(candidates, len(candidates)):
            probe = held.enter_context(socket.socket())
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # something listens there
                continue
            picked.append(port)
            if len(picked) == count:
                return picked
    raise RuntimeError(f"fewer than {count} free loopback ports in {candidates}")


def wait_for(condition, timeout: float, interval: float = 1.0, what: str = "condition"):
    """Polls `condition()` until it returns a truthy value; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except (OSError, ValueError) as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def registry_manifest_status(
    registry: RegistryCredentials, repository: str, reference: str, auth: Optional[tuple[str, str]] = None
) -> int:
    accept = ", ".join(
        [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ]
    )
    status, _, _ = http(
        "HEAD", f"{registry.url}/v2/{repository}/manifests/{reference}", auth=auth, headers={"Accept": accept}
    )
    return status


def kubectl(*args: str, check: bool = True) -> str:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json"))


class ProjectCopy:
    """A private copy of the project (same code, same stack files) with its own file backend, so
    tests never touch the user's stacks, and stack names that cannot clash with theirs."""

    def __init__(self, directory: Path, revision: Optional[str] = None, env: Optional[dict] = None):
        """`revision`: a git commit of this repository to take the project files from instead;
        `env`: environment for its Pulumi commands (e.g. another backend or Pulumi home)."""
        self.directory = directory
        self.revision = revision
        if revision:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", revision, *PROJECT_FILES], capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
        else:
            self.copy_current_files()
        (directory / "venv").symlink_to(ROOT / "venv")
        self.backend = directory / ".state"
        self.backend.mkdir()
        self.env = {"PULUMI_BACKEND_URL": f"file://{self.backend}", **(env or {})}

    def copy_current_files(self) -> None:
        """Puts the working tree's project files in place (over those of another revision), and the
        stack files where they now live, as `make up` does after an upgrade."""
        for name in PROJECT_FILES:
            source, target = ROOT / name, self.directory / name
            if source.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
        for path in self.directory.glob("Pulumi.*.yaml"):
            sync(self.directory, path.name.removeprefix("Pulumi.").removesuffix(".yaml"))

    def add_make_files(self) -> None:
        """Puts this checkout's Makefile and what its targets run into the copy (`make` run in it)."""
        for name in MAKE_FILES:
            source, target = ROOT / name, self.directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)

    def make(self, target: str, stack_name: str) -> subprocess.CompletedProcess:
        """`make TARGET STACK=...` in the copy (after add_make_files), its output captured."""
        return subprocess.run(
            ["make", "--no-print-directory", target, f"STACK={stack_name}"],
            cwd=self.directory,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    def stack(
        self, template: str, name: Optional[str] = None, config: Optional[dict] = None, secrets: Optional[dict] = None
    ) -> auto.Stack:
        """Stack `name` (default: a unique one) with this copy's own settings file made from the
        committed Pulumi.<template>.yaml; created, or selected when the backend has it already."""
        name = name or f"it-{template}-{uuid.uuid4().hex[:6]}"
        # The committed settings only: secrets a user set locally are encrypted for their stack.
        write_stack_file(self.stack_file(name), team_settings(self.read_file(f"Pulumi.{template}.yaml")))
        stack = auto.create_or_select_stack(
            name,
            work_dir=str(self.directory),
            opts=auto.LocalWorkspaceOptions(work_dir=str(self.directory), env_vars=self.env),
        )
        for key, value in (config or {}).items():
            stack.set_config(f"cloudservice:{key}", auto.ConfigValue(value=value), path=False)
        for key, value in (secrets or {}).items():
            stack.set_config(f"cloudservice:{key}", auto.ConfigValue(value=value, secret=True))
        return stack

    def read_file(self, name: str) -> str:
        """A committed file of the project, at this copy's revision."""
        if self.revision:
            return subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{self.revision}:{name}"], capture_output=True, text=True, check=True
            ).stdout
        return (ROOT / name).read_text()

    def stack_file(self, stack_name: str) -> Path:
        """The stack's settings file, where this copy's Pulumi.yaml has Pulumi look for it."""
        return stack_file(self.directory, stack_name)

    def state_file(self, stack_name: str) -> Path:
        return self.backend / ".pulumi" / "stacks" / "cloudservice" / f"{stack_name}.json"


def step_events(events):
    return [e.resource_pre_event.metadata for e in events if e.resource_pre_event is not None]


def changed_resources(events) -> set[tuple[str, str]]:
    """(type, name) of every resource an operation created, updated, replaced or deleted."""
    return {(m.type, m.urn.rsplit("::", 1)[1]) for m in step_events(events) if m.op not in ("same", "read")}


def edit_app_version(project: ProjectCopy, version: str) -> None:
    """Changes one source file of the web service: the version it reports."""
    source = project.directory / "app" / "web" / "server.py"
    text = source.read_text()
    current = next(line for line in text.splitlines() if line.startswith("VERSION = "))
    source.write_text(text.replace(current, f'VERSION = "{version}"'))


def recover(project: ProjectCopy, stack_name: str) -> str:
    """Runs devtools/recover.py on a stack of the copy, as `make up` and `make destroy` do first;
    returns what it reported."""
    result = subprocess.run(
        [sys.executable, "-m", "devtools", "recover", "--stack", stack_name],  # this checkout's, on the copy
        cwd=project.directory,
        env={**os.environ, **project.env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(result.stderr)  # what it did, shown with a failure
    assert result.returncode == 0, result.stderr
    return result.stderr
