"""`make dev`'s live-update plan (devtools/live.py): which saves sync, which rebuild, and why."""

from __future__ import annotations

import tarfile
from io import BytesIO
from pathlib import Path

from components.spec import SyncSpec
from devtools.live import plan, rules_of

RULES = (
    SyncSpec(path="app/web/static", target="/srv/static", action="sync", ignore=("*.tmp",)),
    SyncSpec(path="app/web/requirements.txt", action="rebuild"),
    SyncSpec(path="app/web", target="/app", action="sync+restart"),
)


def plan_for(tmp_path: Path, changes: dict[str, bytes | None], rules: tuple[SyncSpec, ...] = RULES):
    """The plan for `changes` (path in the context -> new content, None: deleted) against a context
    that ran with every file at b"old"."""
    context = tmp_path / "app" / "web"
    running = {name: (0o644, b"old") for name in ("Dockerfile", "server.py", "requirements.txt", "static/a.css")}
    now = dict(running)
    for name, content in changes.items():
        if content is None:
            now.pop(name, None)
            continue
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_bytes(content)
        now[name] = (0o644, content)
    return plan(rules, str(context), "Dockerfile", tmp_path, running, now)


def test_a_save_under_a_sync_path_is_copied_to_its_target(tmp_path):
    sync, why = plan_for(tmp_path, {"static/a.css": b"new", "static/new/b.css": b"b"})
    assert why == "" and not sync.restart and not sync.deletes
    assert set(sync.copies) == {"/srv/static/a.css", "/srv/static/new/b.css"}
    with tarfile.open(fileobj=BytesIO(sync.archive())) as archive:
        assert {m.name: archive.extractfile(m).read() for m in archive} == {
            "srv/static/a.css": b"new",
            "srv/static/new/b.css": b"b",
        }


def test_the_first_rule_covering_a_file_decides_and_restart_is_any(tmp_path):
    sync, _ = plan_for(tmp_path, {"server.py": b"new", "static/a.css": None})
    assert set(sync.copies) == {"/app/server.py"} and sync.deletes == ["/srv/static/a.css"] and sync.restart


def test_the_dockerfile_a_rebuild_path_or_an_uncovered_file_rebuilds(tmp_path):
    assert plan_for(tmp_path, {"Dockerfile": b"FROM scratch\n"}) == (None, "Dockerfile changed")
    assert plan_for(tmp_path, {"requirements.txt": b"x"})[1] == "app/web/requirements.txt is under a rebuild path"
    uncovered = plan_for(tmp_path, {"static/x.tmp": b"x"}, rules=RULES[:2])
    assert uncovered == (None, "app/web/static/x.tmp is not under a sync path")
    # Ignored by the first rule, a file is still the next covering rule's.
    assert set(plan_for(tmp_path, {"static/x.tmp": b"x"})[0].copies) == {"/app/static/x.tmp"}


def test_a_change_beyond_the_files_rebuilds(tmp_path):
    assert plan_for(tmp_path, {}) == (None, "the build changed beyond its files")


def test_the_rules_make_dev_reads_are_the_ones_the_program_exports(tmp_path):
    rule = SyncSpec(path=str(tmp_path / "app/web"), target="/app", action="sync+restart", ignore=("*.pyc",))
    exported = {"sync": {"web": [rule.output(str(tmp_path))]}}
    assert rules_of(exported) == {
        "web": (SyncSpec(path="app/web", target="/app", action="sync+restart", ignore=("*.pyc",)),)
    }
    assert rules_of({}) == {}
