"""A stack brought up by the previous release, then updated by this one: nothing that holds data or
an address (volume, PVC, Service) is replaced, and the records written before are still there.

The previous release is the last commit with one component per target (before the per-service
components), taken from git history into a private copy of the project.
"""

from __future__ import annotations

import subprocess

import pytest

from support.testing import ROOT, ProjectCopy, free_port, get_json, http, step_events

KEPT = (
    "docker:index/volume:Volume",
    "kubernetes:core/v1:PersistentVolumeClaim",
    "kubernetes:core/v1:Service",
    "kubernetes:core/v1:Namespace",
    "docker:index/network:Network",
)
RECORDS = 20


def previous_release() -> str:
    removed_in = subprocess.run(
        ["git", "-C", str(ROOT), "rev-list", "-1", "HEAD", "--", "components/docker_deployment.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert removed_in, "git history has the release with components/docker_deployment.py"
    return f"{removed_in}^"


def notes(url: str) -> list:
    code, body = get_json(f"{url}/notes")
    assert code == 200, body
    return body["notes"]


@pytest.mark.parametrize(
    "template, config",
    [("dev", lambda: {"portOffset": str(free_port() - 8080)}), ("staging", lambda: {"replicas": "1"})],
    ids=["docker", "kubernetes"],
)
def test_upgrade_from_the_previous_release_keeps_data_and_addresses(
    tmp_path, registry, docker_client, pulumi_cli, template, config, request
):
    if template == "staging":
        request.getfixturevalue("cluster")
    project = ProjectCopy(tmp_path, revision=previous_release())
    stack = project.stack(template, config=config(), secrets={"registryPassword": registry.password})
    try:
        url = stack.up().outputs["url"].value
        for index in range(RECORDS):
            assert http("POST", f"{url}/notes", f"record {index}".encode())[0] in (200, 201)
        before = notes(url)
        assert len(before) == RECORDS

        project.copy_current_files()
        events: list = []
        stack.preview(on_event=events.append)
        planned = {(m.type, m.urn.rsplit("::", 1)[1]): m.op for m in step_events(events)}
        kept = {key: op for key, op in planned.items() if key[0] in KEPT}
        assert kept, f"the preview shows the data and address resources: {planned}"
        assert all(op in ("same", "update") for op in kept.values()), f"nothing kept is replaced: {kept}"
        assert not [
            key for key, op in planned.items() if op in ("delete", "replace", "delete-replaced") and key[0] in KEPT
        ]

        events = []
        url = stack.up(on_event=events.append).outputs["url"].value
        done = {(m.type, m.urn.rsplit("::", 1)[1]): m.op for m in step_events(events)}
        assert all(op in ("same", "update") for key, op in done.items() if key[0] in KEPT), done
        assert notes(url) == before, "the records written under the previous release are all there"
        events = []
        stack.preview(on_event=events.append)
        assert {m.op for m in step_events(events)} <= {"same"}, "converged: a second preview plans nothing"
    finally:
        stack.destroy()
        stack.workspace.remove_stack(stack.name)
