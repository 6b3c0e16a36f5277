"""The configuration parser: what it accepts, and every rejection as one line naming the
file, the group and the key."""

from __future__ import annotations

import socket
from pathlib import Path

import attrs
import pytest

from trio_ping.exporter.config import (
    Config,
    ConfigError,
    Probe,
    TargetGroup,
    load,
    parse,
    resolve_probes,
)
from trio_ping.pinger import DEFAULT_TIMEOUT

FILE = "exporter.toml"


def test_a_whole_group_is_read_with_its_types() -> None:
    config = parse(
        """
        [[targets]]
        hosts = ["10.0.0.1", "db1.example.net"]
        interval = 2
        timeout = 0.5
        size = 100
        ttl = 9
        tos = 16
        source = "10.0.0.9"
        interface = "eth0"
        labels = { site = "ams1", rack = "r2" }

        [[targets]]
        hosts = ["::1"]
        """,
        FILE,
    )
    first, second = config.groups
    assert first == TargetGroup(
        hosts=("10.0.0.1", "db1.example.net"),
        interval=2.0,
        timeout=0.5,
        size=100,
        ttl=9,
        tos=16,
        source="10.0.0.9",
        interface="eth0",
        labels=(("rack", "r2"), ("site", "ams1")),
    )
    assert first.options() == {
        "size": 100,
        "ttl": 9,
        "tos": 16,
        "source": "10.0.0.9",
        "interface": "eth0",
    }
    assert second == TargetGroup(hosts=("::1",), interval=1.0, timeout=DEFAULT_TIMEOUT)
    assert second.options() == {}
    assert config.label_names == ("ip", "host", "source", "tos", "rack", "site")


def test_the_same_host_may_be_probed_with_another_source_or_tos() -> None:
    config = parse(
        '[[targets]]\nhosts = ["10.0.0.1"]\n[[targets]]\nhosts = ["10.0.0.1"]\ntos = 8\n', FILE
    )
    assert [g.tos for g in config.groups] == [None, 8]


GROUP = '[[targets]]\nhosts = ["10.0.0.1"]\n'

REJECTIONS = [
    ("[[targets]\n", f"{FILE}: not valid TOML: "),
    ('title = "x"\n' + GROUP, f"{FILE}: title: unknown key"),
    ("", f"{FILE}: targets: missing"),
    ("targets = []\n", f"{FILE}: targets: empty"),
    ("targets = 3\n", f"{FILE}: targets: must be an array of tables"),
    ("targets = [1]\n", f"{FILE}: targets: must be an array of tables"),
    ("[[targets]]\ninterval = 1\n", f"{FILE}: targets[0]: hosts: missing"),
    ("[[targets]]\nhosts = []\n", f"{FILE}: targets[0]: hosts: must be a non-empty list"),
    ('[[targets]]\nhosts = "10.0.0.1"\n', f"{FILE}: targets[0]: hosts: must be a non-empty list"),
    ("[[targets]]\nhosts = [1]\n", f"{FILE}: targets[0]: hosts[0]: must be an address"),
    ('[[targets]]\nhosts = ["a", " "]\n', f"{FILE}: targets[0]: hosts[1]: must be an address"),
    ('[[targets]]\nhosts = ["a", "a"]\n', f"{FILE}: targets[0]: hosts: 'a' is listed twice"),
    (GROUP + GROUP, f"{FILE}: targets[1]: hosts[0]: '10.0.0.1' is already in targets[0]"),
    (GROUP + "intervall = 1\n", f"{FILE}: targets[0]: intervall: unknown key"),
    (GROUP + "interval = 0\n", f"{FILE}: targets[0]: interval: must be a positive number"),
    (GROUP + "interval = -1.5\n", f"{FILE}: targets[0]: interval: must be a positive number"),
    (GROUP + "interval = inf\n", f"{FILE}: targets[0]: interval: must be a positive number"),
    (GROUP + "interval = nan\n", f"{FILE}: targets[0]: interval: must be a positive number"),
    (GROUP + 'interval = "1s"\n', f"{FILE}: targets[0]: interval: must be a number of seconds"),
    (GROUP + "interval = true\n", f"{FILE}: targets[0]: interval: must be a number of seconds"),
    (GROUP + "timeout = 0\n", f"{FILE}: targets[0]: timeout: must be a positive number"),
    (GROUP + "size = -1\n", f"{FILE}: targets[0]: size: must be a whole number 0 to 65507"),
    (GROUP + "size = 65508\n", f"{FILE}: targets[0]: size: must be a whole number 0 to 65507"),
    (GROUP + "size = 5.0\n", f"{FILE}: targets[0]: size: must be a whole number 0 to 65507"),
    (GROUP + "ttl = 0\n", f"{FILE}: targets[0]: ttl: must be a whole number 1 to 255"),
    (GROUP + "ttl = 256\n", f"{FILE}: targets[0]: ttl: must be a whole number 1 to 255"),
    (GROUP + "tos = 256\n", f"{FILE}: targets[0]: tos: must be a whole number 0 to 255"),
    (GROUP + "tos = false\n", f"{FILE}: targets[0]: tos: must be a whole number 0 to 255"),
    (GROUP + 'source = "eth0"\n', f"{FILE}: targets[0]: source: must be an IP address"),
    (GROUP + "source = 167772161\n", f"{FILE}: targets[0]: source: must be an IP address"),
    (GROUP + 'interface = ""\n', f"{FILE}: targets[0]: interface: must be a network device"),
    (GROUP + 'interface = "a/b"\n', f"{FILE}: targets[0]: interface: must be a network device"),
    (GROUP + 'interface = "x" \n'.replace("x", "x" * 16), f"{FILE}: targets[0]: interface:"),
    (GROUP + "labels = 3\n", f"{FILE}: targets[0]: labels: must be a table"),
    (GROUP + 'labels = { "a-b" = "x" }\n', f"{FILE}: targets[0]: labels.a-b: not a Prometheus"),
    (GROUP + 'labels = { __x = "x" }\n', f"{FILE}: targets[0]: labels.__x: not a Prometheus"),
    (GROUP + 'labels = { host = "x" }\n', f"{FILE}: targets[0]: labels.host: reserved"),
    (GROUP + "labels = { site = 1 }\n", f"{FILE}: targets[0]: labels.site: must be a string"),
    (
        GROUP + '[[targets]]\nhosts = ["10.0.0.2"]\nttl = 300\n',
        f"{FILE}: targets[1]: ttl: must be a whole number 1 to 255, got 300",
    ),
]


