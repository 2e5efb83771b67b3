"""Compose files in the shape self-hosted apps publish (tests/unit/fixtures/selfhosted): each is
accepted on both targets with what it means, or refused for host-bound reasons only, every one named."""

from __future__ import annotations

import os

import pytest
from harness import PROJECT, REGISTRY, ROOT

from components.config import ConfigError, StackConfig, parse_stack_config

FIXTURES = os.path.join(ROOT, "tests", "unit", "fixtures", "selfhosted")
# File -> None (accepted on both targets), or the keys refused, each a host-bound one.
EXPECTED = {
    "wiki": None,
    "media": None,
    "monitoring": None,
    "proxy": {"services.proxy.network_mode", "services.proxy.volumes[0]", "services.proxy.volumes[1]"},
    "vpn": {"services.vpn.devices"},
}


def parse(app: str, target: str) -> StackConfig:
    return parse_stack_config(
        {"compose": "compose.yaml", "target": target, **REGISTRY},
        project=PROJECT,
        stack="s",
        base_dir=os.path.join(FIXTURES, app),
    )


def test_the_table_covers_every_file():
    assert set(EXPECTED) == {name for name in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, name))}


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_each_file_is_accepted_or_refused_as_the_table_says(app, target):
    refused = EXPECTED[app]
    if refused is None:
        parse(app, target)
        return
    with pytest.raises(ConfigError) as error:
        parse(app, target)
    keys = {problem.split(": ")[1] for problem in error.value.problems}
    assert keys == refused and all("not supported" in problem for problem in error.value.problems)


def test_the_wiki_keeps_its_data_and_its_names():
    config = parse("wiki", "kubernetes")
    db, wiki = config.app.service("db"), config.app.service("wiki")
    assert db.aliases == ("wiki-db",), "the wiki reaches its database by its container_name"
    assert [(v.name, v.path) for v in db.volumes] == [("data", "/var/lib/postgresql/data"), ("db-backups", "/backups")]
    assert [(v.name, v.path) for v in wiki.volumes] == [("data", "/wiki/data/uploads")]
    assert db.env["POSTGRES_USER"] == "wiki" and db.env["POSTGRES_PASSWORD"] == "changeme", "the .env, then the default"
    assert wiki.image == "example/wiki:2.5" and wiki.depends_on == {"db": "healthy"}
    assert any("app/data/db" in n or "data/db is a data directory" in n for n in config.notices)


def test_the_media_server_has_its_udp_ports_files_and_volumes():
    media = parse("media", "docker").app.service("media")
    assert {(p.port, p.protocol, p.publish) for p in media.ports} == {
        (8096, "tcp", 8096),
        (8920, "tcp", 8920),
        (7359, "udp", 7359),
        (1900, "udp", 1900),
    }
    assert {f.path for f in media.files} == {"/config/server.xml", "/config/logging.json"}
    assert [v.name for v in media.volumes] == ["data", "media-transcode"] and media.ephemeral == ("/transcode/tmp",)
    assert media.labels == {"com.example.backup": "true"} and media.stop_grace_period == 30


def test_monitoring_is_split_across_its_networks():
    config = parse("monitoring", "docker")
    assert [n.name for n in config.app.networks] == ["back", "front"]
    assert config.app.service("grafana").networks == ("back", "front")
    assert config.app.service("exporter").networks == ("back",) and config.app.service("grafana").user == (472, 472)
    assert [f.path for f in config.app.service("prometheus").files] == ["/etc/prometheus/prometheus.yml"]
