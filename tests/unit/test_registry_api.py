"""devtools/registry.py against a registry's HTTP API served on loopback: a repository's images one
per digest with every tag naming it and their build time, an index or a manifest gone since the
listing left out, deletion by digest, and errors that name the registry; and the sizes `make status`
prints (its disk lines)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from loopback import QuietHandler, serving

from devtools import status
from devtools.registry import Image, PlatformRegistry, human
from devtools.stack import StackError

USER, PASSWORD = "cloudservice", "s3cret"
MANIFESTS = {
    "sha256:aaa": {"config": {"digest": "sha256:config-a"}, "layers": []},
    "sha256:bbb": {"config": {"digest": "sha256:config-b"}, "layers": []},
    "sha256:index": {"manifests": [{"digest": "sha256:aaa"}]},
}
TAGS = {"c-1": "sha256:aaa", "latest": "sha256:aaa", "c-2": "sha256:bbb", "multi": "sha256:index", "gone": None}
CONFIGS = {"sha256:config-a": "2026-12-06T10:00:00.5Z", "sha256:config-b": "2026-12-06T11:00:00Z"}


class Registry(QuietHandler):
    """One repository, `app/web`; DELETE of `sha256:broken` fails as a registry without deletion does."""

    deleted: list[str] = []

    def _answer(self, status: int, body: object = None, headers: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return False
        return True

    def do_GET(self):
        if not self._authorized():
            return
        prefix = "/v2/app/web/"
        if not self.path.startswith(prefix):
            return self._answer(404, {"errors": [{"code": "NAME_UNKNOWN"}]})
        kind, _, reference = self.path.removeprefix(prefix).partition("/")
        if kind == "tags":
            return self._answer(200, {"name": "app/web", "tags": sorted(TAGS)})
        if kind == "manifests":
            digest = TAGS.get(reference)
            if digest is None:
                return self._answer(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            return self._answer(200, MANIFESTS[digest], {"Docker-Content-Digest": digest})
        if kind == "blobs" and reference in CONFIGS:
            return self._answer(200, {"created": CONFIGS[reference], "config": {}})
        return self._answer(404)

    def do_DELETE(self):
        if not self._authorized():
            return
        digest = self.path.rpartition("/")[2]
        if digest == "sha256:broken":
            return self._answer(405, {"errors": [{"code": "UNSUPPORTED"}]})
        Registry.deleted.append(self.path)
        return self._answer(202)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(Registry) as address:
        yield address


def test_images_are_one_per_digest_with_every_tag_and_their_build_time(server):
    registry = PlatformRegistry(server, USER, PASSWORD)
    assert sorted(registry.images(f"{server}/app/web"), key=lambda image: image.digest) == [
        Image("sha256:aaa", frozenset({"c-1", "latest"}), "2026-12-06T10:00:00.5Z"),
        Image("sha256:bbb", frozenset({"c-2"}), "2026-12-06T11:00:00Z"),
    ]


def test_a_repository_nothing_was_pushed_to_has_no_images(server):
    assert PlatformRegistry(server, USER, PASSWORD).images(f"{server}/app/none") == []


def test_delete_goes_by_digest_and_a_refusal_names_the_registry(server):
    registry = PlatformRegistry(server, USER, PASSWORD)
    registry.delete(f"{server}/app/web", "sha256:bbb")
    assert Registry.deleted == ["/v2/app/web/manifests/sha256:bbb"]
    with pytest.raises(StackError, match=rf"registry {server}: DELETE app/web@sha256:broken: HTTP 405"):
        registry.delete(f"{server}/app/web", "sha256:broken")


def test_wrong_credentials_and_no_registry_are_errors_naming_it(server):
    with pytest.raises(StackError, match=rf"registry {server}: tags of app/web: HTTP 401"):
        PlatformRegistry(server, USER, "wrong").images(f"{server}/app/web")
    with pytest.raises(StackError, match=r"registry 127.0.0.1:9 unreachable .*run `make platform`"):
        PlatformRegistry("127.0.0.1:9", USER, PASSWORD).images("127.0.0.1:9/app/web")


def test_only_its_own_repositories_are_the_registrys(server):
    registry = PlatformRegistry(server, USER, PASSWORD)
    assert registry.holds(f"{server}/app/web")
    assert not registry.holds("registry.example.com/app/web") and not registry.holds(f"{server}0/app/web")


@pytest.mark.parametrize(
    "size,text", [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_234_567, "1.2 MB"), (-2_500_000, "-2.5 MB")]
)
def test_sizes_in_decimal_units_as_docker_prints_them(size, text):
    assert human(size) == text


def test_status_disk_lines_total_the_engine_as_docker_system_df_and_add_the_registrys_storage(
    tmp_path: Path, monkeypatch
):
    usage = {
        "LayersSize": 415_200_000,
        "Images": [{}] * 38,
        "Containers": [{"SizeRw": 1_000_000}, {"SizeRw": None}, {"SizeRw": 100_000}],
        "Volumes": [{"UsageData": {"Size": 52_400_000}}, {"UsageData": {"Size": -1}}],  # -1: not computed
        "BuildCache": None,
    }
    client = SimpleNamespace(df=lambda: usage)
    storage = tmp_path / "registry" / "data"
    monkeypatch.setattr(status, "storage_dir", lambda: storage)
    engine = "disk: engine 415.2 MB in 38 images, containers 1.1 MB, volumes 52.4 MB, build cache 0 B"
    assert status.space_used(client) == [engine]  # no registry on this machine: no line for it
    storage.mkdir(parents=True)
    (storage / "blob").write_bytes(b"x" * 2_000_000)
    engine_line, registry_line = status.space_used(client)
    assert engine_line == engine
    assert registry_line.startswith("disk: registry 2.0 MB ") and "`make gc`" in registry_line
