"""The platform's registry (platform/registry.sh), as `make gc` and `make status` use it: its HTTP API
(list a repository's images, delete one by digest) and the size of its storage on disk."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Optional

from .stack import StackError

MANIFEST_TYPES = ", ".join(
    ["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"]
)
STATE_DIR = Path(os.environ.get("CLOUDSERVICE_STATE", Path.home() / ".local/state/cloudservice"))


@dataclass(frozen=True)
class Image:
    """One manifest of a repository: its digest, the tags that name it, and when it was built."""

    digest: str
    tags: frozenset[str]
    created: str
    """The image config's `created` (RFC 3339), as the engine that built it reports it too."""


class PlatformRegistry:
    """The registry platform/up.sh runs on loopback, with the credentials it generated (scripts/env.sh)."""

    def __init__(self, server: str, username: str, password: str):
        self.server = server
        self.url = "http://" + server.replace("localhost", "127.0.0.1")
        self._authorization = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    @classmethod
    def from_env(cls) -> Optional["PlatformRegistry"]:
        """None when the environment names no platform registry (scripts/env.sh before `make platform`)."""
        names = ("REGISTRY_SERVER", "REGISTRY_USERNAME", "REGISTRY_PASSWORD")
        if not all(os.environ.get(name) for name in names):
            return None
        return cls(*(os.environ[name] for name in names))

    def holds(self, repository: str) -> bool:
        return repository.startswith(f"{self.server}/")

    def _request(self, method: str, path: str) -> tuple[int, bytes, Message]:
        request = urllib.request.Request(
            f"{self.url}/v2/{path}",
            method=method,
            headers={"Authorization": self._authorization, "Accept": MANIFEST_TYPES},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers
        except OSError as error:
            raise StackError(f"registry {self.server} unreachable ({error}): run `make platform`") from None

    def _json(self, path: str) -> dict:
        status, body, _ = self._request("GET", path)
        if status != 200:
            raise StackError(f"registry {self.server}: GET /v2/{path}: HTTP {status} {body[:200]!r}")
        return json.loads(body)

    def images(self, repository: str) -> list[Image]:
        """Every tagged image of `repository` (host/path), one per digest."""
        path = repository.removeprefix(f"{self.server}/")
        status, body, _ = self._request("GET", f"{path}/tags/list")
        if status == 404:  # nothing was ever pushed there
            return []
        if status != 200:
            raise StackError(f"registry {self.server}: tags of {path}: HTTP {status} {body[:200]!r}")
        tags_of: dict[str, set[str]] = {}
        configs: dict[str, str] = {}
        for tag in json.loads(body).get("tags") or []:
            status, body, headers = self._request("GET", f"{path}/manifests/{tag}")
            if status == 404:  # deleted since the listing
                continue
            if status != 200:
                raise StackError(f"registry {self.server}: manifest {path}:{tag}: HTTP {status}")
            config = json.loads(body).get("config")
            if config is None:  # an index of several platforms: none of the builds here, left alone
                continue
            digest = headers["Docker-Content-Digest"]
            tags_of.setdefault(digest, set()).add(tag)
            configs[digest] = config["digest"]
        return [
            Image(digest, frozenset(tags), self._json(f"{path}/blobs/{configs[digest]}")["created"])
            for digest, tags in tags_of.items()
        ]

    def delete(self, repository: str, digest: str) -> None:
        """Deletes the manifest (and every tag naming it); its blobs go at the next garbage collection."""
        path = repository.removeprefix(f"{self.server}/")
        status, body, _ = self._request("DELETE", f"{path}/manifests/{digest}")
        if status not in (202, 404):
            raise StackError(f"registry {self.server}: DELETE {path}@{digest}: HTTP {status} {body[:200]!r}")


def storage_dir() -> Path:
    return STATE_DIR / "registry" / "data"


def disk_usage(path: Path) -> int:
    """Bytes on disk under `path`, as `du` counts them (0 when it does not exist)."""
    if not path.exists():
        return 0
    result = subprocess.run(["du", "-sB1", str(path)], capture_output=True, text=True)
    return int(result.stdout.split()[0]) if result.stdout else 0


def human(size: float) -> str:
    """1234567 -> 1.2 MB (decimal units, as `docker system df` prints them)."""
    units = ("B", "kB", "MB", "GB", "TB")
    power = 0
    while abs(size) >= 1000 and power < len(units) - 1:
        size, power = size / 1000, power + 1
    return f"{size:.0f} B" if power == 0 else f"{size:.1f} {units[power]}"
