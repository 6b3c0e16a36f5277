"""The exporter's configuration: a TOML file of target groups, checked whole, then resolved.

::

    [[targets]]
    hosts = ["10.0.0.1", "db1.example.net"]
    interval = 1.0            # seconds between requests to each host
    timeout = 5.0             # seconds to wait for each reply
    labels = { site = "ams1" }

Every rejection is a :class:`ConfigError` whose message is one line naming the file, the
group (``targets[N]``, counting from 0 as the file's order) and the key.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import re
import socket
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from trio_ping.pinger import DEFAULT_TIMEOUT, resolve

RESERVED_LABELS: Final = ("ip", "host", "source", "tos")
"""The labels every series carries, in smokeping_prober's order; a group may not set them."""

GROUP_KEYS: Final = frozenset(
    {"hosts", "interval", "timeout", "size", "ttl", "tos", "source", "interface", "labels"}
)

MAX_SIZE: Final = 65507
"""The largest ICMP payload an IPv4 datagram can carry: 65535 - 20 (IP) - 8 (ICMP)."""

_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INTERFACE: Final = re.compile(r"[^\s/:]{1,15}")  # IFNAMSIZ is 16, with its NUL


class ConfigError(Exception):
    """The configuration is unusable; ``str()`` is one line naming the file, group and key."""


@attrs.frozen(slots=False)
class TargetGroup:
    """One ``[[targets]]`` table, checked; hosts as written (not resolved yet)."""

    hosts: tuple[str, ...]
    interval: float = 1.0
    timeout: float = DEFAULT_TIMEOUT
    size: int | None = None
    ttl: int | None = None
    tos: int | None = None
    source: str | None = None
    interface: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    """The group's extra labels, sorted by name."""

    def options(self) -> dict[str, Any]:
        """The per-request options this group sets (size, ttl, tos, source, interface)."""
        names = ("size", "ttl", "tos", "source", "interface")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@attrs.frozen(slots=False)
class Config:
    """A whole configuration file, checked."""

    path: str
    groups: tuple[TargetGroup, ...]

    @property
    def label_names(self) -> tuple[str, ...]:
        """Every series' label names: smokeping_prober's four, then every group's own,
        sorted (a group without one of them gives it the empty value, which Prometheus
        treats as the label being absent)."""
        extra = sorted({name for group in self.groups for name, _ in group.labels})
        return (*RESERVED_LABELS, *extra)


@attrs.frozen(slots=False)
class Probe:
    """One host of one group, resolved: what the exporter pings, and its series' identity.

    Two probes are equal when everything about them is: a reload keeps the probes it finds
    again unchanged, and replaces the others.
    """

    host: str
    """As the file has it (a name or an address): the ``host`` label."""
    ip: str
    """What it resolved to: the ``ip`` label, and the address pinged."""
    group: TargetGroup = attrs.field(eq=False)
    """The group it is in; which other hosts that has does not change the probe."""
    settings: TargetGroup = attrs.field(
        init=False,
        repr=False,
        default=attrs.Factory(lambda self: attrs.evolve(self.group, hosts=()), takes_self=True),
    )
    """The group's settings (its hosts left out): part of the probe's identity."""

    @property
    def source_label(self) -> str:
        return self.group.source or ""

    @property
    def tos_label(self) -> str:
        return str(self.group.tos or 0)


Resolver = Callable[[str], Awaitable[str]]


def load(path: str | Path) -> Config:
    """Read and check the configuration file at ``path``.

    Raises:
        ConfigError: it cannot be read, is not TOML, or any value in it is wrong.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    return parse(text, name)


def parse(text: str, path: str) -> Config:
    """Check a configuration's TOML ``text``; ``path`` names it in messages.

    Raises:
        ConfigError: one line naming ``path``, the group and the key that is wrong.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"targets"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (the file has only [[targets]])")
    tables = document.get("targets")
    if tables is None:
        raise ConfigError(f"{path}: targets: missing: give at least one [[targets]] group")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: targets: must be an array of tables ([[targets]])")
    if not tables:
        raise ConfigError(f"{path}: targets: empty: give at least one [[targets]] group")
    groups = tuple(_group(table, f"{path}: targets[{n}]") for n, table in enumerate(tables))
    _check_unique(groups, path)
    return Config(path, groups)


