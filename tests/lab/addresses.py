"""Every address the tests and benchmarks may send to. Nothing else is ever a target.

All of them exist only inside the lab's namespaces: the client namespace routes
10.200.0.0/13 and fd00:200::/24 to the lab's peers and has no other route, so even a
wrong address in this range cannot leave the lab.
"""

from __future__ import annotations

from typing import Final

LOOPBACK: Final = "127.0.0.1"
LOOPBACK6: Final = "::1"

LAB_RANGE: Final = "10.200.0.0/13"
LAB_RANGE6: Final = "fd00:200::/24"
"""fd00:200:: to fd00:2ff:ffff::: every IPv6 range below, and clear of the host's own fd00::/64."""

# The link between the client and the kernel peer.
CLIENT_LINK: Final = "10.201.0.1"
PEER_LINK: Final = "10.201.0.2"
CLIENT_LINK_BROADCAST: Final = "10.201.0.3"
"""The client link's directed broadcast: the kernel refuses to send to it (EACCES)."""
CLIENT_LINK6: Final = "fd00:201::1"
PEER_LINK6: Final = "fd00:201::2"

# A second link between the client and the kernel peer (issue 16: -I, -S). The client
# routes the lab's ranges over it too, at a worse metric: only a socket bound to it
# (SO_BINDTODEVICE) sends that way.
SECOND_CLIENT_LINK: Final = "10.201.3.1"
SECOND_PEER_LINK: Final = "10.201.3.2"
SECOND_CLIENT_LINK6: Final = "fd00:201:3::1"
SECOND_PEER_LINK6: Final = "fd00:201:3::2"

# Link-local addresses on the client-peer link, set without duplicate address detection.
CLIENT_LINK_LOCAL: Final = "fe80::201:1"
PEER_LINK_LOCAL: Final = "fe80::201:2"

# Beyond the kernel peer, which routes to it: the far namespace, over a link of MTU 1280.
FAR_ROUTER_LINK: Final = "10.201.2.1"
FAR_LINK: Final = "10.201.2.2"
FAR_ROUTER_LINK6: Final = "fd00:201:2::1"
FAR_LINK6: Final = "fd00:201:2::2"
FAR_MTU: Final = 1280
"""The MTU of the link between the kernel peer and the far namespace."""
BEYOND: Final = "10.207.0.0/16"
"""Every address answers, two hops away: the far namespace has a local route for it."""
BEYOND6: Final = "fd00:207::/48"

# The link between the client and the misbehaving (userspace) peer.
CLIENT_LINK_M: Final = "10.201.1.1"
MISBEHAVING_LINK: Final = "10.201.1.2"

ANSWERING: Final = "10.202.0.0/16"
"""Every address answers: the kernel peer has a local route for the range."""
ANSWERING6: Final = "fd00:202::/48"
ANSWERING_MORE: Final = "10.200.0.0/16"
"""A second range that answers, for runs of more distinct IPv4 targets than a /16 holds
(:func:`answering_many`)."""
SILENT: Final = "10.203.0.0/16"
"""Nothing answers: the kernel peer blackholes the range."""
SILENT6: Final = "fd00:203::/48"
UNREACHABLE: Final = "10.204.0.0/16"
"""The kernel peer, as a router, answers Destination Host Unreachable."""
UNREACHABLE6: Final = "fd00:204::/48"
MISBEHAVING: Final = "10.205.0.0/16"
"""Answered by the userspace responder, one behaviour per address."""
REFUSED: Final = "10.206.0.0/16"
"""The client's own kernel refuses to send here (an ``unreachable`` route in the client
namespace: EHOSTUNREACH at sendto), so nothing ever leaves."""


def host(network: str, index: int) -> str:
    """The ``index``-th address of one of the ranges above (1-based, skips .0)."""
    import ipaddress

    net = ipaddress.ip_network(network)
    if not 0 < index < net.num_addresses - 1:
        raise ValueError(f"{index} is outside {network}")
    return str(net.network_address + index)


def answering(index: int = 1) -> str:
    """An address the kernel peer answers."""
    return host(ANSWERING, index)


def answering_many(index: int) -> str:
    """The ``index``-th of 131,068 distinct addresses the kernel peer answers: those of
    :data:`ANSWERING`, then those of :data:`ANSWERING_MORE`."""
    first = 65_534  # a /16 less its .0 and its last
    return host(ANSWERING, index) if index <= first else host(ANSWERING_MORE, index - first)


def silent(index: int = 1) -> str:
    """An address nothing answers."""
    return host(SILENT, index)


def unreachable(index: int = 1) -> str:
    """An address a router reports unreachable."""
    return host(UNREACHABLE, index)


def refused(index: int = 1) -> str:
    """An address the client's kernel refuses to send to."""
    return host(REFUSED, index)


def answering6(index: int = 1) -> str:
    """An IPv6 address the kernel peer answers."""
    return host(ANSWERING6, index)


def silent6(index: int = 1) -> str:
    """An IPv6 address nothing answers."""
    return host(SILENT6, index)


def unreachable6(index: int = 1) -> str:
    """An IPv6 address a router reports unreachable."""
    return host(UNREACHABLE6, index)


def beyond(index: int = 1) -> str:
    """An address two hops away (through the kernel peer, over the 1280-byte link)."""
    return host(BEYOND, index)


def beyond6(index: int = 1) -> str:
    """An IPv6 address two hops away."""
    return host(BEYOND6, index)