@pytest.mark.parametrize(("text", "message"), REJECTIONS)
def test_every_rejection_is_one_line_naming_the_file_group_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, FILE)
    said = str(caught.value)
    assert said.startswith(message), said
    assert "\n" not in said


def test_a_file_is_read_and_named(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(GROUP)
    assert load(path) == Config(str(path), (TargetGroup(hosts=("10.0.0.1",)),))


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=rf"^{path}: cannot read it: No such file"):
        load(path)


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# caf\xe9\n" + GROUP.encode())
    with pytest.raises(ConfigError, match=rf"^{path}: not UTF-8 text: .* at byte 5$"):
        load(path)


async def test_hosts_resolve_in_order_and_addresses_stand_for_themselves() -> None:
    config = parse('[[targets]]\nhosts = ["10.0.0.1", "::1", "localhost"]\n', FILE)
    asked: list[str] = []

    async def resolver(host: str) -> str:
        asked.append(host)
        return {"localhost": "127.0.0.1"}.get(host, host)

    probes = await resolve_probes(config, resolver)
    group = config.groups[0]
    assert probes == (
        Probe("10.0.0.1", "10.0.0.1", group),
        Probe("::1", "::1", group),
        Probe("localhost", "127.0.0.1", group),
    )
    assert asked == ["10.0.0.1", "::1", "localhost"]


async def test_a_name_that_does_not_resolve_names_the_group_and_host() -> None:
    config = parse(GROUP + '[[targets]]\nhosts = ["10.0.0.2", "nowhere.invalid"]\n', FILE)

    async def resolver(host: str) -> str:
        if host == "nowhere.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return host

    with pytest.raises(ConfigError) as caught:
        await resolve_probes(config, resolver)
    assert str(caught.value) == (
        f"{FILE}: targets[1]: hosts[1]: 'nowhere.invalid' is not an address and does not "
        "resolve: Name or service not known"
    )


async def test_a_host_that_is_no_name_is_refused_before_any_query() -> None:
    # The real resolver: it refuses this without sending a query (no DNS traffic).
    config = parse('[[targets]]\nhosts = ["bad name!"]\n', FILE)
    with pytest.raises(ConfigError, match=r"^exporter.toml: targets\[0\]: hosts\[0\]: 'bad name!'"):
        await resolve_probes(config)


def test_a_probe_is_the_same_whatever_else_its_group_holds() -> None:
    before, after = (
        parse(f"[[targets]]\nhosts = [{hosts}]\ninterval = 2\n", FILE).groups[0]
        for hosts in ('"10.0.0.1"', '"10.0.0.1", "10.0.0.2"')
    )
    assert Probe("10.0.0.1", "10.0.0.1", before) == Probe("10.0.0.1", "10.0.0.1", after)
    assert hash(Probe("10.0.0.1", "10.0.0.1", before)) == hash(Probe("10.0.0.1", "10.0.0.1", after))
    slower = attrs.evolve(after, interval=3.0)
    assert Probe("10.0.0.1", "10.0.0.1", before) != Probe("10.0.0.1", "10.0.0.1", slower)
    assert Probe("10.0.0.1", "10.0.0.1", before) != Probe("10.0.0.1", "10.0.0.9", before)
