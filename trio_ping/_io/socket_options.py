"""What the user may set on an ICMP socket or on each request: the kernel's side of it.

Per socket: the device (``SO_BINDTODEVICE``), the source address (``bind``) and path MTU
discovery (``IP_MTU_DISCOVER`` / ``IPV6_MTU_DISCOVER``). Per request: the TTL or hop
limit and the TOS byte or traffic class, as ancillary data on ``sendmsg``
(``IP_TTL``, ``IP_TOS``, ``IPV6_HOPLIMIT``, ``IPV6_TCLASS``), so that one socket serves
targets with different options. Linux takes those four control messages on raw and on
ICMP datagram sockets alike (``ip_cmsg_send`` for IPv4; ``ip6_datagram_send_ctl`` for
IPv6): checked on Linux 6.18 with tcpdump, and by tests/live/test_options_live.py.
"""

from __future__ import annotations

import enum
import errno
import socket
import struct
from typing import Final

# linux/in.h and linux/in6.h; Python 3.11 exports none of them.
IP_MTU_DISCOVER: Final = 10
IP_MTU: Final = 14
IPV6_MTU_DISCOVER: Final = 23
IPV6_MTU: Final = 24

MAX_PAYLOAD_IPV4: Final = 65535 - 20 - 8
"""The largest Echo payload an IPv4 datagram can carry (no IP options)."""
MAX_PAYLOAD_IPV6: Final = 65535 - 8
"""The largest Echo payload an IPv6 packet can carry without a jumbogram."""

Ancillary = tuple[tuple[int, int, bytes], ...]
"""Control messages for ``sendmsg``: (level, type, data) each."""

_INT: Final = struct.Struct("@i")


class MtuDiscovery(enum.Enum):
    """Path MTU discovery, as iputils ping's ``-M`` names it (the kernel's values)."""

    DO = 2
    """Set DF (IPv4); never fragment locally: a request larger than the path MTU fails."""
    WANT = 1
    """Discover the path MTU, but fragment locally a request larger than it."""
    DONT = 0
    """Never set DF (IPv4); fragment to the interface's MTU (IPv6 still sends no larger
    than the path MTU it learnt)."""


def ancillary(family: socket.AddressFamily, ttl: int | None, tos: int | None) -> Ancillary:
    """The control messages that give one request ``ttl`` and ``tos`` (None: the socket's
    default): empty when neither is set, so a plain ``sendto`` serves."""
    messages: list[tuple[int, int, bytes]] = []
    if family == socket.AF_INET6:
        if ttl is not None:
            messages.append((socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, _INT.pack(ttl)))
        if tos is not None:
            messages.append((socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _INT.pack(tos)))
    else:
        if ttl is not None:
            messages.append((socket.IPPROTO_IP, socket.IP_TTL, _INT.pack(ttl)))
        if tos is not None:
            # ip_cmsg_send takes IP_TOS as an int or a single byte; an int is unambiguous.
            messages.append((socket.IPPROTO_IP, socket.IP_TOS, _INT.pack(tos)))
    return tuple(messages)


def family_of(address: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 for an IP address (an IPv6 one may carry a zone), else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.getaddrinfo(address, None, family, 0, 0, socket.AI_NUMERICHOST)
        except (OSError, UnicodeError):
            continue
        return family
    return None


def check_interface(name: str) -> None:
    """Raise ValueError unless ``name`` is a network interface of this host (namespace)."""
    try:
        socket.if_nametoindex(name)
    except (OSError, ValueError):
        raise ValueError(f"no such interface: {name!r}") from None


def check_source(address: str) -> socket.AddressFamily:
    """The family of ``address``, which must be an address of this host to send from.

    Binds a throwaway UDP socket to it: nothing is sent, and the kernel answers exactly
    the question bind will meet later (EADDRNOTAVAIL if no interface has it).

    Raises:
        ValueError: ``address`` is not an IP address, or not one of this host's.
    """
    family = family_of(address)
    if family is None:
        raise ValueError(f"not an IP address: {address!r}")
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(_sockaddr(probe.family, address))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"{address} is not an address of this host") from None
            raise ValueError(f"cannot send from {address}: {exc.strerror or exc}") from None
    return family


def configure(
    sock: socket.socket,
    *,
    interface: str | None,
    source: str | None,
    mtu_discovery: MtuDiscovery | None,
) -> None:
    """Apply the per-socket options to a new ICMP socket (None: leave the kernel's default).

    Raises:
        OSError: the kernel refused one (an unknown interface: ENODEV; a source address
            that is not this host's: EADDRNOTAVAIL).
    """
    if interface is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    if mtu_discovery is not None:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, mtu_discovery.value)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, mtu_discovery.value)
    if source is not None:
        sock.bind(_sockaddr(sock.family, source))


def path_mtu(
    family: socket.AddressFamily, destination: tuple[str, int], interface: str | None
) -> int | None:
    """The MTU the kernel holds for the path to ``destination`` (a learnt path MTU, else
    the route's device's), or None if it will not say.

    ``IP_MTU`` answers only on a connected socket: a throwaway UDP socket is connected,
    which sends nothing. Only read after a send failed with EMSGSIZE.
    """
    level, option = (
        (socket.IPPROTO_IPV6, IPV6_MTU)
        if family == socket.AF_INET6
        else (socket.IPPROTO_IP, IP_MTU)
    )
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            if interface is not None:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            probe.connect((destination[0], 9))
            mtu: int = probe.getsockopt(level, option)
    except OSError:
        return None
    return mtu


def _sockaddr(family: socket.AddressFamily, address: str) -> tuple[str, int]:
    return (address, 0)
