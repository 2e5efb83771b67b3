"""A team on one backend: two people, each with their own clone of the project and their own Pulumi
home, share stacks through the platform's PostgreSQL (Pulumi's postgres:// backend): they see the
same stacks, one update at a time, one stack's outputs feed the other's (a StackReference), the
state outlives a database restart and its secrets are ciphertext. And the secrets of a stack file
are locked by the generated passphrase, not the old empty one.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from pulumi import automation as auto

from support.testing import ROOT, STATE_DIR, ProjectCopy, edit_app_version, free_port, http, read_env_file, wait_for


@dataclass(frozen=True)
class Database:
    """The platform's PostgreSQL, with a table of its own for this test module's state."""

    url: str
    table: str

    def query(self, sql: str) -> list[str]:
        """Rows of `sql` (columns joined by |), through psql with the platform's passfile."""
        target = urlparse(self.url)
        passfile = parse_qs(target.query)["passfile"][0]
        result = subprocess.run(
            [
                "psql",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                target.hostname,
                "-p",
                str(target.port),
                "-U",
                target.username,
                "-d",
                target.path.lstrip("/"),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSFILE": passfile},
            timeout=60,
        )
        assert result.returncode == 0, f"psql: {result.stderr}"
        return [line for line in result.stdout.splitlines() if line]

    def restart(self) -> None:
        for action in ("stop", "start"):
            subprocess.run([str(ROOT / "platform" / "database.sh"), action], check=True, capture_output=True)


@pytest.fixture(scope="module")
def database():
    credentials = STATE_DIR / "postgres" / "credentials.env"
    if not credentials.is_file():
        pytest.fail(f"no database credentials in {credentials}; run `make platform`", pytrace=False)
    table = f"it_team_{uuid.uuid4().hex[:8]}"
    database = Database(url=f"{read_env_file(credentials)['POSTGRES_URL']}&table={table}", table=table)
    try:
        database.query("SELECT 1")
    except AssertionError as error:
        pytest.fail(f"the platform's PostgreSQL does not answer ({error}); run `make platform`", pytrace=False)
    yield database
    database.query(f"DROP TABLE IF EXISTS {table}")


def clone(directory: Path, database: Database) -> ProjectCopy:
    """One person's copy of the project: the shared backend, and a Pulumi home of their own (its
    plugins are the toolchain's, linked)."""
    home = directory / "pulumi-home"
    home.mkdir(parents=True)
    (home / "plugins").symlink_to(Path(os.environ["PULUMI_HOME"]) / "plugins")
    (directory / "project").mkdir()
    return ProjectCopy(directory / "project", env={"PULUMI_BACKEND_URL": database.url, "PULUMI_HOME": str(home)})


@pytest.fixture(scope="module")
def team(tmp_path_factory, database, registry, pulumi_cli, docker_client):
    """Alice and Bob, and the stack Alice made, with its first update done."""
    alice = clone(tmp_path_factory.mktemp("alice"), database)
    bob = clone(tmp_path_factory.mktemp("bob"), database)
    name = f"it-team-{uuid.uuid4().hex[:6]}"
    settings = {"config": {"portOffset": str(free_port() - 8080)}, "secrets": {"registryPassword": registry.password}}
    stacks = {"alice": alice.stack("dev", name, **settings)}
    stacks["alice"].up()
    stacks["bob"] = bob.stack("dev", name, **settings)  # Bob's own settings file for the stack Alice made
    yield alice, bob, stacks
    stacks["alice"].destroy()
    stacks["alice"].workspace.remove_stack(name)


def test_both_see_the_same_stacks(team):
    alice, bob, stacks = team
    names = {person: {s.name for s in stack.workspace.list_stacks()} for person, stack in stacks.items()}
    assert stacks["alice"].name in names["alice"]
    assert names["alice"] == names["bob"]


def test_one_update_at_a_time(team, database):
    alice, bob, stacks = team
    for person in (alice, bob):  # both pulled a change to the app: Alice's update rebuilds it
        edit_app_version(person, "v2")
    first: dict = {}
    update = threading.Thread(target=lambda: first.setdefault("result", stacks["alice"].up()))
    update.start()
    try:
        wait_for(
            lambda: database.query(f"SELECT key FROM {database.table} WHERE key LIKE '%.pulumi/locks/%'"),
            timeout=60,
            what="Alice's update to lock the stack",
        )
        with pytest.raises(auto.CommandError) as refused:
            stacks["bob"].up()
        assert "currently locked" in str(refused.value)
    finally:
        update.join(timeout=600)
    assert first["result"].summary.result == "succeeded"
    url = first["result"].outputs["url"].value
    assert wait_for(lambda: http("GET", url + "/healthz")[0] == 200, timeout=60, what="Alice's app")


def test_a_stack_reference_across_people(team, registry):
    """Bob promotes what Alice built: his stack runs her stack's images (imagesFrom), no build."""
    _, bob, stacks = team
    images = stacks["alice"].outputs()["images"].value
    promoted = bob.stack(
        "dev",
        f"{stacks['alice'].name}-promo",
        config={
            "portOffset": str(free_port() - 8080),
            "imagesFrom": f"organization/cloudservice/{stacks['alice'].name}",
        },
        secrets={"registryPassword": registry.password},
    )
    try:
        result = promoted.up()
        assert result.outputs["images"].value == images
        assert wait_for(
            lambda: http("GET", result.outputs["url"].value + "/healthz")[0] == 200,
            timeout=60,
            what="Bob's promoted app",
        )
    finally:
        promoted.destroy()
        promoted.workspace.remove_stack(promoted.name)


def test_the_state_outlives_a_database_restart(team, database):
    _, _, stacks = team
    outputs = {key: value.value for key, value in stacks["alice"].outputs().items()}
    database.restart()
    assert {key: value.value for key, value in stacks["bob"].outputs().items()} == outputs
    for person in ("alice", "bob"):  # each from their own clone, in its own directory
        stacks[person].preview(expect_no_changes=True)


def test_secrets_in_the_database_are_ciphertext(team, database, registry):
    _, _, stacks = team
    rows = dict(row.split("|", 1) for row in database.query(f"SELECT key, data FROM {database.table}"))
    stored = {key: base64.b64decode(json.loads(data)["data"]).decode(errors="replace") for key, data in rows.items()}
    checkpoint = next(text for key, text in stored.items() if key.endswith(f"/{stacks['alice'].name}.json"))
    assert '"ciphertext"' in checkpoint
    for key in rows:
        assert registry.password not in rows[key] + stored[key], f"secret in plaintext in the row {key}"


def test_a_stack_files_secrets_do_not_open_with_an_empty_passphrase(project):
    """The generated passphrase (scripts/env.sh) locks them; the old default, empty, does not open them."""
    passphrase = Path(os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert passphrase.stat().st_mode & 0o777 == 0o600
    assert ROOT not in passphrase.resolve().parents
    secret = f"s3cret-{uuid.uuid4().hex}"
    stack = project.stack("dev", secrets={"registryPassword": secret})
    try:
        assert secret not in project.stack_file(stack.name).read_text()

        def config_get(**env):
            base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
            return subprocess.run(
                ["pulumi", "config", "get", "registryPassword", "--stack", stack.name],
                cwd=project.directory,
                capture_output=True,
                text=True,
                env={**base, **project.env, **env},
                timeout=60,
            )

        locked = config_get(PULUMI_CONFIG_PASSPHRASE="")
        assert locked.returncode != 0 and "incorrect passphrase" in locked.stderr
        assert config_get(PULUMI_CONFIG_PASSPHRASE_FILE=str(passphrase)).stdout.strip() == secret
    finally:
        stack.workspace.remove_stack(stack.name)