def _group(table: Mapping[str, Any], where: str) -> TargetGroup:
    unknown = sorted(set(table) - GROUP_KEYS)
    if unknown:
        known = ", ".join(sorted(GROUP_KEYS))
        raise ConfigError(f"{where}: {unknown[0]}: unknown key (known: {known})")
    if "hosts" not in table:
        raise ConfigError(f"{where}: hosts: missing: a list of addresses or host names")
    hosts = table["hosts"]
    if not isinstance(hosts, list) or not hosts:
        raise ConfigError(f"{where}: hosts: must be a non-empty list of strings")
    for n, host in enumerate(hosts):
        if not isinstance(host, str) or not host.strip():
            raise ConfigError(f"{where}: hosts[{n}]: must be an address or host name, got {host!r}")
    # Counted once each: list.count per host made a 10,000-host file take 1 s to check.
    duplicates = sorted(h for h, n in collections.Counter(hosts).items() if n > 1)
    if duplicates:
        raise ConfigError(f"{where}: hosts: {duplicates[0]!r} is listed twice")
    return TargetGroup(
        hosts=tuple(hosts),
        interval=_seconds(table, "interval", 1.0, where),
        timeout=_seconds(table, "timeout", DEFAULT_TIMEOUT, where),
        size=_integer(table, "size", 0, MAX_SIZE, where),
        ttl=_integer(table, "ttl", 1, 255, where),
        tos=_integer(table, "tos", 0, 255, where),
        source=_source(table, where),
        interface=_interface(table, where),
        labels=_labels(table, where),
    )


def _seconds(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    # bool is an int in Python; `interval = true` is a mistake, not 1 second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {key}: must be a number of seconds, got {value!r}")
    if not 0 < value < math.inf:
        raise ConfigError(f"{where}: {key}: must be a positive number of seconds, got {value!r}")
    return float(value)


def _integer(table: Mapping[str, Any], key: str, low: int, high: int, where: str) -> int | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}: {key}: must be a whole number {low} to {high}, got {value!r}")
    return value


def _source(table: Mapping[str, Any], where: str) -> str | None:
    if "source" not in table:
        return None
    value = table["source"]
    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise ConfigError(f"{where}: source: must be an IP address, got {value!r}") from None


def _interface(table: Mapping[str, Any], where: str) -> str | None:
    if "interface" not in table:
        return None
    value = table["interface"]
    if not isinstance(value, str) or not _INTERFACE.fullmatch(value):
        raise ConfigError(
            f"{where}: interface: must be a network device name (1 to 15 characters, "
            f"no space, '/' or ':'), got {value!r}"
        )
    return value


def _labels(table: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    labels = table.get("labels", {})
    if not isinstance(labels, dict):
        raise ConfigError(f"{where}: labels: must be a table of names to strings")
    for name, value in labels.items():
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ConfigError(
                f"{where}: labels.{name}: not a Prometheus label name "
                "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            )
        if name in RESERVED_LABELS:
            raise ConfigError(
                f"{where}: labels.{name}: reserved: every series has it from the host itself"
            )
        if not isinstance(value, str):
            raise ConfigError(f"{where}: labels.{name}: must be a string, got {value!r}")
    return tuple(sorted(labels.items()))


def _check_unique(groups: Sequence[TargetGroup], path: str) -> None:
    """A host may be in two groups only with another source or ToS: else its series
    would be the same series twice."""
    seen: dict[tuple[str, str | None, int | None], int] = {}
    for n, group in enumerate(groups):
        for i, host in enumerate(group.hosts):
            key = (host, group.source, group.tos)
            if key in seen:
                raise ConfigError(
                    f"{path}: targets[{n}]: hosts[{i}]: {host!r} is already in "
                    f"targets[{seen[key]}] (with the same source and tos)"
                )
            seen[key] = n


async def resolve_probes(config: Config, resolver: Resolver | None = None) -> tuple[Probe, ...]:
    """Every host of ``config`` resolved to the address to ping, in the file's order.

    ``resolver`` defaults to :func:`trio_ping.pinger.resolve` (an address is itself; a name
    is looked up, now: each reload resolves again).

    Raises:
        ConfigError: a host is neither an address nor a name that resolves.
    """
    resolver = resolver or resolve
    probes = []
    for n, group in enumerate(config.groups):
        for i, host in enumerate(group.hosts):
            try:
                ip = await resolver(host)
            except (OSError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
                raise ConfigError(
                    f"{config.path}: targets[{n}]: hosts[{i}]: {host!r} is not an address "
                    f"and does not resolve: {reason}"
                ) from None
            probes.append(Probe(host, ip, group))
    return tuple(probes)
