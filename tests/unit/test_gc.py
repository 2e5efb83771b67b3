"""devtools/gc.py's choices, on plain data: which releases `make gc` removes (all but the newest
`keepReleases` per repository, never one a stack references or someone tagged by hand) and which
references the project's stacks hold (every stack's `images` output, the pins of the stack files)."""

from __future__ import annotations

import datetime
import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from harness import ROOT

from devtools.gc import Release, engine_releases, parse_time, pinned_in_stack_files, referenced_images, removable

WEB = "localhost:5000/cloudservice/web"
REDIS = "localhost:5000/cloudservice/redis"
START = datetime.datetime(2026, 12, 6, 9, 0, tzinfo=datetime.timezone.utc)


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def tag(text: str) -> str:
    return "c-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def release(repository: str, number: int, *extra_names: str) -> Release:
    """The number-th build of a repository: built `number` minutes after START, pushed with its content tag."""
    names = {f"{repository}:{tag(f'{repository}{number}')}", f"{repository}@{digest(f'{repository}{number}')}"}
    return Release(
        repository,
        frozenset({*names, *extra_names}),
        START + datetime.timedelta(minutes=number),
        digest=digest(f"{repository}{number}"),
    )


def numbers(releases: list[Release]) -> dict[str, list[int]]:
    """Repository -> the build numbers of `releases`."""
    found: dict[str, list[int]] = {}
    for item in releases:
        found.setdefault(item.repository, []).append(int((item.created - START).total_seconds() // 60))
    return found


def test_all_but_the_newest_n_per_repository_go_oldest_first():
    history = [release(WEB, n) for n in range(1, 21)] + [release(REDIS, n) for n in range(1, 4)]
    assert numbers(removable(history, keep=5, referenced=set())) == {WEB: list(range(1, 16))}


def test_the_order_is_build_time_not_the_order_listed():
    history = [release(WEB, n) for n in (7, 2, 9, 1, 8, 3)]
    assert numbers(removable(history, keep=3, referenced=set())) == {WEB: [1, 2, 3]}


def test_a_referenced_release_stays_by_digest_or_by_tag():
    history = [release(WEB, n) for n in range(1, 11)]
    referenced = {f"{WEB}@{digest(f'{WEB}3')}", f"{WEB}:{tag(f'{WEB}4')}"}
    assert numbers(removable(history, keep=5, referenced=referenced)) == {WEB: [1, 2, 5]}


def test_a_digest_referenced_in_another_repository_protects_nothing_here():
    history = [release(WEB, n) for n in range(1, 4)]
    assert numbers(removable(history, keep=1, referenced={f"{REDIS}@{digest(f'{WEB}1')}"})) == {WEB: [1, 2]}


def test_a_release_tagged_by_hand_stays():
    history = [release(WEB, 1, f"{WEB}:latest"), release(WEB, 2), release(WEB, 3)]
    assert numbers(removable(history, keep=1, referenced=set())) == {WEB: [2]}


def test_nothing_to_do_when_there_are_no_more_than_n():
    assert removable([release(WEB, n) for n in range(1, 6)], keep=5, referenced=set()) == []
    assert removable([], keep=5, referenced=set()) == []


def test_every_stack_references_its_images_output_and_the_pins_count_too():
    """dev runs build 20, staging built 18 and prod promoted it (imagesFrom: the same reference),
    a rollback stack pins build 3; a stack that is not up exports nothing; a file pins build 6."""
    outputs = {
        "dev": {"target": "docker", "images": {"web": f"{WEB}@{digest(f'{WEB}20')}", "redis": f"{REDIS}:c-1"}},
        "staging": {"images": {"web": f"{WEB}@{digest(f'{WEB}18')}"}},
        "prod": {"images": {"web": f"{WEB}@{digest(f'{WEB}18')}"}},
        "rollback": {"images": {"web": f"{WEB}@{digest(f'{WEB}3')}"}},
        "new": {},
    }
    referenced = referenced_images(outputs, pinned=[f"{WEB}@{digest(f'{WEB}6')}"])
    assert referenced == {f"{WEB}@{digest(f'{WEB}{n}')}" for n in (20, 18, 3, 6)} | {f"{REDIS}:c-1"}
    history = [release(WEB, n) for n in range(1, 21)]
    assert numbers(removable(history, keep=5, referenced=referenced)) == {
        WEB: [n for n in range(1, 16) if n not in (3, 6)]
    }


def test_pins_are_read_from_the_committed_and_the_personal_stack_files(tmp_path: Path):
    shutil.copy(Path(ROOT) / "Pulumi.yaml", tmp_path)
    (tmp_path / "Pulumi.prod.yaml").write_text(f"config:\n  cloudservice:images:\n    web: {WEB}@{digest('a')}\n")
    (tmp_path / ".stacks").mkdir()
    (tmp_path / ".stacks" / "Pulumi.alice.yaml").write_text(
        f'config:\n  cloudservice:images: \'{{"web": "{WEB}@{digest("b")}"}}\'\n  cloudservice:target: docker\n'
    )
    (tmp_path / ".stacks" / "Pulumi.bob.yaml").write_text("config:\n  cloudservice:target: docker\n")
    assert pinned_in_stack_files(tmp_path, "cloudservice") == {f"{WEB}@{digest('a')}", f"{WEB}@{digest('b')}"}


def test_engine_images_are_releases_of_each_repository_they_are_named_in():
    shared = SimpleNamespace(
        id="sha256:shared",
        attrs={
            "RepoTags": [f"{WEB}:c-1", f"{REDIS}:c-2", "elsewhere/web:c-1"],
            "RepoDigests": [f"{WEB}@{digest('web')}"],
            "Created": "2026-12-06T10:00:00.123456789Z",
        },
    )
    unnamed = SimpleNamespace(
        id="sha256:other", attrs={"RepoTags": None, "RepoDigests": [], "Created": "2026-12-06T10:00:00Z"}
    )
    releases = engine_releases([shared, unnamed], [WEB, REDIS])
    assert {(r.repository, r.names, r.image_id) for r in releases} == {
        (WEB, frozenset({f"{WEB}:c-1", f"{WEB}@{digest('web')}"}), "sha256:shared"),
        (REDIS, frozenset({f"{REDIS}:c-2"}), "sha256:shared"),
    }


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2026-12-06T10:00:00Z", datetime.datetime(2026, 12, 6, 10, tzinfo=datetime.timezone.utc)),
        ("2026-12-06T10:00:00.123456789Z", datetime.datetime(2026, 12, 6, 10, 0, 0, 123456, datetime.timezone.utc)),
        ("2026-12-06T11:00:00.5+01:00", datetime.datetime(2026, 12, 6, 10, 0, 0, 500000, datetime.timezone.utc)),
    ],
)
def test_times_as_docker_and_the_registry_write_them(text, expected):
    assert parse_time(text) == expected


def test_a_time_that_is_not_rfc_3339_is_refused():
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday")
