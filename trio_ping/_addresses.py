"""IP addresses and host names as the user writes them: which is which, and one spelling.

Below the command line and the library alike; no I/O (``socket`` is used only for
``inet_pton``/``inet_ntop``/``inet_aton``, which are pure conversions).
"""

from __future__ import annotations

import re
import socket

from trio_ping._quoting import quoted

# RFC 1123 host names: labels of letters, digits and hyphens (underscores too, as real
# zones have them), not starting or ending with a hyphen; an optional final dot.
_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?")


def parse_ip(text: str) -> tuple[socket.AddressFamily, bytes] | None:
    """(family, packed address) if ``text`` is an IP address, else None.

    inet_pton is strict where inet_aton is not: four decimal octets, no leading zeros, no
    shorthand such as "127.1"; and it is ten times faster than ``ipaddress`` (0.19 us against
    1.9 for IPv4; benchmarks/micro.py: inet_pton_vs_ipaddress, Python 3.11.7), which counts
    for a batch of 20,000 lines.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return family, socket.inet_pton(family, text)
        except (OSError, ValueError):
            continue
    return None


def split_zone(text: str) -> tuple[str, str | None]:
    """An address as written and its zone, ``fe80::1%eth0`` -> (``fe80::1``, ``eth0``)."""
    if "%" not in text:
        return text, None
    address, zone = text.split("%", 1)
    return address, zone


def address_for(text: str, family: socket.AddressFamily = socket.AF_UNSPEC) -> str | None:
    """``text`` normalised if it is an IP address, None if it is not one (a host name).

    An IPv6 link-local address may carry a zone (RFC 4007 11: ``fe80::1%eth0``), kept as
    written; whether the zone names an interface is for the pinger to find out.

    Raises:
        ValueError: an address of the other family than ``family`` (unless AF_UNSPEC),
            or a zone on an address that has none (IPv4, IPv6 beyond fe80::/10).
    """
    base, zone = split_zone(text)
    ip = parse_ip(base)
    if ip is None:
        return None
    if family not in (socket.AF_UNSPEC, ip[0]):
        wanted = "IPv6" if family == socket.AF_INET6 else "IPv4"
        raise ValueError(f"{text} is not an {wanted} address")
    if zone is None:
        return normalised(text, *ip)
    if ip[0] == socket.AF_INET:
        raise ValueError(f"{quoted(text)}: an IPv4 address has no zone")
    if not is_link_local(ip[1]):
        raise ValueError(
            f"{quoted(text)}: a zone is for IPv6 link-local addresses (fe80::/10) only"
        )
    if not zone or "%" in zone or not zone.isprintable() or " " in zone:
        raise ValueError(f"{quoted(text)}: the zone after '%' must be an interface's name or index")
    return f"{normalised(base, *ip)}%{zone}"


def is_link_local(packed: bytes) -> bool:
    """Whether a packed IPv6 address is unicast link-local (fe80::/10), so needs a zone."""
    return packed[0] == 0xFE and packed[1] & 0xC0 == 0x80


def normalised(text: str, family: socket.AddressFamily, packed: bytes) -> str:
    """The one spelling of an address ``parse_ip`` took from ``text``.

    inet_pton takes an IPv4 address only in its canonical form (four decimal octets, no
    leading zeros), so that is ``text`` itself; IPv6 has many spellings, and inet_ntop
    gives the standard one (RFC 5952). Skipping it for IPv4 saves 0.2 us a line
    (benchmarks/micro.py: normalised_ipv4, Python 3.11.7).
    """
    return text if family == socket.AF_INET else socket.inet_ntop(family, packed)


def is_host_name(text: str) -> bool:
    """Whether ``text`` is a host name a resolver may be asked about (RFC 1123 syntax,
    and nothing it would read as an IPv4 address in an old form)."""
    return _HOST_NAME.fullmatch(text) is not None and not _looks_numeric(text)


def _looks_numeric(name: str) -> bool:
    """Whether the resolver would take ``name`` for an IPv4 address in an old form.

    glibc's getaddrinfo falls back to inet_aton, which reads "1.2.3" as 1.2.0.3 and
    "0x7f" as 0.0.0.127: a typo would ping a host nobody named. A name whose last label
    is numeric ("10.0.0.256") is a mistyped address too.
    """
    try:
        socket.inet_aton(name)
    except OSError:
        return name.rstrip(".").rsplit(".", 1)[-1].isdigit()
    return True
